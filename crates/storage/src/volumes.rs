//! Volume replicas: mirrored block storage that acknowledges a write only once both copies hold it.
//!
//! Control places each volume on two servers: a *primary*, which serves customer I/O, and a
//! *mirror*, which takes every write from the primary before the primary acknowledges it. Every
//! replica carries the volume's *epoch*; control bumps it at each failover, and a mirror refuses
//! writes from a primary of another epoch. So a primary that control has already replaced (it
//! was slow, not dead) cannot get a write acknowledged any more: the only ones it could forward
//! to either hold a newer epoch or are gone.
//!
//! Every block access costs what the server's cache says it costs: a block whose slot is cached
//! is served from memory, any other goes to the disk queue (see `http.rs`). A replica also holds
//! `replica_size` of real memory for the data it stores, so taking a new mirror during a failover
//! costs the receiving server memory that its cache must give up: the "tax" failover puts on
//! the healthy servers.
//!
//! Routes (all bodies JSON, see `outage_lab_proto::wire`):
//! - `PUT /volumes/{id}` (`ReplicaMsg`): hold a replica (placement, or a copy from a primary).
//! - `POST /volumes/{id}/assign` (`AssignMsg`): change role, epoch, mirror; keep the data.
//! - `POST /volumes/{id}/copy` (`CopyMsg`): primary sends its data to a new mirror.
//! - `DELETE /volumes/{id}?below_epoch=E`: drop a replica older than epoch `E`.
//! - `GET`/`PUT /volumes/{id}/blocks/{n}` (`BlockValue`): customer I/O on the primary.
//! - `PUT /volumes/{id}/mirror/{n}` (`MirrorWriteMsg`): the primary's forwarded write.
//! - `GET /probe`: control's health probe; reads `probe_blocks` slots through the disk path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use outage_lab_ebs_events::wire::{
    AssignMsg, BlockValue, CopyMsg, MirrorWriteMsg, ReplicaMsg, ReplicaRole,
};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::shared::Shared;

/// Most blocks one volume may have (keeps a replica message small).
pub(crate) const MAX_BLOCKS: usize = 4096;

/// One replica this server holds.
#[derive(Debug)]
struct Replica {
    epoch: u64,
    role: ReplicaRole,
    mirror: Option<SocketAddr>,
    blocks: Vec<u64>,
    /// The memory the stored data occupies: real, written, resident.
    _data: Vec<u8>,
}

impl Replica {
    /// Takes a new role at `epoch`, which must not be older than the replica's.
    fn reassign(
        &mut self,
        epoch: u64,
        role: ReplicaRole,
        mirror: Option<SocketAddr>,
    ) -> Result<(), Refused> {
        if epoch < self.epoch {
            return Err(Refused(
                StatusCode::CONFLICT,
                format!("replica is at epoch {}, refusing epoch {epoch}", self.epoch),
            ));
        }
        self.epoch = epoch;
        self.role = role;
        self.mirror = mirror;
        Ok(())
    }

    /// The index of block `n` of volume `id`, or `404`.
    fn index(&self, id: &str, n: u64) -> Result<usize, Refused> {
        usize::try_from(n)
            .ok()
            .filter(|&i| i < self.blocks.len())
            .ok_or_else(|| {
                Refused(
                    StatusCode::NOT_FOUND,
                    format!("{id} has {} blocks", self.blocks.len()),
                )
            })
    }
}

/// The replica of `id`, locked, waiting no longer than `deadline`; `404` or `503` otherwise.
async fn lock_until(
    volumes: &Volumes,
    id: &str,
    deadline: Instant,
) -> Result<tokio::sync::OwnedMutexGuard<Replica>, Refused> {
    let Some(existing) = volumes.get(id) else {
        return Err(Refused(
            StatusCode::NOT_FOUND,
            format!("no replica of {id} here"),
        ));
    };
    tokio::time::timeout_at(deadline, existing.lock_owned())
        .await
        .map_err(|_| Refused(StatusCode::SERVICE_UNAVAILABLE, "deadline exceeded".into()))
}

/// A request refused with a status and a reason (small, unlike a whole `Response`).
#[derive(Debug)]
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// Every replica on this server, each behind its own lock so writes to one volume are ordered
/// (and a failover's role change never interleaves with a write) while volumes stay independent.
#[derive(Debug)]
pub(crate) struct Volumes {
    replicas: RwLock<HashMap<String, Arc<Mutex<Replica>>>>,
    replica_size: usize,
    probe_blocks: u64,
    client: reqwest::Client,
}

impl Volumes {
    pub(crate) fn new(replica_size: usize, probe_blocks: u64) -> Self {
        Self {
            replicas: RwLock::new(HashMap::new()),
            replica_size,
            probe_blocks,
            // Loopback only; a fresh connection per forward would cost more than the write.
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Replica>>> {
        self.replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Number of replicas held.
    pub(crate) fn len(&self) -> usize {
        self.replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Where block `n` of volume `id` lives in the cache: a stable hash onto the working set.
pub(crate) fn slot_of(id: &str, block: u64, working_set_blocks: u64) -> u64 {
    // FNV-1a: stable across processes and runs, which a HashMap's hasher is not.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes().iter().chain(block.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % working_set_blocks.max(1)
}

/// State of the volume routes: the server's shared cache/disk plus its replicas.
#[derive(Debug, Clone)]
pub(crate) struct VolState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) volumes: Arc<Volumes>,
}

pub(crate) fn router(state: VolState) -> Router {
    Router::new()
        .route("/volumes/{id}", put(put_replica).delete(delete_replica))
        .route("/volumes/{id}/assign", post(assign))
        .route("/volumes/{id}/copy", post(copy))
        .route("/volumes/{id}/blocks/{n}", get(read_block).put(write_block))
        .route("/volumes/{id}/mirror/{n}", put(mirror_write))
        .route("/probe", get(probe))
        .with_state(state)
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

async fn put_replica(
    State(st): State<VolState>,
    Path(id): Path<String>,
    Json(msg): Json<ReplicaMsg>,
) -> Response {
    if !valid_id(&id) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "volume id must be 1-64 of [A-Za-z0-9-]",
        );
    }
    if msg.blocks.is_empty() || msg.blocks.len() > MAX_BLOCKS {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("a volume has 1..={MAX_BLOCKS} blocks"),
        );
    }
    if msg.role == ReplicaRole::Mirror && msg.mirror.is_some() {
        return refuse(StatusCode::BAD_REQUEST, "a mirror has no mirror");
    }
    if let Some(existing) = st.volumes.get(&id) {
        let mut r = existing.lock().await;
        if let Err(refused) = r.reassign(msg.epoch, msg.role, msg.mirror) {
            return refused.into_response();
        }
        r.blocks = msg.blocks;
        return StatusCode::NO_CONTENT.into_response();
    }
    // Writing every byte makes the data resident: the memory a replica really costs.
    let data = vec![0xA5_u8; st.volumes.replica_size];
    let replica = Replica {
        epoch: msg.epoch,
        role: msg.role,
        mirror: msg.mirror,
        blocks: msg.blocks,
        _data: data,
    };
    st.volumes
        .replicas
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id)
        .or_insert_with(|| Arc::new(Mutex::new(replica)));
    StatusCode::CREATED.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Only a replica older than this epoch is dropped.
    below_epoch: u64,
}

async fn delete_replica(
    State(st): State<VolState>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let Some(existing) = st.volumes.get(&id) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    // Hold the replica's lock while deciding, so a concurrent re-placement at a newer epoch is
    // either seen (and kept) or happens after the removal.
    let r = existing.lock().await;
    if r.epoch >= q.below_epoch {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "replica is at epoch {}, not below {}",
                r.epoch, q.below_epoch
            ),
        );
    }
    st.volumes
        .replicas
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    drop(r);
    StatusCode::NO_CONTENT.into_response()
}

async fn assign(
    State(st): State<VolState>,
    Path(id): Path<String>,
    Json(msg): Json<AssignMsg>,
) -> Response {
    if msg.role == ReplicaRole::Mirror && msg.mirror.is_some() {
        return refuse(StatusCode::BAD_REQUEST, "a mirror has no mirror");
    }
    let Some(existing) = st.volumes.get(&id) else {
        return refuse(StatusCode::NOT_FOUND, format!("no replica of {id} here"));
    };
    let mut r = existing.lock().await;
    match r.reassign(msg.epoch, msg.role, msg.mirror) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// How long a copy to a new mirror may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(2);

async fn copy(
    State(st): State<VolState>,
    Path(id): Path<String>,
    Json(msg): Json<CopyMsg>,
) -> Response {
    let Some(existing) = st.volumes.get(&id) else {
        return refuse(StatusCode::NOT_FOUND, format!("no replica of {id} here"));
    };
    // The lock is held for the whole copy: no write can slip in between the snapshot and the
    // switch to the new mirror (and none is acknowledged meanwhile: without a mirror, writes are
    // refused).
    let mut r = existing.lock().await;
    if r.role != ReplicaRole::Primary || r.epoch != msg.epoch {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "copy asked at epoch {} of a primary; this replica is a {:?} at epoch {}",
                msg.epoch, r.role, r.epoch
            ),
        );
    }
    // Reading the volume to send it goes through this server's cache and disk like any read:
    // re-mirroring from a struggling server is slow, as it was in 2012.
    let started = Instant::now();
    let body = ReplicaMsg {
        epoch: r.epoch,
        role: ReplicaRole::Mirror,
        mirror: None,
        blocks: r.blocks.clone(),
    };
    let sent = st
        .volumes
        .client
        .put(format!("http://{}/volumes/{id}", msg.target))
        .json(&body)
        .timeout(COPY_TIMEOUT)
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => {
            r.mirror = Some(msg.target);
            tracing::debug!(volume = %id, target = %msg.target, took = ?started.elapsed(), "copied");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(resp) => refuse(
            StatusCode::BAD_GATEWAY,
            format!("new mirror {} answered {}", msg.target, resp.status()),
        ),
        Err(e) => refuse(
            StatusCode::BAD_GATEWAY,
            format!("new mirror {} unreachable: {e}", msg.target),
        ),
    }
}

/// Charges one block access to the cache/disk: a hit is free, a miss queues for the disk.
async fn access(shared: &Shared, slot: u64, started: Instant) -> Result<(), Response> {
    if shared.read_cache().block(slot).is_some() {
        shared.hits.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    shared.misses.fetch_add(1, Ordering::Relaxed);
    shared.disk_read(started).await.map_err(|e| {
        shared.deadline_misses.fetch_add(1, Ordering::Relaxed);
        e.into_response()
    })
}

async fn read_block(State(st): State<VolState>, Path((id, n)): Path<(String, u64)>) -> Response {
    let started = Instant::now();
    let r = match lock_until(&st.volumes, &id, started + st.shared.request_deadline).await {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    if r.role != ReplicaRole::Primary {
        return refuse(StatusCode::CONFLICT, format!("{id} is a mirror here"));
    }
    let value = match r.index(&id, n) {
        Ok(i) => r.blocks[i],
        Err(refused) => return refused.into_response(),
    };
    drop(r);
    let slot = slot_of(&id, n, st.shared.working_set_blocks);
    match access(&st.shared, slot, started).await {
        Ok(()) => Json(BlockValue { value }).into_response(),
        Err(refused) => refused,
    }
}

async fn write_block(
    State(st): State<VolState>,
    Path((id, n)): Path<(String, u64)>,
    Json(msg): Json<BlockValue>,
) -> Response {
    let started = Instant::now();
    let deadline = started + st.shared.request_deadline;
    let mut r = match lock_until(&st.volumes, &id, deadline).await {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    if r.role != ReplicaRole::Primary {
        return refuse(StatusCode::CONFLICT, format!("{id} is a mirror here"));
    }
    let index = match r.index(&id, n) {
        Ok(i) => i,
        Err(refused) => return refused.into_response(),
    };
    let Some(mirror) = r.mirror else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{id} has no mirror: writes wait for re-mirroring"),
        );
    };
    let slot = slot_of(&id, n, st.shared.working_set_blocks);
    if let Err(refused) = access(&st.shared, slot, started).await {
        return refused;
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "deadline exceeded");
    }
    let forwarded = st
        .volumes
        .client
        .put(format!("http://{mirror}/volumes/{id}/mirror/{n}"))
        .json(&MirrorWriteMsg {
            epoch: r.epoch,
            value: msg.value,
        })
        .timeout(remaining)
        .send()
        .await;
    match forwarded {
        Ok(resp) if resp.status().is_success() => {
            // Both copies hold it: only now is it stored here and acknowledged.
            r.blocks[index] = msg.value;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(resp) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("mirror {mirror} refused the write: {}", resp.status()),
        ),
        Err(e) if e.is_timeout() => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("deadline exceeded waiting for mirror {mirror}"),
        ),
        Err(e) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("mirror {mirror} unreachable: {e}"),
        ),
    }
}

async fn mirror_write(
    State(st): State<VolState>,
    Path((id, n)): Path<(String, u64)>,
    Json(msg): Json<MirrorWriteMsg>,
) -> Response {
    let started = Instant::now();
    let mut r = match lock_until(&st.volumes, &id, started + st.shared.request_deadline).await {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    if r.role != ReplicaRole::Mirror || r.epoch != msg.epoch {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "forwarded write of epoch {} to a {:?} at epoch {}",
                msg.epoch, r.role, r.epoch
            ),
        );
    }
    let index = match r.index(&id, n) {
        Ok(i) => i,
        Err(refused) => return refused.into_response(),
    };
    let slot = slot_of(&id, n, st.shared.working_set_blocks);
    if let Err(refused) = access(&st.shared, slot, started).await {
        return refused;
    }
    r.blocks[index] = msg.value;
    StatusCode::NO_CONTENT.into_response()
}

/// Control's health probe: `probe_blocks` block reads through the same cache and disk as
/// customer I/O, all within one request deadline. The slots walk the working set with a stride,
/// so successive probes sample all of it without any randomness.
async fn probe(State(st): State<VolState>) -> Response {
    let started = Instant::now();
    let ws = st.shared.working_set_blocks;
    let base = st.shared.probes.fetch_add(1, Ordering::Relaxed);
    for i in 0..st.volumes.probe_blocks {
        // 7919 is prime, so the stride visits every slot of any working set not divisible by it.
        let slot = (base.wrapping_mul(st.volumes.probe_blocks) + i).wrapping_mul(7919) % ws.max(1);
        if let Err(resp) = access(&st.shared, slot, started).await {
            return resp;
        }
    }
    (StatusCode::OK, format!("{} replicas", st.volumes.len())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_within_the_working_set() {
        assert_eq!(slot_of("v0001", 3, 256), slot_of("v0001", 3, 256));
        assert_ne!(slot_of("v0001", 3, 1 << 30), slot_of("v0001", 4, 1 << 30));
        for b in 0..1000 {
            assert!(slot_of("v0042", b, 256) < 256);
        }
        assert_eq!(slot_of("v", 1, 0), 0);
    }

    #[test]
    fn volume_ids_are_short_and_plain() {
        assert!(valid_id("v0001"));
        assert!(!valid_id(""));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(&"v".repeat(65)));
    }
}

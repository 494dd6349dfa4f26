//! The `control` role: the EBS control plane.
//!
//! Control places every volume on two storage servers (primary and mirror, within each server's
//! replica slots), probes every server's I/O path (`GET /probe`, which reads blocks through the
//! server's cache and disk), and fails a volume over when one of its replicas stops serving:
//!
//! 1. bump the volume's epoch and make the surviving replica its primary with no mirror (from
//!    now on a write can be acknowledged only through the new epoch, and none is until step 2);
//! 2. pick a healthy server with a free slot and have the survivor copy the volume there;
//! 3. the survivor forwards writes to the new mirror: the volume is healthy again.
//!
//! Failovers are rate-limited (`failovers_per_second`): re-mirroring costs the receiving
//! servers memory and the survivors disk time. A volume is *stuck* when no replica serves, or
//! when its failover finds no healthy server with a free slot; it stays stuck, refusing
//! writes, until a server recovers or frees a slot. Nothing is ever acknowledged unsafely: that
//! is the storage servers' rule (a write is acknowledged only once the mirror of the same epoch
//! holds it), and control only ever moves the epoch forward.
//!
//! Routes: `GET /volumes` (the volume map, for customers), `GET /health`, `GET /metrics`, and
//! the customers' API under `/api/` ([`api`]: describe, create and attach volumes, with a finite
//! capacity and a throttling policy).
//!
//! Events: [`Event::Ready`], [`Event::VolumeChanged`] for every placement and state change,
//! [`Event::ServerHealth`] when a server's verdict changes, [`Event::Failover`] for every
//! failover decision, [`Event::ControlStats`] every `stats_interval`.

pub mod api;
mod health;
mod metrics;
mod placement;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use outage_lab_ebs_events::wire::{AssignMsg, CopyMsg, ReplicaMsg, ReplicaRole, VolumeInfo};
use outage_lab_ebs_events::{Event, EventSink, FailoverOutcome, VolumeState};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::server::HttpServer;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::{Api, ApiCalls, ApiConfig, Command};
use crate::health::ProbeWindow;

/// How long one role change on a storage server may take.
const ASSIGN_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one copy to a new mirror may take (the survivor's own limit is 2 s).
const COPY_TIMEOUT: Duration = Duration::from_millis(2500);
/// How long placing one replica at start may take.
const PLACE_TIMEOUT: Duration = Duration::from_secs(5);
/// Replica drops sent per tick, at most.
const DELETES_PER_TICK: usize = 64;

/// One storage server control manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// Server id (`s003`).
    pub id: String,
    /// Its storage process's HTTP address.
    pub addr: SocketAddr,
}

/// Configuration of the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The storage servers, in id order.
    pub servers: Vec<ServerEntry>,
    /// Replicas one server can hold: its capacity for volumes, spare slots included.
    #[serde(default = "default_slots_per_server")]
    pub slots_per_server: u32,
    /// Share of all slots filled at placement, in (0, 1]; the rest is failover capacity.
    #[serde(default = "default_placement_fill")]
    pub placement_fill: f64,
    /// Blocks in each volume.
    #[serde(default = "default_blocks_per_volume")]
    pub blocks_per_volume: u32,
    /// How often every server is probed.
    #[serde(default = "default_probe_interval")]
    pub probe_interval: HumanDuration,
    /// A probe not answered within this failed.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: HumanDuration,
    /// Probes remembered per server.
    #[serde(default = "default_probe_window")]
    pub probe_window: u32,
    /// Failed probes within the window that make a server unhealthy.
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
    /// Successful probes in a row that make an unhealthy server healthy again.
    #[serde(default = "default_recover_after")]
    pub recover_after: u32,
    /// Most failovers (copies to a new mirror) begun per second, fleet-wide.
    #[serde(default = "default_failovers_per_second")]
    pub failovers_per_second: f64,
    /// How often a `control_stats` event is emitted.
    #[serde(default = "default_stats_interval")]
    pub stats_interval: HumanDuration,
    /// Seed of the placement.
    #[serde(default)]
    pub seed: u64,
    /// The API customers call: its capacity, throttling and customer accounts.
    #[serde(default)]
    pub api: ApiConfig,
    /// Bearer token `PUT /admin/throttle` requires; without one only loopback peers may call it.
    #[serde(default)]
    pub admin_token: Option<String>,
}

fn default_slots_per_server() -> u32 {
    8
}
fn default_placement_fill() -> f64 {
    0.875
}
fn default_blocks_per_volume() -> u32 {
    64
}
fn default_probe_interval() -> HumanDuration {
    HumanDuration::millis(250)
}
fn default_probe_timeout() -> HumanDuration {
    HumanDuration::millis(200)
}
fn default_probe_window() -> u32 {
    5
}
fn default_fail_after() -> u32 {
    3
}
fn default_recover_after() -> u32 {
    3
}
fn default_failovers_per_second() -> f64 {
    50.0
}
fn default_stats_interval() -> HumanDuration {
    HumanDuration::millis(500)
}

impl Config {
    /// Every documented default, for these servers.
    pub fn new(servers: Vec<ServerEntry>) -> Self {
        Self {
            servers,
            slots_per_server: default_slots_per_server(),
            placement_fill: default_placement_fill(),
            blocks_per_volume: default_blocks_per_volume(),
            probe_interval: default_probe_interval(),
            probe_timeout: default_probe_timeout(),
            probe_window: default_probe_window(),
            fail_after: default_fail_after(),
            recover_after: default_recover_after(),
            failovers_per_second: default_failovers_per_second(),
            stats_interval: default_stats_interval(),
            seed: 0,
            api: ApiConfig::default(),
            admin_token: None,
        }
    }

    /// Volumes this configuration places.
    pub fn volumes(&self) -> usize {
        placement::volume_count(
            self.servers.len(),
            self.slots_per_server,
            self.placement_fill,
        )
    }

    /// Checks ranges and relations serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.servers.len() < 2 {
            return bad(format!(
                "volumes need at least 2 storage servers, got {}",
                self.servers.len()
            ));
        }
        let ids: BTreeSet<&str> = self.servers.iter().map(|s| s.id.as_str()).collect();
        if ids.len() != self.servers.len() {
            return bad("server ids must be unique".into());
        }
        if !(1..=1024).contains(&self.slots_per_server) {
            return bad(format!(
                "slots_per_server must be in 1..=1024, got {}",
                self.slots_per_server
            ));
        }
        if !(self.placement_fill > 0.0 && self.placement_fill <= 1.0) {
            return bad(format!(
                "placement_fill must be in (0, 1], got {}",
                self.placement_fill
            ));
        }
        if !(1..=4096).contains(&self.blocks_per_volume) {
            return bad(format!(
                "blocks_per_volume must be in 1..=4096, got {}",
                self.blocks_per_volume
            ));
        }
        if !(self.failovers_per_second > 0.0 && self.failovers_per_second <= 10_000.0) {
            return bad(format!(
                "failovers_per_second must be in (0, 10000], got {}",
                self.failovers_per_second
            ));
        }
        if self.probe_window == 0 || !(1..=self.probe_window).contains(&self.fail_after) {
            return bad(format!(
                "fail_after must be in 1..=probe_window ({}), got {}",
                self.probe_window, self.fail_after
            ));
        }
        if self.recover_after == 0 {
            return bad("recover_after must be at least 1".into());
        }
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("stats_interval", self.stats_interval),
        ] {
            if d.get().is_zero() {
                return bad(format!("{name} must be longer than 0ms"));
            }
        }
        self.api.validate().map_err(Error::Config)
    }
}

/// The sockets control serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// `GET /volumes` and `/health`.
    pub http: tokio::net::TcpListener,
}

/// Why control stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid control config: {0}")]
    Config(String),
    /// A replica could not be placed at start.
    #[error("could not place {volume} on {server}: {detail}")]
    Place {
        /// Volume id.
        volume: String,
        /// Server id.
        server: String,
        /// What went wrong.
        detail: String,
    },
    /// The listener's address could not be read.
    #[error("could not read the HTTP listener's address: {0}")]
    LocalAddr(std::io::Error),
    /// The HTTP server failed or stopped on its own.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// One volume as control tracks it.
#[derive(Debug, Clone)]
struct Volume {
    id: String,
    epoch: u64,
    /// Servers (indexes) whose copy holds every acknowledged write; the first is the primary.
    replicas: Vec<usize>,
    state: VolumeState,
    /// Whether this stuck episode's "no capacity" was already counted (and the survivor fenced).
    no_capacity_counted: bool,
    /// The customer it belongs to (none when the API has no customers).
    owner: Option<String>,
    /// The customer's instance it is attached to.
    attached_to: Option<String>,
}

impl Volume {
    /// A volume just placed on `replicas` (primary first), healthy at epoch 1.
    fn placed(id: String, replicas: Vec<usize>, owner: Option<String>) -> Self {
        Self {
            id,
            epoch: 1,
            replicas,
            state: VolumeState::Healthy,
            no_capacity_counted: false,
            owner,
            attached_to: None,
        }
    }
}

/// One failover to run: survivor becomes primary at `epoch` and copies to `target`.
#[derive(Debug, Clone, Copy)]
struct Job {
    volume: usize,
    survivor: usize,
    target: usize,
    from: usize,
    epoch: u64,
}

struct Control {
    config: Config,
    events: EventSink,
    http: reqwest::Client,
    servers: Vec<ServerEntry>,
    windows: Vec<ProbeWindow>,
    volumes: Vec<Volume>,
    tokens: f64,
    last_refill: Instant,
    failovers_attempted: u64,
    failovers_without_capacity: u64,
    /// Replicas no longer part of their volume: (server, volume id, drop below this epoch).
    pending_deletes: Vec<(usize, String, u64)>,
    snapshot: Arc<RwLock<Snapshot>>,
    api: Arc<Api>,
}

/// What the HTTP routes serve: published by the control loop after every round.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    volumes: Vec<VolumeInfo>,
    failovers_attempted: u64,
    failovers_without_capacity: u64,
    /// (server id, counted as serving I/O).
    servers_healthy: Vec<(String, bool)>,
    /// Each customer's API calls by outcome, and the throttling policy in force.
    api_calls: BTreeMap<String, ApiCalls>,
    api_policy: &'static str,
}

/// Runs the control plane until `shutdown` is cancelled.
///
/// Places every volume first (the storage servers must be up), then logs its address, emits
/// [`Event::Ready`] and keeps probing and failing over.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    config.validate()?;
    let (mut control, mut commands) = Control::new(config, events)?;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(()),
        placed = control.place() => placed?,
    }

    let addr = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let app = control.routes();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut server = HttpServer::spawn(axum::serve(listeners.http, app), &shutdown);
    tracing::info!(
        volumes = control.volumes.len(),
        "control listening for HTTP on {addr}"
    );
    control.events.emit(Event::Ready {
        role: "control".into(),
        addrs: BTreeMap::from([("http".to_owned(), addr)]),
    });
    // Ready is always a role's first event; the placements follow it.
    for i in 0..control.volumes.len() {
        control.announce(i, "placed");
    }

    let mut tick = tokio::time::interval(control.config.probe_interval.get());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stats = tokio::time::interval(control.config.stats_interval.get());
    stats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            e = server.stopped_unasked() => return Err(Error::Serve(e)),
            _ = tick.tick() => control.tick(&shutdown).await,
            _ = stats.tick() => control.emit_stats(),
            Some(command) = commands.recv() => control.command(command).await,
        }
    }
    // No drain: every route answers from the snapshot without waiting on anything, so there is
    // nothing in flight worth waiting for. Dropping the server aborts it.
    drop(server);
    tracing::info!("control stopped");
    Ok(())
}

/// The routes [`run`] serves (`/volumes`, `/health`, `/metrics`, the customers' API and
/// `/admin/throttle`) for a control plane that manages no servers: it places and probes
/// nothing, so every create finds no capacity (409) and every attach an unknown volume (404),
/// answered by the control loop's own command handling, which runs on a task spawned on the
/// current tokio runtime until `shutdown` is cancelled. Only `api` and `admin_token` are
/// taken from `config` (checked as `run` checks them). For the fuzz targets and tests that send
/// requests straight to the router (`tower::ServiceExt::oneshot`); like `run`'s, each request
/// needs the peer's address as an `axum::extract::ConnectInfo<SocketAddr>` extension.
///
/// # Panics
///
/// When called outside a tokio runtime.
pub fn routes_without_servers(
    config: Config,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<Router, Error> {
    config.api.validate().map_err(Error::Config)?;
    let config = Config {
        servers: Vec::new(),
        ..config
    };
    let (mut control, mut commands) = Control::new(config, events)?;
    let routes = control.routes();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(command) = commands.recv() => control.command(command).await,
            }
        }
    });
    Ok(routes)
}

async fn volumes(State(snapshot): State<Arc<RwLock<Snapshot>>>) -> axum::Json<Vec<VolumeInfo>> {
    axum::Json(
        snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .volumes
            .clone(),
    )
}

impl Control {
    /// A control plane for `config`, before placement, and the receiving end of its API's
    /// commands.
    fn new(config: Config, events: EventSink) -> Result<(Self, mpsc::Receiver<Command>), Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let n = config.servers.len();
        let (api, commands) = Api::new(config.api.clone(), config.admin_token.clone());
        let control = Control {
            api,
            windows: (0..n)
                .map(|_| {
                    ProbeWindow::new(config.probe_window, config.fail_after, config.recover_after)
                })
                .collect(),
            servers: config.servers.clone(),
            tokens: config.failovers_per_second.max(1.0),
            last_refill: Instant::now(),
            failovers_attempted: 0,
            failovers_without_capacity: 0,
            pending_deletes: Vec::new(),
            volumes: Vec::new(),
            snapshot: Arc::new(RwLock::new(Snapshot::default())),
            config,
            events,
            http,
        };
        Ok((control, commands))
    }

    /// Every HTTP route control serves.
    fn routes(&self) -> Router {
        Router::new()
            .route("/volumes", get(volumes))
            .route("/health", get(|| async { "ok" }))
            .route("/metrics", get(metrics::serve))
            .with_state(Arc::clone(&self.snapshot))
            .merge(api::router(Arc::clone(&self.api)))
    }

    fn healthy(&self) -> Vec<bool> {
        self.windows.iter().map(ProbeWindow::healthy).collect()
    }

    fn load(&self) -> BTreeMap<usize, u32> {
        let mut load = BTreeMap::new();
        for v in &self.volumes {
            for &s in &v.replicas {
                *load.entry(s).or_insert(0) += 1;
            }
        }
        load
    }

    /// Places every volume and creates its two replicas (all blocks 0, epoch 1).
    async fn place(&mut self) -> Result<(), Error> {
        let count = self.config.volumes();
        let pairs = placement::place(
            self.servers.len(),
            self.config.slots_per_server,
            count,
            self.config.seed,
        )
        .ok_or_else(|| {
            Error::Config(format!(
                "{count} volumes do not fit on {} servers of {} slots",
                self.servers.len(),
                self.config.slots_per_server
            ))
        })?;
        let blocks = vec![0_u64; self.config.blocks_per_volume as usize];
        let mut puts = JoinSet::new();
        for (i, &(p, m)) in pairs.iter().enumerate() {
            let id = format!("v{i:04}");
            for (server, role, mirror) in [
                (m, ReplicaRole::Mirror, None),
                (p, ReplicaRole::Primary, Some(self.servers[m].addr)),
            ] {
                let req = self.replica_put(server, &id, role, mirror, blocks.clone());
                let (vid, sid) = (id.clone(), self.servers[server].id.clone());
                puts.spawn(async move {
                    match req.send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err((vid, sid, format!("answered {}", r.status()))),
                        Err(e) => Err((vid, sid, e.to_string())),
                    }
                });
                // Bounded fan-out: a 200-server fleet places 1,200 replicas.
                while puts.len() >= 64 {
                    if let Some(Ok(Err((volume, server, detail)))) = puts.join_next().await {
                        return Err(Error::Place {
                            volume,
                            server,
                            detail,
                        });
                    }
                }
            }
            let owner = self.config.api.owner_at_start(i, self.config.seed);
            self.volumes.push(Volume::placed(id, vec![p, m], owner));
        }
        while let Some(res) = puts.join_next().await {
            if let Ok(Err((volume, server, detail))) = res {
                return Err(Error::Place {
                    volume,
                    server,
                    detail,
                });
            }
        }
        self.publish();
        Ok(())
    }

    /// The request that creates replica `id` at epoch 1 on `server`, as primary (forwarding to
    /// `mirror`) or mirror.
    fn replica_put(
        &self,
        server: usize,
        id: &str,
        role: ReplicaRole,
        mirror: Option<SocketAddr>,
        blocks: Vec<u64>,
    ) -> reqwest::RequestBuilder {
        self.http
            .put(format!("http://{}/volumes/{id}", self.servers[server].addr))
            .json(&ReplicaMsg {
                epoch: 1,
                role,
                mirror,
                blocks,
            })
            .timeout(PLACE_TIMEOUT)
    }

    fn announce(&self, i: usize, reason: &str) {
        let v = &self.volumes[i];
        let (primary, mirror) = self.serving(v);
        self.events.emit(Event::VolumeChanged {
            volume: v.id.clone(),
            state: v.state,
            primary: primary.map(|s| self.servers[s].id.clone()),
            mirror: mirror.map(|s| self.servers[s].id.clone()),
            replicas: v
                .replicas
                .iter()
                .map(|&s| self.servers[s].id.clone())
                .collect(),
            reason: reason.to_owned(),
        });
    }

    /// The serving primary and mirror of a volume, as customers should see them.
    fn serving(&self, v: &Volume) -> (Option<usize>, Option<usize>) {
        match v.state {
            VolumeState::Healthy => (v.replicas.first().copied(), v.replicas.get(1).copied()),
            VolumeState::Degraded => (v.replicas.first().copied(), None),
            VolumeState::Stuck => {
                let healthy = self.healthy();
                (v.replicas.iter().copied().find(|&s| healthy[s]), None)
            }
        }
    }

    fn set_state(&mut self, i: usize, state: VolumeState, reason: &str) {
        if self.volumes[i].state != state {
            self.volumes[i].state = state;
            self.announce(i, reason);
        }
    }

    fn publish(&self) {
        let map = self
            .volumes
            .iter()
            .map(|v| {
                let (primary, mirror) = self.serving(v);
                VolumeInfo {
                    id: v.id.clone(),
                    state: v.state,
                    epoch: v.epoch,
                    primary: primary.map(|s| (self.servers[s].id.clone(), self.servers[s].addr)),
                    mirror: mirror.map(|s| self.servers[s].id.clone()),
                    blocks: self.config.blocks_per_volume,
                    owner: v.owner.clone(),
                }
            })
            .collect();
        self.api
            .publish(self.volumes.iter().filter_map(|v| self.view(v)).collect());
        let servers_healthy = self
            .servers
            .iter()
            .zip(&self.windows)
            .map(|(s, w)| (s.id.clone(), w.healthy()))
            .collect();
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Snapshot {
            volumes: map,
            failovers_attempted: self.failovers_attempted,
            failovers_without_capacity: self.failovers_without_capacity,
            servers_healthy,
            api_calls: self.api.calls(),
            api_policy: self.api.policy().name(),
        };
    }

    fn emit_stats(&self) {
        let count = |s: VolumeState| self.volumes.iter().filter(|v| v.state == s).count() as u64;
        self.events.emit(Event::ControlStats {
            total: self.volumes.len() as u64,
            healthy: count(VolumeState::Healthy),
            degraded: count(VolumeState::Degraded),
            stuck: count(VolumeState::Stuck),
            failovers_attempted: self.failovers_attempted,
            failovers_without_capacity: self.failovers_without_capacity,
        });
    }

    /// One round: probe every server, then fail over what needs it, then drop orphaned replicas.
    async fn tick(&mut self, shutdown: &CancellationToken) {
        self.probe_all().await;
        if shutdown.is_cancelled() {
            return;
        }
        let jobs = self.decide().await;
        self.run_jobs(jobs).await;
        self.drop_orphans().await;
        self.publish();
    }

    async fn probe_all(&mut self) {
        let mut probes = JoinSet::new();
        let timeout = self.config.probe_timeout.get();
        let round = outage_lab_proto::freeze::Attempt::start();
        for (i, s) in self.servers.iter().enumerate() {
            let req = self
                .http
                .get(format!("http://{}/probe", s.addr))
                .timeout(timeout);
            probes.spawn(async move {
                let started = Instant::now();
                let res = match req.send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("answered {}", r.status())),
                    Err(e) if e.is_timeout() => Err(format!("no answer within {timeout:?}")),
                    Err(e) => Err(format!("unreachable: {e}")),
                };
                (i, res, started.elapsed())
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((i, res, took)) = done else { continue };
            let ok = res.is_ok();
            if !ok && round.spanned_a_freeze() {
                // Stopped mid-probe (a workshop freeze): not evidence about the server.
                continue;
            }
            if let Some(healthy) = self.windows[i].record(ok) {
                let detail = match (&res, healthy) {
                    (_, true) => format!(
                        "{} probes in a row answered (last in {} ms)",
                        self.config.recover_after,
                        took.as_millis()
                    ),
                    (Err(e), false) => format!(
                        "{} of the last {} probes failed; last: {e}",
                        self.windows[i].failures(),
                        self.config.probe_window
                    ),
                    (Ok(()), false) => "probes failing".to_owned(),
                };
                tracing::info!(server = %self.servers[i].id, healthy, "{detail}");
                self.events.emit(Event::ServerHealth {
                    server: self.servers[i].id.clone(),
                    healthy,
                    detail,
                });
            }
        }
    }

    /// Walks every volume and decides: nothing, stuck, or a failover job (within the rate).
    async fn decide(&mut self) -> Vec<Job> {
        self.refill_tokens();
        let healthy = self.healthy();
        let mut load = self.load();
        let mut jobs = Vec::new();
        for i in 0..self.volumes.len() {
            let v = &self.volumes[i];
            let live: Vec<usize> = v.replicas.iter().copied().filter(|&s| healthy[s]).collect();
            if v.state == VolumeState::Healthy && live.len() == v.replicas.len() {
                continue;
            }
            let from = v
                .replicas
                .iter()
                .copied()
                .find(|&s| !healthy[s])
                .unwrap_or(v.replicas[0]);
            let Some(&survivor) = live.first() else {
                if v.state != VolumeState::Stuck {
                    self.stick_without_replica(i, from);
                }
                continue;
            };
            // Prefer the current primary as the survivor; recover onto a replica that came back.
            let survivor = if healthy[v.replicas[0]] {
                v.replicas[0]
            } else {
                survivor
            };
            let target = live.iter().copied().find(|&s| s != survivor).or_else(|| {
                placement::choose_target(&load, &healthy, &v.replicas, self.config.slots_per_server)
            });
            let Some(target) = target else {
                if !v.no_capacity_counted {
                    self.stick_without_capacity(i, from, survivor, &healthy, &load)
                        .await;
                }
                continue;
            };
            if self.tokens < 1.0 {
                if self.volumes[i].state == VolumeState::Healthy {
                    self.set_state(i, VolumeState::Degraded, "waiting for a failover slot");
                }
                continue;
            }
            self.tokens -= 1.0;
            if !self.volumes[i].replicas.contains(&target) {
                *load.entry(target).or_insert(0) += 1;
            }
            jobs.push(Job {
                volume: i,
                survivor,
                target,
                from,
                epoch: self.volumes[i].epoch + 1,
            });
            if self.volumes[i].state == VolumeState::Healthy {
                self.set_state(i, VolumeState::Degraded, "failing over");
            }
        }
        jobs
    }

    /// Tops up the failover rate's tokens for the time since the last top-up.
    fn refill_tokens(&mut self) {
        let now = Instant::now();
        let rate = self.config.failovers_per_second;
        self.tokens = (self.tokens + rate * now.duration_since(self.last_refill).as_secs_f64())
            .min(rate.max(1.0));
        self.last_refill = now;
    }

    /// Volume `i` has no serving replica: a failover with nothing to copy from. Stuck.
    fn stick_without_replica(&mut self, i: usize, from: usize) {
        self.failovers_attempted += 1;
        let names = self.names(&self.volumes[i].replicas);
        self.events.emit(Event::Failover {
            volume: self.volumes[i].id.clone(),
            from: self.servers[from].id.clone(),
            to: None,
            outcome: FailoverOutcome::NoHealthyReplica,
            detail: format!("no replica serves: {names} all unhealthy"),
        });
        self.set_state(i, VolumeState::Stuck, "no replica serves");
    }

    /// Volume `i` has a serving `survivor` but no healthy server has a free slot for a new
    /// mirror: counted once, fenced to the survivor alone, stuck.
    async fn stick_without_capacity(
        &mut self,
        i: usize,
        from: usize,
        survivor: usize,
        healthy: &[bool],
        load: &BTreeMap<usize, u32>,
    ) {
        self.failovers_attempted += 1;
        self.failovers_without_capacity += 1;
        self.volumes[i].no_capacity_counted = true;
        let free: u32 = (0..self.servers.len())
            .filter(|&s| healthy[s])
            .map(|s| {
                self.config
                    .slots_per_server
                    .saturating_sub(load.get(&s).copied().unwrap_or(0))
            })
            .sum();
        self.events.emit(Event::Failover {
            volume: self.volumes[i].id.clone(),
            from: self.servers[from].id.clone(),
            to: None,
            outcome: FailoverOutcome::NoCapacity,
            detail: format!(
                "no healthy server outside {} has a free slot ({} healthy servers, {free} free slots)",
                self.names(&self.volumes[i].replicas),
                healthy.iter().filter(|h| **h).count()
            ),
        });
        // Fence: the survivor becomes the primary of a new epoch with no mirror, so nothing
        // more is acknowledged until the volume has two serving copies.
        let epoch = self.volumes[i].epoch + 1;
        if self.assign(survivor, i, epoch).await.is_ok() {
            self.volumes[i].epoch = epoch;
            let pos = self.volumes[i].replicas.iter().position(|&s| s == survivor);
            if let Some(pos) = pos {
                self.volumes[i].replicas.swap(0, pos);
            }
        }
        self.set_state(i, VolumeState::Stuck, "failover found no capacity");
    }

    fn names(&self, servers: &[usize]) -> String {
        servers
            .iter()
            .map(|&s| self.servers[s].id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn assign(&self, server: usize, volume: usize, epoch: u64) -> Result<(), String> {
        assign_request(
            &self.http,
            self.servers[server].addr,
            &self.volumes[volume].id,
            epoch,
        )
        .await
    }

    async fn run_jobs(&mut self, jobs: Vec<Job>) {
        let mut running = JoinSet::new();
        for job in jobs {
            let http = self.http.clone();
            let id = self.volumes[job.volume].id.clone();
            let survivor = self.servers[job.survivor].addr;
            let target = self.servers[job.target].addr;
            running.spawn(async move {
                let res = async {
                    assign_request(&http, survivor, &id, job.epoch).await?;
                    let resp = http
                        .post(format!("http://{survivor}/volumes/{id}/copy"))
                        .json(&CopyMsg {
                            epoch: job.epoch,
                            target,
                        })
                        .timeout(COPY_TIMEOUT)
                        .send()
                        .await
                        .map_err(|e| format!("copy request failed: {e}"))?;
                    if resp.status().is_success() {
                        Ok(())
                    } else {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        Err(format!("copy answered {status}: {body}"))
                    }
                }
                .await;
                (job, res)
            });
        }
        while let Some(done) = running.join_next().await {
            let Ok((job, res)) = done else { continue };
            self.failovers_attempted += 1;
            let i = job.volume;
            // The epoch moved forward whether or not the copy worked (the assign may have landed).
            self.volumes[i].epoch = self.volumes[i].epoch.max(job.epoch);
            let to = Some(self.servers[job.target].id.clone());
            match res {
                Ok(()) => {
                    let v = &mut self.volumes[i];
                    let dropped: Vec<usize> = v
                        .replicas
                        .iter()
                        .copied()
                        .filter(|&s| s != job.survivor && s != job.target)
                        .collect();
                    v.replicas = vec![job.survivor, job.target];
                    v.no_capacity_counted = false;
                    for s in dropped {
                        self.pending_deletes.push((s, v.id.clone(), job.epoch));
                    }
                    self.events.emit(Event::Failover {
                        volume: self.volumes[i].id.clone(),
                        from: self.servers[job.from].id.clone(),
                        to,
                        outcome: FailoverOutcome::Remirrored,
                        detail: format!(
                            "{} is primary at epoch {}, mirrored to {}",
                            self.servers[job.survivor].id, job.epoch, self.servers[job.target].id
                        ),
                    });
                    self.set_state(i, VolumeState::Healthy, "re-mirrored");
                }
                Err(detail) => {
                    self.events.emit(Event::Failover {
                        volume: self.volumes[i].id.clone(),
                        from: self.servers[job.from].id.clone(),
                        to,
                        outcome: FailoverOutcome::CopyFailed,
                        detail,
                    });
                }
            }
        }
    }

    /// Tells servers to drop replicas that are no longer part of their volume, once they serve.
    async fn drop_orphans(&mut self) {
        if self.pending_deletes.is_empty() {
            return;
        }
        let healthy = self.healthy();
        let mut sends = JoinSet::new();
        let mut kept = Vec::new();
        for (k, (s, id, epoch)) in std::mem::take(&mut self.pending_deletes)
            .into_iter()
            .enumerate()
        {
            if !healthy[s] || k >= DELETES_PER_TICK {
                kept.push((s, id, epoch));
                continue;
            }
            let req = self
                .http
                .delete(format!(
                    "http://{}/volumes/{id}?below_epoch={epoch}",
                    self.servers[s].addr
                ))
                .timeout(ASSIGN_TIMEOUT);
            sends.spawn(async move {
                let done = matches!(req.send().await, Ok(r) if r.status().is_success() || r.status().as_u16() == 409);
                (done, (s, id, epoch))
            });
        }
        while let Some(res) = sends.join_next().await {
            if let Ok((false, entry)) = res {
                kept.push(entry);
            }
        }
        self.pending_deletes = kept;
    }
}

async fn assign_request(
    http: &reqwest::Client,
    server: SocketAddr,
    volume: &str,
    epoch: u64,
) -> Result<(), String> {
    let resp = http
        .post(format!("http://{server}/volumes/{volume}/assign"))
        .json(&AssignMsg {
            epoch,
            role: ReplicaRole::Primary,
            mirror: None,
        })
        .timeout(ASSIGN_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("assign failed: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("assign answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_valid_and_unknown_fields_are_refused() {
        let servers = vec![
            ServerEntry {
                id: "s000".into(),
                addr: "127.0.0.1:1".parse().expect("addr"),
            },
            ServerEntry {
                id: "s001".into(),
                addr: "127.0.0.1:2".parse().expect("addr"),
            },
        ];
        let c = Config::new(servers);
        c.validate().expect("defaults are valid");
        assert_eq!(c.volumes(), 7, "2 servers x 8 slots x 0.875 / 2");
        let json = serde_json::to_string(&c).expect("serialize");
        let back: Config = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, c);
        let typo = json.replace("\"seed\"", "\"sede\"");
        assert!(serde_json::from_str::<Config>(&typo).is_err());
        let mut one = c.clone();
        one.servers.truncate(1);
        assert!(one.validate().is_err());
        let mut bad = c;
        bad.fail_after = 9;
        assert!(bad.validate().is_err());
    }
}

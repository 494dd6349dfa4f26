//! The customers: a seeded mix of block reads and writes over every volume, and the check at the
//! end that every acknowledged write reads back.
//!
//! Writes to a block carry increasing values and a block never has two writes in flight, so the
//! value a block must hold at the end is known exactly: at least the last value acknowledged for
//! it (a later write that was refused may still have landed, which is allowed). A smaller value
//! read back is a lost acknowledged write, the one thing a storage system must never do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outage_lab_ebs_events::wire::{BlockValue, VolumeInfo};
use outage_lab_proto::report::LoadReport;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A block of a volume: (volume id, block number).
pub type BlockKey = (String, u32);

/// How often the load re-reads control's volume map.
const MAP_REFRESH: Duration = Duration::from_millis(250);
/// How often the load issues its next batch of requests.
const TICK: Duration = Duration::from_millis(10);
/// Most requests in flight at once.
const MAX_IN_FLIGHT: usize = 512;

/// What the load knows, shared between its request tasks.
#[derive(Debug, Default)]
pub struct LoadLedger {
    /// The highest value acknowledged per block.
    pub acked: BTreeMap<BlockKey, u64>,
    /// Acknowledged writes.
    pub acknowledged_writes: u64,
    /// Every latency of a finished request, ms.
    pub latencies_ms: Vec<f64>,
    /// Requests finished.
    pub requests: u64,
    /// Requests acknowledged.
    pub ok: u64,
    /// Requests refused, failed or late.
    pub errors: u64,
    /// Requests finished and of those failed, per customer account owning the volume (volumes
    /// nobody owns are not counted here).
    pub per_customer: BTreeMap<String, (u64, u64)>,
    /// Index into `latencies_ms` and counters where the current stats window starts.
    window_start: (usize, u64, u64, u64),
    /// Blocks with a write in flight.
    writing: BTreeSet<BlockKey>,
    /// The next value to write per block.
    next_value: BTreeMap<BlockKey, u64>,
}

impl LoadLedger {
    /// Counters of the window since the last call, and starts a new window.
    pub fn take_window(&mut self) -> LoadReport {
        let (lat0, req0, ok0, err0) = self.window_start;
        let mut window: Vec<f64> = self.latencies_ms[lat0..].to_vec();
        let report = LoadReport {
            requests: self.requests - req0,
            ok: self.ok - ok0,
            errors: self.errors - err0,
            p50_ms: percentile(&mut window, 0.50),
            p99_ms: percentile(&mut window, 0.99),
        };
        self.window_start = (self.latencies_ms.len(), self.requests, self.ok, self.errors);
        report
    }

    /// Counters of the whole run.
    pub fn total(&self) -> LoadReport {
        let mut all = self.latencies_ms.clone();
        LoadReport {
            requests: self.requests,
            ok: self.ok,
            errors: self.errors,
            p50_ms: percentile(&mut all, 0.50),
            p99_ms: percentile(&mut all, 0.99),
        }
    }
}

/// The `q` quantile of `values` (nearest rank), 0 when empty. Sorts `values`.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The load's settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Control's HTTP address.
    pub control: std::net::SocketAddr,
    /// Requests per second over all volumes.
    pub requests_per_second: f64,
    /// Share of reads.
    pub read_fraction: f64,
    /// How long a customer waits for one request.
    pub request_timeout: Duration,
    /// Seed of every choice.
    pub seed: u64,
    /// The lab clock: no request is sent while the run is frozen (a workshop stop).
    pub clock: outage_lab_engine::clock::LabClock,
}

/// Runs the load until `stop` is cancelled, then waits (at most one request timeout) for requests in
/// flight.
pub async fn run(
    config: LoadConfig,
    http: reqwest::Client,
    ledger: Arc<Mutex<LoadLedger>>,
    stop: CancellationToken,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut map: Vec<VolumeInfo> = Vec::new();
    let mut last_refresh: Option<Instant> = None;
    let mut credit = 0.0_f64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let per_tick = config.requests_per_second * TICK.as_secs_f64();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if config.clock.is_held() {
            continue;
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= MAP_REFRESH) {
            if let Ok(m) = fetch_map(&http, config.control).await {
                map = m;
            }
            last_refresh = Some(Instant::now());
        }
        if map.is_empty() {
            continue;
        }
        credit += per_tick;
        while credit >= 1.0 {
            credit -= 1.0;
            send_one(&mut rng, &map, &config, &http, &ledger, &in_flight);
        }
    }
    // Let requests in flight finish: their outcome decides what was acknowledged.
    let _ = tokio::time::timeout(
        config.request_timeout + Duration::from_millis(500),
        in_flight.acquire_many(MAX_IN_FLIGHT as u32),
    )
    .await;
}

/// Picks one request with `rng` (a volume of `map`, a block, a read or a write) and sends it
/// in a task of its own; gives up on it when too many are in flight already.
fn send_one(
    rng: &mut ChaCha8Rng,
    map: &[VolumeInfo],
    config: &LoadConfig,
    http: &reqwest::Client,
    ledger: &Arc<Mutex<LoadLedger>>,
    in_flight: &Arc<tokio::sync::Semaphore>,
) {
    let v = &map[rng.random_range(0..map.len())];
    let block = rng.random_range(0..v.blocks.max(1));
    let key = (v.id.clone(), block);
    let read = rng.random_bool(config.read_fraction.clamp(0.0, 1.0));
    let Ok(permit) = Arc::clone(in_flight).try_acquire_owned() else {
        // Saturated: the customer gives up on this one.
        lock(ledger).give_up();
        return;
    };
    let write_value = if read {
        None
    } else {
        lock(ledger).start_write(&key)
    };
    let request = Request {
        key,
        write_value,
        target: v.primary.as_ref().map(|(_, addr)| *addr),
        owner: v.owner.clone(),
    };
    tokio::spawn(send_and_settle(
        request,
        http.clone(),
        Arc::clone(ledger),
        config.request_timeout,
        config.clock.clone(),
        permit,
    ));
}

/// One customer request, chosen: the block, the value it writes (none for a read or a block
/// already being written), the primary serving its volume and the volume's owner.
struct Request {
    key: BlockKey,
    write_value: Option<u64>,
    target: Option<std::net::SocketAddr>,
    owner: Option<String>,
}

/// Sends `request`, then counts its outcome in `ledger` and lets go of its in-flight `permit`.
/// A request that failed while the lab was frozen under it is not counted.
async fn send_and_settle(
    request: Request,
    http: reqwest::Client,
    ledger: Arc<Mutex<LoadLedger>>,
    timeout: Duration,
    clock: outage_lab_engine::clock::LabClock,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let Request {
        key,
        write_value,
        target,
        owner,
    } = request;
    let started = Instant::now();
    let freezes = clock.freezes();
    let ok = match target {
        // A volume no replica serves: the customer's I/O is refused at once.
        None => false,
        Some(addr) => one_request(&http, addr, &key, write_value, timeout).await,
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut l = lock(&ledger);
    if !ok && clock.freezes() != freezes {
        // The storage server was frozen under it (a workshop stop): not the
        // customer's error. A write not acknowledged is simply not counted.
        if write_value.is_some() {
            l.writing.remove(&key);
        }
    } else {
        l.settle(key, write_value, owner, ok, ms);
    }
    drop(permit);
}

impl LoadLedger {
    /// Counts a request the customer gave up on before sending: too many were in flight.
    fn give_up(&mut self) {
        self.requests += 1;
        self.errors += 1;
    }

    /// The value a new write to `key` carries, with the block marked as being written; `None`
    /// while an earlier write to it is still in flight.
    fn start_write(&mut self, key: &BlockKey) -> Option<u64> {
        if self.writing.contains(key) {
            return None;
        }
        let next = self.next_value.entry(key.clone()).or_insert(0);
        *next += 1;
        let value = *next;
        self.writing.insert(key.clone());
        Some(value)
    }

    /// Counts one finished request (`ms` long) on `key`, by `owner`; a write of `write_value`
    /// that succeeded is acknowledged.
    fn settle(
        &mut self,
        key: BlockKey,
        write_value: Option<u64>,
        owner: Option<String>,
        ok: bool,
        ms: f64,
    ) {
        self.requests += 1;
        self.latencies_ms.push(ms);
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
        if let Some(owner) = owner {
            let (requests, errors) = self.per_customer.entry(owner).or_default();
            *requests += 1;
            *errors += u64::from(!ok);
        }
        if let Some(value) = write_value {
            self.writing.remove(&key);
            if ok {
                self.acknowledged_writes += 1;
                let acked = self.acked.entry(key).or_insert(0);
                *acked = (*acked).max(value);
            }
        }
    }
}

/// The ledger, even if a request task panicked while holding it (its counters stay usable).
pub fn lock(ledger: &Mutex<LoadLedger>) -> std::sync::MutexGuard<'_, LoadLedger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn one_request(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    (volume, block): &BlockKey,
    write: Option<u64>,
    timeout: Duration,
) -> bool {
    let url = format!("http://{addr}/volumes/{volume}/blocks/{block}");
    let req = match write {
        Some(value) => http.put(url).json(&BlockValue { value }),
        None => http.get(url),
    };
    matches!(req.timeout(timeout).send().await, Ok(r) if r.status().is_success())
}

/// Why control's volume map could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Control did not answer.
    #[error("GET {url}: {source}")]
    Request {
        /// The map's URL.
        url: String,
        /// What the HTTP client found.
        source: reqwest::Error,
    },
    /// Control answered with an error status.
    #[error("GET {url} answered {status}")]
    Status {
        /// The map's URL.
        url: String,
        /// Its answer.
        status: reqwest::StatusCode,
    },
    /// Control's answer is not a volume map.
    #[error("GET {url}: {source}")]
    Decode {
        /// The map's URL.
        url: String,
        /// What the JSON reader found.
        source: reqwest::Error,
    },
}

/// Control's volume map.
pub async fn fetch_map(
    http: &reqwest::Client,
    control: std::net::SocketAddr,
) -> Result<Vec<VolumeInfo>, LoadError> {
    let url = format!("http://{control}/volumes");
    let resp = match http.get(&url).timeout(Duration::from_secs(2)).send().await {
        Ok(resp) => resp,
        Err(source) => return Err(LoadError::Request { url, source }),
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(LoadError::Status { url, status });
    }
    resp.json()
        .await
        .map_err(|source| LoadError::Decode { url, source })
}

/// The outcome of reading every acknowledged write back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCheck {
    /// Blocks checked (each with at least one acknowledged write).
    pub checked: u64,
    /// Blocks that read back older than their last acknowledged value: (block, acked, read).
    pub lost: Vec<(BlockKey, u64, u64)>,
    /// Blocks that could not be read at all (their volume had no serving replica).
    pub unreadable: Vec<BlockKey>,
}

/// Compares what was acknowledged with what was read back. Pure: the heart of the check.
pub fn compare(
    acked: &BTreeMap<BlockKey, u64>,
    read: &BTreeMap<BlockKey, Option<u64>>,
) -> WriteCheck {
    let mut check = WriteCheck::default();
    for (key, &value) in acked {
        check.checked += 1;
        match read.get(key).copied().flatten() {
            Some(got) if got >= value => {}
            Some(got) => check.lost.push((key.clone(), value, got)),
            None => check.unreadable.push(key.clone()),
        }
    }
    check
}

/// Reads back every block with an acknowledged write from its volume's current primary.
pub async fn read_back(
    http: &reqwest::Client,
    control: std::net::SocketAddr,
    acked: &BTreeMap<BlockKey, u64>,
) -> Result<WriteCheck, LoadError> {
    let map = fetch_map(http, control).await?;
    let primaries: BTreeMap<&str, std::net::SocketAddr> = map
        .iter()
        .filter_map(|v| v.primary.as_ref().map(|(_, a)| (v.id.as_str(), *a)))
        .collect();
    let mut read = BTreeMap::new();
    let mut pending = tokio::task::JoinSet::new();
    for key in acked.keys() {
        let Some(&addr) = primaries.get(key.0.as_str()) else {
            read.insert(key.clone(), None);
            continue;
        };
        let http = http.clone();
        let key = key.clone();
        pending.spawn(async move {
            let url = format!("http://{addr}/volumes/{}/blocks/{}", key.0, key.1);
            // A read may meet a busy disk: try a few times before calling it unreadable.
            for _ in 0..5 {
                if let Ok(r) = http.get(&url).timeout(Duration::from_secs(1)).send().await
                    && r.status().is_success()
                    && let Ok(v) = r.json::<BlockValue>().await
                {
                    return (key, Some(v.value));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (key, None)
        });
        while pending.len() >= 64 {
            if let Some(Ok((k, v))) = pending.join_next().await {
                read.insert(k, v);
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        if let Ok((k, v)) = done {
            read.insert(k, v);
        }
    }
    Ok(compare(acked, &read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str, b: u32) -> BlockKey {
        (v.to_owned(), b)
    }

    #[test]
    fn the_checker_finds_a_planted_lost_write() {
        let acked = BTreeMap::from([(key("v0", 1), 5), (key("v0", 2), 3), (key("v1", 0), 9)]);
        let read = BTreeMap::from([
            (key("v0", 1), Some(5)),
            // Planted: block 2 was acknowledged at 3 but reads back 2.
            (key("v0", 2), Some(2)),
            (key("v1", 0), None),
        ]);
        let check = compare(&acked, &read);
        assert_eq!(check.checked, 3);
        assert_eq!(check.lost, vec![(key("v0", 2), 3, 2)]);
        assert_eq!(check.unreadable, vec![key("v1", 0)]);
    }

    #[test]
    fn a_newer_value_than_the_last_acknowledged_one_is_not_a_loss() {
        // A write refused to the customer may still have landed on both copies.
        let acked = BTreeMap::from([(key("v0", 0), 4)]);
        let read = BTreeMap::from([(key("v0", 0), Some(6))]);
        assert_eq!(compare(&acked, &read).lost, vec![]);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut [], 0.99), 0.0);
        assert_eq!(percentile(&mut [7.0], 0.5), 7.0);
    }

    #[test]
    fn a_window_counts_only_what_finished_since_the_last_one() {
        let mut l = LoadLedger {
            requests: 3,
            ok: 2,
            errors: 1,
            latencies_ms: vec![1.0, 2.0, 3.0],
            ..LoadLedger::default()
        };
        assert_eq!(l.take_window().requests, 3);
        l.requests += 1;
        l.ok += 1;
        l.latencies_ms.push(10.0);
        let w = l.take_window();
        assert_eq!((w.requests, w.ok, w.errors, w.p50_ms), (1, 1, 0, 10.0));
        assert_eq!(l.total().requests, 4);
    }
}

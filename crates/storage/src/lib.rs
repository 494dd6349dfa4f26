//! The `storage` role: an EBS storage server that spends its memory budget on a block cache.
//!
//! A storage server in this lab is a pair of processes sharing one memory budget: this one and
//! the reporting `agent` (see `DESIGN.md`). Every `resize_interval`, storage reads the agent's
//! resident memory from `/proc`, works out what the budget leaves for the cache (the arithmetic,
//! with a diagram, is in `src/sizing.rs`) and moves the cache there in one step. The
//! cache is real memory — one anonymous mapping with a resident prefix — so the kernel, `ps` and
//! the watchdog all see exactly what the cache holds.
//!
//! Customers read and write blocks over HTTP (`GET`/`PUT /blocks/{n}`). Hits are served from the
//! cache; misses queue for a single simulated disk. While the agent is healthy the whole working
//! set fits and requests are fast. A leaking agent squeezes the cache below the working set,
//! misses pile up on the disk, and requests start missing their deadline (`503`): the stuck
//! volumes of 22 October 2012.
//!
//! Events: one [`Event::Ready`] once serving, then an [`Event::StorageStats`] every
//! `stats_interval`.

mod cache;
mod http;
mod mapping;
mod metrics;
mod shared;
mod sizing;
mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use outage_lab_ebs_events::{Event, EventSink};
use outage_lab_proto::server::HttpServer;
use outage_lab_proto::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::cache::BlockCache;
pub use crate::shared::Health;
use crate::shared::Shared;
use crate::sizing::Sizing;

/// How long in-flight requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Configuration of one storage process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server id (`s003`); names this server in events.
    pub server: String,
    /// Memory budget of the whole server (storage and agent together). The cache's address
    /// space is reserved at this size once, at start.
    #[serde(default = "default_budget")]
    pub budget: ByteSize,
    /// Share of the budget the server aims to keep in use, in (0, 1]. The rest is headroom.
    #[serde(default = "default_fill_fraction")]
    pub fill_fraction: f64,
    /// File holding the agent's pid in decimal. Re-read every resize tick, because the agent
    /// gets restarted; a missing or unreadable file, or a dead pid, counts as an agent using no
    /// memory.
    #[serde(default)]
    pub agent_pid_file: Option<PathBuf>,
    /// Whether the agent may fork (an agent the lab did not write): its memory is then read as
    /// its whole process tree, which costs a scan of `/proc` every resize tick.
    #[serde(default)]
    pub agent_tree: bool,
    /// Bytes of blocks customers touch: block `n` is slot `n % (working_set / block_size)`.
    /// While the cache holds less than this, the server is degraded.
    #[serde(default = "default_working_set")]
    pub working_set: ByteSize,
    /// Size of one block: the unit of caching and of customer I/O. Must be a multiple of the
    /// memory page size.
    #[serde(default = "default_block_size")]
    pub block_size: ByteSize,
    /// How often the cache is resized to follow the agent's memory.
    #[serde(default = "default_resize_interval")]
    pub resize_interval: HumanDuration,
    /// How often a `storage_stats` event is emitted.
    #[serde(default = "default_stats_interval")]
    pub stats_interval: HumanDuration,
    /// What reading one block that is not in cache costs: the disk is held this long.
    #[serde(default = "default_miss_penalty")]
    pub miss_penalty: HumanDuration,
    /// A request that cannot be answered within this is answered `503 deadline exceeded`.
    #[serde(default = "default_request_deadline")]
    pub request_deadline: HumanDuration,
    /// Real memory each volume replica occupies on this server (its stored data).
    #[serde(default = "default_replica_size")]
    pub replica_size: ByteSize,
    /// Block reads one health probe (`GET /probe`) makes through the cache and disk.
    #[serde(default = "default_probe_blocks")]
    pub probe_blocks: u64,
}

fn default_budget() -> ByteSize {
    ByteSize::mib(48)
}
fn default_fill_fraction() -> f64 {
    0.9
}
fn default_working_set() -> ByteSize {
    ByteSize::mib(16)
}
fn default_block_size() -> ByteSize {
    ByteSize::kib(64)
}
fn default_resize_interval() -> HumanDuration {
    HumanDuration::millis(100)
}
fn default_stats_interval() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_miss_penalty() -> HumanDuration {
    HumanDuration::millis(10)
}
fn default_request_deadline() -> HumanDuration {
    HumanDuration::millis(50)
}
fn default_replica_size() -> ByteSize {
    ByteSize::kib(256)
}
fn default_probe_blocks() -> u64 {
    16
}

impl Default for Config {
    /// Every documented default, with an empty `server` that must be filled in before
    /// [`Config::validate`] accepts it (or use [`Config::new`]).
    fn default() -> Self {
        Self {
            server: String::new(),
            budget: default_budget(),
            fill_fraction: default_fill_fraction(),
            agent_pid_file: None,
            agent_tree: false,
            working_set: default_working_set(),
            block_size: default_block_size(),
            resize_interval: default_resize_interval(),
            stats_interval: default_stats_interval(),
            miss_penalty: default_miss_penalty(),
            request_deadline: default_request_deadline(),
            replica_size: default_replica_size(),
            probe_blocks: default_probe_blocks(),
        }
    }
}

impl Config {
    /// A configuration with every default, for server `server`.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            ..Self::default()
        }
    }

    /// Checks the values that serde cannot: ranges and relations between fields. The page-size
    /// check on `block_size` needs the running machine and happens in [`run`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.server.is_empty() {
            return bad("server must not be empty".into());
        }
        if !(self.fill_fraction > 0.0 && self.fill_fraction <= 1.0) {
            return bad(format!(
                "fill_fraction must be in (0, 1], got {}",
                self.fill_fraction
            ));
        }
        if self.block_size.bytes() == 0 {
            return bad("block_size must not be zero".into());
        }
        if self.budget < self.block_size {
            return bad(format!(
                "budget {} is smaller than one block ({})",
                self.budget, self.block_size
            ));
        }
        if usize::try_from(self.budget.bytes()).is_err() {
            return bad(format!("budget {} does not fit in memory", self.budget));
        }
        if self.working_set < self.block_size {
            return bad(format!(
                "working_set {} is smaller than one block ({})",
                self.working_set, self.block_size
            ));
        }
        if self.probe_blocks == 0 || self.probe_blocks > 1024 {
            return bad(format!(
                "probe_blocks must be in 1..=1024, got {}",
                self.probe_blocks
            ));
        }
        if usize::try_from(self.replica_size.bytes()).is_err() {
            return bad(format!(
                "replica_size {} does not fit in memory",
                self.replica_size
            ));
        }
        for (name, d) in [
            ("resize_interval", self.resize_interval),
            ("stats_interval", self.stats_interval),
        ] {
            if d.get().is_zero() {
                return bad(format!("{name} must be longer than 0ms"));
            }
        }
        Ok(())
    }
}

/// The sockets storage serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Customer I/O and `/health`.
    pub http: tokio::net::TcpListener,
}

/// Why the storage role stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid storage config: {0}")]
    Config(String),
    /// The cache's address space could not be reserved.
    #[error("could not reserve {bytes} bytes for the block cache: {source}")]
    Reserve {
        /// The budget that was asked for.
        bytes: u64,
        /// What mmap said.
        source: std::io::Error,
    },
    /// Growing or shrinking the cache failed (a bug: the ranges are computed, not input).
    #[error("could not resize the block cache: {0}")]
    Resize(std::io::Error),
    /// The listener's address could not be read.
    #[error("could not read the HTTP listener's address: {0}")]
    LocalAddr(std::io::Error),
    /// The HTTP server failed or stopped on its own.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs a storage server until `shutdown` is cancelled.
///
/// Sizes the cache once before serving (so the first request already sees a warm cache), then
/// logs the real address, emits one [`Event::Ready`] and keeps resizing and reporting. Returns
/// `Ok` once shutdown is requested and in-flight requests have finished (at most a couple of
/// seconds).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    config.validate()?;
    let cache = reserve_cache(&config)?;
    let shared = Arc::new(shared_state(&config, cache));
    let volumes = Arc::new(volumes::Volumes::new(
        usize::try_from(config.replica_size.bytes()).unwrap_or(usize::MAX),
        config.probe_blocks,
    ));
    let mut resizer = Resizer::new(&config, Arc::clone(&shared));
    resizer.resize_once().await?;

    let mut server = serve_http(&config, listeners, &shutdown, &events, &shared, &volumes)?;

    let mut resize_tick = tokio::time::interval(config.resize_interval.get());
    resize_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stats_tick = tokio::time::interval(config.stats_interval.get());
    stats_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Checked first: when shutdown is requested the HTTP server stops gracefully at the
            // same moment, and that stop must not be mistaken for a failure.
            biased;
            () = shutdown.cancelled() => break,
            e = server.stopped_unasked() => return Err(Error::Serve(e)),
            _ = resize_tick.tick() => resizer.resize_once().await?,
            _ = stats_tick.tick() => emit_stats(&config.server, &shared, &volumes, &events),
        }
    }

    // Bounded drain: requests in flight finish (a miss takes at most request_deadline), idle
    // keep-alive connections are closed by the graceful shutdown.
    server.drain(DRAIN_TIMEOUT).await.map_err(Error::Serve)?;
    tracing::info!(server = %config.server, "storage stopped");
    Ok(())
}

/// Checks that a block is whole pages on this machine, then reserves the cache's address space
/// at the full budget.
fn reserve_cache(config: &Config) -> Result<BlockCache, Error> {
    let page = mapping::page_size() as u64;
    let block_size = config.block_size.bytes();
    if !block_size.is_multiple_of(page) {
        return Err(Error::Config(format!(
            "block_size {} is not a multiple of the page size ({page} bytes)",
            config.block_size
        )));
    }
    let budget = config.budget.bytes();
    // validate() checked that the budget fits in usize.
    let capacity = usize::try_from(budget).unwrap_or(usize::MAX);
    BlockCache::new(capacity, block_size as usize).map_err(|source| Error::Reserve {
        bytes: budget,
        source,
    })
}

/// The state the handlers and the resize loop share, around `cache`, with every counter at zero.
fn shared_state(config: &Config, cache: BlockCache) -> Shared {
    let block_size = config.block_size.bytes();
    Shared {
        cache: RwLock::new(cache),
        block_size,
        working_set_blocks: config.working_set.bytes().div_ceil(block_size).max(1),
        miss_penalty: config.miss_penalty.get(),
        request_deadline: config.request_deadline.get(),
        disk: Semaphore::new(1),
        cache_bytes: AtomicU64::new(0),
        cache_target_bytes: AtomicU64::new(0),
        agent_rss_bytes: AtomicU64::new(0),
        hits: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        deadline_misses: AtomicU64::new(0),
        probes: AtomicU64::new(0),
    }
}

/// Starts serving customer I/O on the HTTP listener, logs its real address and emits the one
/// [`Event::Ready`].
fn serve_http(
    config: &Config,
    listeners: Listeners,
    shutdown: &CancellationToken,
    events: &EventSink,
    shared: &Arc<Shared>,
    volumes: &Arc<volumes::Volumes>,
) -> Result<HttpServer, Error> {
    let addr = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let app = metrics::instrument(
        http::router(Arc::clone(shared), Arc::clone(volumes)),
        &config.server,
        Arc::clone(shared),
    );
    let server = HttpServer::spawn(axum::serve(listeners.http, app), shutdown);
    tracing::info!(server = %config.server, "storage listening for HTTP on {addr}");
    events.emit(Event::Ready {
        role: "storage".into(),
        addrs: BTreeMap::from([("http".to_owned(), addr)]),
    });
    Ok(server)
}

/// Emits one [`Event::StorageStats`]: the cache, its target, the agent's memory and whether
/// the server is degraded, right now.
fn emit_stats(server: &str, shared: &Shared, volumes: &volumes::Volumes, events: &EventSink) {
    let h = shared.health(volumes.len());
    events.emit(Event::StorageStats {
        server: server.to_owned(),
        cache_bytes: h.cache_bytes,
        cache_target_bytes: h.cache_target_bytes,
        agent_rss_bytes: h.agent_rss_bytes,
        degraded: h.degraded,
    });
}

/// The resize loop's state: reads memory, computes the target, moves the cache.
struct Resizer {
    sizing: Sizing,
    meters: sizing::Meters,
    shared: Arc<Shared>,
}

impl Resizer {
    /// The resizer for `config`'s budget and agent, moving the cache in `shared`.
    fn new(config: &Config, shared: Arc<Shared>) -> Self {
        Self {
            sizing: Sizing {
                budget: config.budget.bytes(),
                fill_fraction: config.fill_fraction,
                block_size: config.block_size.bytes(),
            },
            meters: sizing::Meters::new(config.agent_pid_file.clone(), config.agent_tree),
            shared,
        }
    }

    /// One tick: measure, compute the target, and move the cache there in one step.
    ///
    /// One step, never a gradual ramp: a cache that warmed up over seconds would look, to a
    /// per-process trend detector, exactly like a leak. A single jump is a step, which the
    /// watchdog's detector is built to ignore.
    async fn resize_once(&mut self) -> Result<(), Error> {
        // While the agent is absent (a restart), keep its last known share of the budget.
        let agent_rss = (self.meters.agent_rss())
            .unwrap_or_else(|| self.shared.agent_rss_bytes.load(Ordering::Relaxed));
        let cache_bytes = self.shared.cache_bytes.load(Ordering::Relaxed);
        // If our own statm cannot be read (no /proc?), assume the cache is all we hold: the
        // target then only follows the agent.
        let own_rss = self.meters.own_rss().unwrap_or(cache_bytes);
        let target = self.sizing.target(agent_rss, own_rss, cache_bytes);
        self.shared
            .agent_rss_bytes
            .store(agent_rss, Ordering::Relaxed);
        self.shared
            .cache_target_bytes
            .store(target, Ordering::Relaxed);
        if target == cache_bytes {
            return Ok(());
        }
        // Growing writes up to the whole budget (tens of MiB): do it on a blocking thread so
        // the runtime keeps serving other tasks meanwhile.
        let shared = Arc::clone(&self.shared);
        let resized = tokio::task::spawn_blocking(move || {
            let mut cache = shared.write_cache();
            let res = cache.resize(target);
            shared
                .cache_bytes
                .store(cache.cached_bytes(), Ordering::Relaxed);
            res
        })
        .await
        .map_err(|join| Error::Resize(std::io::Error::other(join)))?;
        resized.map_err(Error::Resize)?;
        if self.shared.degraded(target) != self.shared.degraded(cache_bytes) {
            tracing::info!(
                cache_bytes = target,
                agent_rss,
                "cache {} the working set",
                if self.shared.degraded(target) {
                    "can no longer hold"
                } else {
                    "holds"
                }
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_match_the_documented_values() {
        let c: Config = serde_json::from_str(r#"{"server":"s003"}"#).expect("parse");
        assert_eq!(c, Config::new("s003"));
        assert_eq!(c.budget, ByteSize::mib(48));
        assert_eq!(c.block_size, ByteSize::kib(64));
        assert_eq!(c.request_deadline, HumanDuration::millis(50));
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<Config>(r#"{"server":"s0","bugdet":"1MiB"}"#).is_err());
        let mut c = Config::new("s0");
        c.fill_fraction = 0.0;
        assert!(c.validate().is_err());
        c.fill_fraction = 1.5;
        assert!(c.validate().is_err());
        c.fill_fraction = f64::NAN;
        assert!(c.validate().is_err());
        let mut c = Config::new("s0");
        c.working_set = ByteSize::kib(4);
        assert!(c.validate().is_err());
        let mut c = Config::new("s0");
        c.resize_interval = HumanDuration::millis(0);
        assert!(c.validate().is_err());
    }
}

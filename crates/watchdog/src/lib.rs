//! The `watchdog` role: samples the resident memory of every agent and storage process and runs
//! two alarms side by side.
//!
//! * **aggregate** ([`AggregateAlarm`]) — the monitoring of October 2012: a server's agent +
//!   storage RSS above a share of its budget. Because storage fills whatever the agent leaves,
//!   this stays quiet while a leak squeezes the cache out.
//! * **leak** ([`LeakDetector`]) — the monitoring AWS added afterwards: a sustained rise in one
//!   process's RSS. It catches the leaking agent and ignores the storage cache's warm-up steps.
//!
//! The harness tells the watchdog what to watch through a small admin API (`PUT /targets`, see
//! the `admin` module docs). Every `sample_interval` the watchdog reads the RSS of every target
//! from `/proc` (or asks the launcher that started it, see [`launchers`]), emits one [`Event::RssSweep`], feeds the alarms and emits an [`Event::Alarm`]
//! for each one that fires.

mod admin;
pub mod aggregate;
mod caches;
pub mod discover;
mod launchers;
pub mod leak;
mod metrics;
pub mod statm;
mod sweep;
pub mod tree;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outage_lab_ebs_events::wire::Target;
use outage_lab_ebs_events::{AlarmKind, Event, EventSink};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::server::HttpServer;
use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminState;
pub use crate::admin::Health;
pub use crate::aggregate::{AggregateAlarm, AggregateConfig};
use crate::launchers::Launchers;
pub use crate::leak::{LeakConfig, LeakDetector};
use crate::sweep::{Readings, Sweeper};

/// How long in-flight admin requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Configuration of the watchdog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often every watched process's RSS is read.
    #[serde(default = "default_sample_interval")]
    pub sample_interval: HumanDuration,
    /// The per-process leak rule (the fixed monitoring).
    #[serde(default)]
    pub leak: LeakConfig,
    /// The per-server aggregate rule (the 2012 monitoring).
    #[serde(default)]
    pub aggregate: AggregateConfig,
    /// Bearer token for `PUT /targets`. `None`: only loopback peers may change targets.
    #[serde(default)]
    pub admin_token: Option<String>,
}

fn default_sample_interval() -> HumanDuration {
    HumanDuration::millis(250)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_interval: default_sample_interval(),
            leak: LeakConfig::default(),
            aggregate: AggregateConfig::default(),
            admin_token: None,
        }
    }
}

impl Config {
    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        if self.sample_interval.get().is_zero() {
            return Err(Error::Config(
                "sample_interval must be longer than 0ms".into(),
            ));
        }
        if self.admin_token.as_deref() == Some("") {
            return Err(Error::Config(
                "admin_token must not be empty (leave it out to allow loopback clients only)"
                    .into(),
            ));
        }
        self.leak.validate().map_err(Error::Config)?;
        self.aggregate.validate().map_err(Error::Config)?;
        Ok(())
    }
}

/// The sockets the watchdog serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// The admin API.
    pub admin: tokio::net::TcpListener,
}

/// Why the watchdog stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid watchdog config: {0}")]
    Config(String),
    /// /proc cannot be read: the watchdog has nothing to read memory from.
    #[error("cannot read process information from /proc: {0}")]
    Proc(#[source] std::io::Error),
    /// The listener's address could not be read.
    #[error("could not read the admin listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The admin server failed or stopped on its own.
    #[error("admin server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A sweep's blocking task panicked (a bug).
    #[error("RSS sweep failed: {0}")]
    Sweep(String),
}

/// Runs the watchdog until `shutdown` is cancelled.
///
/// Logs the real admin address, emits one [`Event::Ready`], then sweeps every
/// `sample_interval` while anything is watched. Returns `Ok` once shutdown is requested and
/// in-flight admin requests have finished (bounded by a couple of seconds).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    config.validate()?;
    std::fs::metadata("/proc/self/statm").map_err(Error::Proc)?;
    let reader = Arc::new(Mutex::new(statm::StatmReader::new()));
    let state = Arc::new(AdminState::new(config.admin_token.clone()));
    let metrics = Arc::new(metrics::Metrics::new());
    let mut server = serve_admin(listeners.admin, &state, &metrics, &shutdown, &events)?;

    let mut sweeper = Sweeper::new(config.leak.clone(), config.aggregate.clone());
    let launchers = Launchers::new(config.sample_interval.get(), config.admin_token.clone())
        .map_err(|e| Error::Sweep(format!("no HTTP client for the launchers: {e}")))?;
    let caches = (config.aggregate.net_of_cache).then(|| {
        caches::watch(
            Arc::clone(&state),
            config.sample_interval.get(),
            shutdown.clone(),
        )
    });
    let mut seen_version = 0;
    // Samples are stamped with active time, so a workshop freeze is no gap without growth.
    let mut clock = outage_lab_proto::freeze::ActiveClock::new(config.sample_interval.get());
    let mut tick = tokio::time::interval(config.sample_interval.get());
    // A late sweep is taken late, not twice in a row: the detector's segments are by time.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Checked first: on shutdown the HTTP server stops gracefully at the same moment, and
            // that stop must not be mistaken for a failure.
            biased;
            () = shutdown.cancelled() => break,
            e = server.stopped_unasked() => return Err(Error::Serve(e)),
            _ = tick.tick() => {
                let targets =
                    refresh_targets(&state, &mut sweeper, &mut seen_version, caches.as_ref());
                if targets.is_empty() {
                    continue;
                }
                let at = clock.now();
                let readings = read(&sweeper, &reader, &launchers).await?;
                state.sweeps.fetch_add(1, Ordering::Relaxed);
                for event in sweeper.sweep(&readings, at) {
                    publish(event, &targets, &metrics, &state, &events);
                }
            }
        }
    }

    server.drain(DRAIN_TIMEOUT).await.map_err(Error::Serve)?;
    tracing::info!("watchdog stopped");
    Ok(())
}

/// Starts the admin API (targets, health and `/metrics`) on `listener`, logs its real address
/// and emits the one [`Event::Ready`].
fn serve_admin(
    listener: tokio::net::TcpListener,
    state: &Arc<AdminState>,
    metrics: &Arc<metrics::Metrics>,
    shutdown: &CancellationToken,
    events: &EventSink,
) -> Result<HttpServer, Error> {
    let addr = listener.local_addr().map_err(Error::LocalAddr)?;
    let app = admin::router(Arc::clone(state)).merge(Arc::clone(metrics).router());
    let server = HttpServer::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        ),
        shutdown,
    );
    tracing::info!("watchdog admin API listening on {addr}");
    events.emit(Event::Ready {
        role: "watchdog".into(),
        addrs: BTreeMap::from([("admin".to_owned(), addr)]),
    });
    Ok(server)
}

/// The targets the admin API holds now. Hands them to the sweeper when they changed since
/// `seen_version`, and the storage caches' latest sizes when the aggregate counts net of them.
fn refresh_targets(
    state: &AdminState,
    sweeper: &mut Sweeper,
    seen_version: &mut u64,
    caches: Option<&caches::Caches>,
) -> Vec<Target> {
    let (version, targets) = state.targets();
    if version != *seen_version {
        sweeper.set_targets(&targets);
        *seen_version = version;
    }
    if let Some(caches) = caches {
        sweeper.set_caches(caches::latest(caches));
    }
    targets
}

/// Sends one of a sweep's events on: a sweep to the metrics, an alarm to the admin counters,
/// the metrics and the log; then every event to `events`.
fn publish(
    event: Event,
    targets: &[Target],
    metrics: &metrics::Metrics,
    state: &AdminState,
    events: &EventSink,
) {
    if let Event::RssSweep { samples } = &event {
        metrics.record_sweep(samples, targets);
    }
    if let Event::Alarm {
        alarm,
        server,
        role,
        pid,
        detail,
    } = &event
    {
        let counter = match alarm {
            AlarmKind::Leak => &state.leak_alarms,
            AlarmKind::Aggregate | AlarmKind::CacheAwareAggregate => &state.aggregate_alarms,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics.alarm(*alarm);
        tracing::warn!(%alarm, %server, ?role, ?pid, "alarm: {detail}");
    }
    events.emit(event);
}

/// One sweep's readings: the targets read here from `/proc` (off the async threads), and those
/// their launchers read, asked at the same time.
async fn read(
    sweeper: &Sweeper,
    reader: &Arc<Mutex<statm::StatmReader>>,
    launchers: &Launchers,
) -> Result<Readings, Error> {
    let pids = sweeper.live_pids();
    let trees = sweeper.live_trees();
    let reader = Arc::clone(reader);
    let local = tokio::task::spawn_blocking(move || {
        let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
        let mut readings = reader.read(&pids);
        tree::add_descendants(&mut readings, &trees, reader.page_size());
        readings
    });
    let mut readings = Readings::default();
    launchers.read(sweeper.live_remote(), &mut readings).await;
    let by_pid = local.await.map_err(|e| Error::Sweep(e.to_string()))?;
    sweeper.local_readings(&by_pid, &mut readings);
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_gets_the_documented_defaults() {
        let c: Config = serde_json::from_str("{}").expect("parse");
        assert_eq!(c, Config::default());
        assert_eq!(c.sample_interval, HumanDuration::millis(250));
        assert_eq!(c.leak.window, HumanDuration::secs(4));
        assert_eq!(c.leak.segments, 4);
        assert_eq!(c.aggregate.for_samples, 4);
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"sample_intervall":"1s"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"leak":{"windw":"1s"}}"#).is_err());
        let c: Config = serde_json::from_str(r#"{"leak":{"segments":1}}"#).expect("parse");
        assert!(c.validate().is_err());
        let c: Config = serde_json::from_str(r#"{"admin_token":""}"#).expect("parse");
        assert!(c.validate().is_err());
        let c: Config = serde_json::from_str(r#"{"sample_interval":"0ms"}"#).expect("parse");
        assert!(c.validate().is_err());
    }
}

//! The reporting agent that runs beside every storage server, and holds the 2012 bug.
//!
//! Every `report_interval` the agent resolves `collector.lab.internal` through the one DNS server
//! it is assigned (never the system resolver) and posts a [`ReportMsg`] to the first address it
//! got. That is the whole job; what matters is what happens when the post fails:
//!
//! * `retry: { mode: leaky }` (the 2012 agent) keeps every failed report plus a buffer of really
//!   written memory, forever. An agent whose DNS server still names the dead collector fails every
//!   attempt, so its resident memory climbs steadily, and only a restart gives it back.
//! * `retry: { mode: fixed }` keeps a bounded queue of sequence numbers and backs off.
//!
//! The retry rules live in [`retry`] as pure, unit-tested code; this module is the I/O around them.
//!
//! Events (one JSON line each on the role's stdout): one `Ready`; `AgentResolved` whenever the
//! resolved address set changes (the first resolution included); `AgentResolveFailed` when
//! resolution starts failing or fails in a new way; `AgentStats` every `stats_interval` and once
//! more on shutdown.
//!
//! DNS caching is the resolver's: hickory-resolver keeps an answer for its TTL and asks again
//! after, so a record change reaches the agent one TTL later, exactly as it reached the 2012 fleet.
//! The agent builds one resolver for its whole life. It keeps the resolver's last answer until
//! the instant the resolver's cache itself gives it up (`valid_until`), so a report within the
//! TTL skips the lookup machinery that would only have answered from that cache: at several
//! reports a second and a 1 s TTL that was a tenth of an agent's CPU. It never holds an answer
//! longer than the resolver would, and a failed lookup is never kept.

mod metrics;
pub mod retry;
mod spool;

use std::collections::BTreeMap;
use std::mem::discriminant;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use outage_lab_ebs_events::wire::ReportMsg;
use outage_lab_ebs_events::{COLLECTOR_NAME, Event, EventSink};
use outage_lab_proto::HumanDuration;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use retry::{
    FailureEffect, FleetRetryPolicy, RetryPolicy, RetryPolicyOf, RetryState, backoff_delay,
};

/// Configuration of one agent process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Storage server id this agent runs on (e.g. "s003").
    pub server: String,
    /// The one DNS server this agent resolves through (ip:port). No system resolver, ever: which
    /// DNS server an agent uses is what decides whether it sees the stale record.
    pub dns_server: SocketAddr,
    /// TCP port of the collector; the address comes from DNS (`collector.lab.internal`).
    pub collector_port: u16,
    /// How often a report is due.
    #[serde(default = "default_report_interval")]
    pub report_interval: HumanDuration,
    /// Deadline for one report POST (connect + response), and for one DNS query.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// How often to emit `Event::AgentStats`.
    #[serde(default = "default_stats_interval")]
    pub stats_interval: HumanDuration,
    /// What happens to a report that could not be sent.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Seed for the backoff jitter (every random choice flows from the scenario seed).
    pub seed: u64,
}

fn default_report_interval() -> HumanDuration {
    HumanDuration::millis(100)
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::millis(500)
}

fn default_stats_interval() -> HumanDuration {
    HumanDuration::secs(1)
}

impl Default for Config {
    /// The documented defaults for the optional fields. The fields with no default in a config
    /// file (`server`, `dns_server`, `collector_port`, `seed`) are placeholders here (`s000`,
    /// `127.0.0.1:53`, port 0, seed 0) that a caller is expected to overwrite, as in
    /// `Config { server, dns_server, collector_port, seed, ..Config::default() }`.
    fn default() -> Self {
        Self {
            server: "s000".into(),
            dns_server: SocketAddr::from(([127, 0, 0, 1], 53)),
            collector_port: 0,
            report_interval: default_report_interval(),
            request_timeout: default_request_timeout(),
            stats_interval: default_stats_interval(),
            retry: RetryPolicy::default(),
            seed: 0,
        }
    }
}

impl Config {
    /// Checks values that would make the agent misbehave (zero intervals, an inverted backoff).
    pub fn validate(&self) -> Result<(), Error> {
        let zero = |what: &str, d: HumanDuration| {
            d.get()
                .is_zero()
                .then(|| Error::InvalidConfig(format!("{what} must be greater than 0ms")))
        };
        if let Some(err) = zero("report_interval", self.report_interval)
            .or_else(|| zero("request_timeout", self.request_timeout))
            .or_else(|| zero("stats_interval", self.stats_interval))
        {
            return Err(err);
        }
        self.retry.validate().map_err(Error::InvalidConfig)
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("invalid agent config: {0}")]
    InvalidConfig(String),
    /// The DNS resolver could not be built.
    #[error("failed to build the DNS resolver for {dns_server}")]
    Resolver {
        /// The DNS server it was for.
        dns_server: SocketAddr,
        /// What hickory said.
        #[source]
        source: NetError,
    },
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The metrics listener's address could not be read.
    #[error("could not read the metrics listener's address")]
    MetricsListener(#[source] std::io::Error),
    /// The on-disk spool of unsent reports could not be created.
    #[error("could not create the report spool in {dir}")]
    Spool {
        /// The directory it was to be created in (the system's temporary directory).
        dir: std::path::PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` is cancelled, then emits a last `AgentStats` and returns
/// `Ok(())`. An attempt in flight at that moment is abandoned, not awaited.
///
/// Once the resolver and the HTTP client are built it logs the DNS server it uses and emits
/// exactly one `Event::Ready { role: "agent", addrs: {} }`.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    run_with_metrics(config, None, shutdown, events).await
}

/// [`run`], and with `metrics` also serves `GET /metrics` (Prometheus text format) on that
/// listener; its address is announced in the `Ready` event as `metrics`.
pub async fn run_with_metrics(
    config: Config,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    config.validate()?;
    let exported = metrics::Metrics::new(&config.server);
    let mut addrs = BTreeMap::new();
    if let Some(listener) = metrics {
        let addr = listener.local_addr().map_err(Error::MetricsListener)?;
        tracing::info!("agent metrics on http://{addr}/metrics");
        addrs.insert("metrics".to_owned(), addr);
        exported.serve(listener, shutdown.clone());
    }
    let link = Link::new(&config)?;
    let state = RetryState::new(&config.retry);
    let spool = spool_for(&config)?;
    tracing::info!(
        server = %config.server,
        retry = state.mode_name(),
        "agent resolving {COLLECTOR_NAME} through DNS server {} only",
        config.dns_server
    );
    events.emit(Event::Ready {
        role: "agent".into(),
        addrs,
    });

    let mut agent = Agent {
        state,
        spool,
        spool_failed: false,
        rng: ChaCha8Rng::seed_from_u64(config.seed),
        counters: Counters::default(),
        watch: ResolveWatch::default(),
        metrics: exported,
        next_seq: 0,
        events,
        config,
    };
    agent.run(&link, &shutdown).await;
    agent.emit_stats();
    tracing::info!(server = %agent.config.server, "agent stopped");
    // The retry state is not dropped: freeing tens of MiB of retained reports one buffer at a
    // time would shrink this process's memory in stages while it shuts down, and the storage
    // process beside it would grow its cache in the same stages (a staircase a leak detector can
    // mistake for a leak). The process exits right after `run` returns, and the exit hands the
    // whole leak back to the machine at once, which is what restarting the agent means here.
    std::mem::forget(agent.state);
    Ok(())
}

/// The spool file, when the policy gives this agent room in one; in the system's temporary
/// directory (`TMPDIR`), unlinked at once.
fn spool_for(config: &Config) -> Result<Option<spool::Spool>, Error> {
    let RetryPolicy::Leaky { spool, .. } = config.retry else {
        return Ok(None);
    };
    if spool.bytes() == 0 {
        return Ok(None);
    }
    let dir = std::env::temp_dir();
    spool::Spool::create(&dir, &config.server)
        .map(Some)
        .map_err(|source| Error::Spool { dir, source })
}

/// The agent's two clients, built once. Kept apart from [`Agent`] so an attempt in flight can
/// borrow them while the main loop still emits stats.
struct Link {
    resolver: TokioResolver,
    /// The resolver's last answer, and when its cache gives it up.
    answer: std::sync::Mutex<Option<(Vec<IpAddr>, std::time::Instant)>>,
    client: reqwest::Client,
    collector_port: u16,
    /// Outer bound on one DNS lookup, in case the resolver's own timeout does not fire.
    dns_guard: Duration,
}

impl Link {
    fn new(config: &Config) -> Result<Self, Error> {
        let timeout = config.request_timeout.get();
        let dns = config.dns_server;

        // One name is ever looked up; a small cache keeps idle memory small. The cache still
        // honours each answer's TTL, which is how a DNS change propagates to the agent.
        let resolver = outage_lab_dns::client::lab_resolver(dns, timeout, 8).map_err(|source| {
            Error::Resolver {
                dns_server: dns,
                source,
            }
        })?;

        let client = reqwest::Client::builder()
            // Environment proxies must not capture loopback traffic of a lab run.
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            // One attempt per report: the retry policy, not the HTTP client, decides on retries.
            .retry(reqwest::retry::never())
            .pool_max_idle_per_host(1)
            .build()
            .map_err(Error::HttpClient)?;

        Ok(Self {
            resolver,
            answer: std::sync::Mutex::new(None),
            client,
            collector_port: config.collector_port,
            dns_guard: timeout.saturating_mul(2),
        })
    }

    /// One report attempt: resolve the collector, then post to its first address.
    async fn attempt(&self, report: &ReportMsg) -> Attempt {
        let addrs = match self.resolve().await {
            Ok(addrs) => addrs,
            Err(failure) => return Attempt::ResolveFailed(failure),
        };
        let Some(&first) = addrs.first() else {
            return Attempt::ResolveFailed(ResolveFailure {
                class: FailureClass::Empty,
                message: format!("no addresses for {COLLECTOR_NAME}"),
            });
        };
        let target = SocketAddr::new(first, self.collector_port);
        let result = self
            .client
            .post(format!("http://{target}/report"))
            .json(report)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(drop);
        Attempt::Posted {
            addrs,
            target,
            result,
        }
    }
}

impl Link {
    /// The collector's addresses: the resolver's last answer while its cache holds it, else a
    /// lookup (which asks the DNS server once the TTL has run out).
    async fn resolve(&self) -> Result<Vec<IpAddr>, ResolveFailure> {
        let now = std::time::Instant::now();
        if let Some((addrs, _)) = (self.kept().as_ref()).filter(|(_, until)| now < *until) {
            return Ok(addrs.clone());
        }
        let lookup = tokio::time::timeout(self.dns_guard, self.resolver.lookup_ip(COLLECTOR_NAME));
        match lookup.await {
            Ok(Ok(lookup)) => {
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                *self.kept() = Some((addrs.clone(), lookup.valid_until()));
                Ok(addrs)
            }
            Ok(Err(err)) => Err(ResolveFailure::from_net(&err)),
            Err(_) => Err(ResolveFailure::guard_timeout()),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(Vec<IpAddr>, std::time::Instant)>> {
        self.answer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How one attempt ended.
enum Attempt {
    /// The collector name did not resolve; nothing was sent.
    ResolveFailed(ResolveFailure),
    /// The name resolved to `addrs` and a POST to `target` was made.
    Posted {
        addrs: Vec<IpAddr>,
        target: SocketAddr,
        result: Result<(), reqwest::Error>,
    },
}

impl Attempt {
    fn succeeded(&self) -> bool {
        matches!(self, Self::Posted { result: Ok(()), .. })
    }
}

/// A resolution failure: a coarse class, to decide whether the error state changed, and the
/// resolver's message, for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResolveFailure {
    class: FailureClass,
    message: String,
}

/// The kind of a resolution failure. Messages can differ between two failures of the same kind
/// (a query id, an address), so the "state changed" test compares kinds, not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureClass {
    /// A resolver error, by variant (and by `DnsError` variant for DNS errors).
    Net(
        std::mem::Discriminant<NetError>,
        Option<std::mem::Discriminant<DnsError>>,
    ),
    /// The agent's outer guard timed out.
    GuardTimeout,
    /// An answer with no addresses.
    Empty,
}

impl ResolveFailure {
    fn from_net(err: &NetError) -> Self {
        let dns = match err {
            NetError::Dns(dns) => Some(discriminant(dns)),
            _ => None,
        };
        Self {
            class: FailureClass::Net(discriminant(err), dns),
            message: err.to_string(),
        }
    }

    fn guard_timeout() -> Self {
        Self {
            class: FailureClass::GuardTimeout,
            message: "DNS lookup did not finish in time".into(),
        }
    }
}

/// Decides which resolution outcomes are news: a new address set, or a new kind of failure.
#[derive(Debug, Default)]
struct ResolveWatch {
    /// The last address set resolved (sorted), `None` before the first resolution.
    last_addrs: Option<Vec<IpAddr>>,
    /// The kind of the current failure streak, `None` while resolution works.
    failing: Option<FailureClass>,
}

impl ResolveWatch {
    /// A successful resolution; true when the address set differs from the last one (order does
    /// not count: a server may rotate its answers).
    fn resolved(&mut self, addrs: &[IpAddr]) -> bool {
        self.failing = None;
        let mut set = addrs.to_vec();
        set.sort_unstable();
        set.dedup();
        if self.last_addrs.as_ref() == Some(&set) {
            return false;
        }
        self.last_addrs = Some(set);
        true
    }

    /// A failed resolution; true when resolution was working before or failed differently.
    fn failed(&mut self, failure: &ResolveFailure) -> bool {
        let changed = self.failing != Some(failure.class);
        self.failing = Some(failure.class);
        changed
    }
}

/// Report counters since this process started.
#[derive(Debug, Default)]
struct Counters {
    ok: u64,
    failed: u64,
}

/// The agent's mutable state across attempts.
struct Agent {
    config: Config,
    events: EventSink,
    /// What failed reports cost (the leak lives in here).
    state: RetryState,
    /// Where failed reports go while there is room, if the policy gives the agent a spool.
    spool: Option<spool::Spool>,
    /// Whether a failed spool write has been logged (once is enough: the disk stays full).
    spool_failed: bool,
    /// Seeded from the config, so a run's backoff schedule can be repeated.
    rng: ChaCha8Rng,
    counters: Counters,
    watch: ResolveWatch,
    /// What `/metrics` shows (kept current on every attempt).
    metrics: metrics::Metrics,
    /// Sequence number of the next report.
    next_seq: u64,
}

impl Agent {
    /// The main loop: an attempt whenever one is due, stats on their own clock, both interrupted
    /// by shutdown.
    async fn run(&mut self, link: &Link, shutdown: &CancellationToken) {
        let stats_period = self.config.stats_interval.get();
        let mut stats = tokio::time::interval_at(Instant::now() + stats_period, stats_period);
        stats.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The first report is due at once.
        let mut next_due = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = stats.tick() => self.emit_stats(),
                () = tokio::time::sleep_until(next_due) => {}
            }
            if Instant::now() < next_due {
                continue;
            }

            let started = Instant::now();
            let report = ReportMsg {
                server: self.config.server.clone(),
                seq: self.next_seq,
                pending: self.state.pending(),
            };
            self.next_seq += 1;
            let freeze = outage_lab_proto::freeze::Attempt::start();
            // Drive the attempt while still emitting stats on time and honouring shutdown:
            // an attempt against a blackholed collector can take a whole request_timeout.
            let attempt = {
                let mut attempt = std::pin::pin!(link.attempt(&report));
                loop {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return,
                        _ = stats.tick() => self.emit_stats(),
                        outcome = &mut attempt => break outcome,
                    }
                }
            };
            if freeze.spanned_a_freeze() && !attempt.succeeded() {
                // Stopped mid-attempt (a workshop freeze): the timeout that fired on resume says
                // nothing about the collector. Not a failure; the next report is due at once.
                next_due = Instant::now();
                continue;
            }
            self.record(attempt, report);

            // The delay counts from when the attempt started, so a slow failure does not slow
            // the cadence further; an attempt longer than the delay is followed at once.
            let delay = self
                .state
                .next_delay(self.config.report_interval.get(), &mut self.rng);
            next_due = started + delay;
        }
    }

    /// Turns an attempt's outcome into events, counters and retry state.
    fn record(&mut self, attempt: Attempt, report: ReportMsg) {
        let server = &self.config.server;
        let ok = match attempt {
            Attempt::ResolveFailed(failure) => {
                if self.watch.failed(&failure) {
                    tracing::warn!(%server, "cannot resolve {COLLECTOR_NAME}: {}", failure.message);
                    self.events.emit(Event::AgentResolveFailed {
                        server: server.clone(),
                        error: failure.message,
                    });
                }
                false
            }
            Attempt::Posted {
                addrs,
                target,
                result,
            } => {
                if self.watch.resolved(&addrs) {
                    tracing::info!(%server, ?addrs, "{COLLECTOR_NAME} resolved");
                    self.events.emit(Event::AgentResolved {
                        server: server.clone(),
                        addrs,
                    });
                }
                match result {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::debug!(%server, %target, "report {} failed: {err}", report.seq);
                        false
                    }
                }
            }
        };
        if ok {
            self.counters.ok += 1;
            self.metrics.ok.inc();
            self.state.on_success();
        } else {
            self.counters.failed += 1;
            self.metrics.failed.inc();
            match self.state.on_failure(report) {
                FailureEffect::CeilingReached => tracing::warn!(
                    %server,
                    retained_bytes = self.state.retained_bytes(),
                    "retry state reached its ceiling; no more memory will be retained"
                ),
                FailureEffect::Spooled(bytes) => self.write_spool(bytes),
                _ => {}
            }
        }
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.metrics.pending.set(gauge(self.state.pending()));
        self.metrics
            .retained
            .set(gauge(self.state.retained_bytes()));
    }

    /// Writes a spooled report's bytes. When the spool cannot be written (a full disk), the
    /// report stays pending in the retry state as accounted, but its bytes are kept nowhere:
    /// they never take memory instead. The first such failure is logged, not every one.
    fn write_spool(&mut self, bytes: u64) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        if let Err(err) = spool.write(bytes) {
            if !self.spool_failed {
                tracing::warn!(
                    server = %self.config.server,
                    written = spool.written(),
                    "could not write a failed report to the spool (said once; later failures are not logged): {err}"
                );
            }
            self.spool_failed = true;
        }
    }

    fn emit_stats(&self) {
        self.events.emit(Event::AgentStats {
            server: self.config.server.clone(),
            ok_reports: self.counters.ok,
            failed_reports: self.counters.failed,
            pending_reports: self.state.pending(),
            retained_bytes: self.state.retained_bytes(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(err: NetError) -> ResolveFailure {
        ResolveFailure::from_net(&err)
    }

    #[test]
    fn resolve_watch_reports_the_first_set_and_changes_but_not_reorderings() {
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let mut watch = ResolveWatch::default();
        assert!(watch.resolved(&[a]));
        assert!(!watch.resolved(&[a]));
        assert!(watch.resolved(&[a, b]));
        assert!(!watch.resolved(&[b, a]));
        assert!(watch.resolved(&[b]));
    }

    #[test]
    fn resolve_watch_reports_a_failure_once_per_streak_and_kind() {
        let mut watch = ResolveWatch::default();
        assert!(watch.failed(&failure(NetError::Timeout)));
        assert!(!watch.failed(&failure(NetError::Timeout)));
        assert!(watch.failed(&failure(NetError::Msg("other".into()))));
        // A message that differs within one kind is not a new state.
        assert!(!watch.failed(&failure(NetError::Msg("other, again".into()))));
        // A success in between starts a new streak, but the same addresses are not news.
        let a: IpAddr = [127, 0, 0, 1].into();
        assert!(watch.resolved(&[a]));
        assert!(watch.failed(&failure(NetError::Timeout)));
        assert!(!watch.resolved(&[a]));
        assert!(watch.failed(&ResolveFailure::guard_timeout()));
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_unknown_fields() {
        let config: Config = serde_json::from_str(
            r#"{"server":"s003","dns_server":"127.0.0.1:5353","collector_port":8080,"seed":7}"#,
        )
        .expect("parse");
        assert_eq!(config.report_interval, HumanDuration::millis(100));
        assert_eq!(config.request_timeout, HumanDuration::millis(500));
        assert_eq!(config.stats_interval, HumanDuration::secs(1));
        assert_eq!(config.retry, RetryPolicy::default());
        assert!(config.validate().is_ok());
        assert!(
            serde_json::from_str::<Config>(
                r#"{"server":"s","dns_server":"127.0.0.1:53","collector_port":1,"seed":0,"x":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn config_with_a_zero_interval_is_invalid() {
        let mut config: Config = serde_json::from_str(
            r#"{"server":"s003","dns_server":"127.0.0.1:5353","collector_port":8080,"seed":7}"#,
        )
        .expect("parse");
        config.report_interval = HumanDuration::millis(0);
        assert!(matches!(config.validate(), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn config_default_matches_the_documented_defaults_of_a_parsed_file() {
        let parsed: Config = serde_json::from_str(
            r#"{"server":"s000","dns_server":"127.0.0.1:53","collector_port":0,"seed":0}"#,
        )
        .expect("parse");
        assert_eq!(parsed, Config::default());
    }
}

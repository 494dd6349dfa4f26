//! The data-collection server: the process the 2012 agents reported to.
//!
//! Every storage server's agent posts a [`ReportMsg`] to `POST /report` on whichever collector
//! `collector.lab.internal` resolves to. The collector only counts them, per server, because the
//! counts are all the harness needs: a server whose count stops rising is one whose agent lost the
//! collector (in the incident: because its DNS server still named the replaced machine).
//!
//! Routes:
//!
//! | route | answer |
//! |---|---|
//! | `POST /report` | JSON [`ReportMsg`]; `200` once counted, `4xx` on a malformed body |
//! | `POST /agents/{server}[/anything]` | any body of any content type up to [`MAX_AGENT_BODY_BYTES`], counted for `{server}`; `200` |
//! | `GET /stats` | JSON [`CollectorStatsMsg`] |
//! | `GET /health` | `ok` |
//!
//! The `/agents/` routes are for agents the lab did not write (a Prometheus in agent mode, a
//! collectd, a team's own exporter): whatever they speak (JSON, remote-write, OTLP/HTTP, Loki
//! push), a POST is one report, attributed by the path the harness gave that server's agent, so it
//! counts whatever the source address.
//!
//! Anything else is `404` (unknown path) or `405` (known path, wrong method); bodies above
//! [`MAX_BODY_BYTES`] (`/report`) or [`MAX_AGENT_BODY_BYTES`] (`/agents/`) are `413`, and a server
//! name that is not 1 to 64 letters, digits, `-`, `_` or `.` is `400`. No client input can make
//! the process panic.
//!
//! The collector also tells the harness its counters as [`Event::CollectorStats`], at most once per
//! `stats_interval` and only when they changed, so an idle collector writes nothing to the journal.

mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, response::IntoResponse};
use outage_lab_ebs_events::wire::{CollectorStatsMsg, ReportMsg};
use outage_lab_ebs_events::{Event, EventSink};
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted. A report is well under 100 bytes; 64 KiB is generous and still
/// stops a client from making the collector buffer arbitrary amounts of memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body accepted on `/agents/`: a remote-write or OTLP batch is rarely over a few hundred
/// KiB; 4 MiB bounds what one request can make the collector buffer.
pub const MAX_AGENT_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Most distinct server names the collector will count. A real fleet is a few hundred servers;
/// the cap only keeps a misbehaving client from growing the per-server map without bound.
pub const MAX_SERVERS: usize = 65_536;

/// How long in-flight requests get to finish after shutdown is asked for, before the collector
/// returns anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Configuration of one collector instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this collector instance in the run (e.g. "collector-old"), for logs.
    pub name: String,
    /// How often to emit `Event::CollectorStats` (only when the counts changed since the last one).
    #[serde(default = "default_stats_interval")]
    pub stats_interval: HumanDuration,
}

fn default_stats_interval() -> HumanDuration {
    HumanDuration::secs(1)
}

impl Default for Config {
    /// Name `collector` and the documented defaults; set `name` per instance.
    fn default() -> Self {
        Self {
            name: "collector".into(),
            stats_interval: default_stats_interval(),
        }
    }
}

/// The sockets the collector serves on, bound by the caller (so tests can bind port 0 and the
/// harness can pick the address).
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP listener for reports, stats and health.
    pub http: TcpListener,
}

/// Why the collector stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (e.g. a zero interval).
    #[error("invalid collector config: {0}")]
    InvalidConfig(String),
    /// The listener's local address could not be read.
    #[error("failed to read the HTTP listener's address")]
    LocalAddr(#[source] std::io::Error),
    /// The HTTP server stopped with an I/O error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// The counters behind `/stats` and `Event::CollectorStats`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    total: u64,
    per_server: BTreeMap<String, u64>,
}

impl Counts {
    /// Counts one report for `server`; `false` (not counted) once [`MAX_SERVERS`] distinct
    /// servers are known and this is a new one.
    fn count(&mut self, server: &str) -> bool {
        if let Some(n) = self.per_server.get_mut(server) {
            *n += 1;
        } else if self.per_server.len() < MAX_SERVERS {
            self.per_server.insert(server.to_owned(), 1);
        } else {
            return false;
        }
        self.total += 1;
        true
    }
}

/// State shared by the request handlers and the stats task. A plain mutex is right here: every
/// critical section is a map update or a clone, never held across an `.await`.
#[derive(Debug, Default)]
struct Shared {
    counts: Mutex<Counts>,
}

impl Shared {
    /// Counts one report for `server`, answering as the handlers do.
    fn count(&self, server: &str) -> (StatusCode, &'static str) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.count(server) {
            (StatusCode::OK, "")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "too many distinct servers")
        }
    }

    fn snapshot(&self) -> Counts {
        // Nothing panics while the lock is held, so poisoning cannot happen; if it somehow did,
        // the counters are still consistent (each update is one insert), so use them.
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Serves the collector on `listeners` until `shutdown` is cancelled, then drains for at most
/// about a second and returns `Ok(())`.
///
/// Once the listener is serving it logs the real address and emits exactly one `Event::Ready`
/// with `role: "collector"` and `addrs: {"http": addr}`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    if config.stats_interval.get().is_zero() {
        return Err(Error::InvalidConfig(
            "stats_interval must be greater than 0ms".into(),
        ));
    }
    let addr = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let shared = Arc::new(Shared::default());

    let stats_task = tokio::spawn(stats_loop(
        Arc::clone(&shared),
        config.stats_interval,
        shutdown.clone(),
        events.clone(),
    ));

    let serve = axum::serve(listeners.http, router(Arc::clone(&shared)))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();

    // The listener is bound and the server is built: connections that arrive now wait in the
    // kernel's accept queue and are served as soon as the future below is polled.
    tracing::info!(name = %config.name, "collector listening on http://{addr}");
    events.emit(Event::Ready {
        role: "collector".into(),
        addrs: BTreeMap::from([("http".to_owned(), addr)]),
    });

    let result = serve_until_drained(serve, &shutdown, addr).await;
    // The stats task stops on the same token; it ends within one tick.
    shutdown.cancel();
    let _ = stats_task.await;
    tracing::info!(name = %config.name, "collector stopped");
    result
}

/// Runs the server future; once shutdown is asked for, gives it [`DRAIN_TIMEOUT`] to finish its
/// in-flight requests, then gives up on them (their tasks die with the runtime).
async fn serve_until_drained(
    serve: impl Future<Output = std::io::Result<()>>,
    shutdown: &CancellationToken,
    addr: SocketAddr,
) -> Result<(), Error> {
    let mut serve = std::pin::pin!(serve);
    tokio::select! {
        result = &mut serve => return result.map_err(Error::Serve),
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, serve).await {
        Ok(result) => result.map_err(Error::Serve),
        Err(_) => {
            tracing::warn!(%addr, "connections still open after {DRAIN_TIMEOUT:?}; not waiting");
            Ok(())
        }
    }
}

/// The routes [`run`] serves (`POST /report`, `POST /agents/{server}/...`, `/stats`, `/health`,
/// `/metrics`), with fresh counters and no stats task or events: for the fuzz targets and
/// tests that send requests straight to the router (`tower::ServiceExt::oneshot`) instead of
/// through a socket.
pub fn routes() -> Router {
    router(Arc::new(Shared::default()))
}

fn router(shared: Arc<Shared>) -> Router {
    let agents = Router::new()
        .route("/agents/{server}", post(post_agent))
        .route("/agents/{server}/", post(post_agent))
        .route("/agents/{server}/{*rest}", post(post_agent))
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY_BYTES));
    Router::new()
        .route("/report", post(post_report))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(agents)
        .route("/stats", get(get_stats))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics::serve))
        .with_state(shared)
}

/// `POST /report`: count one report for its server. A malformed body never reaches this function:
/// the `Json` extractor answers it with 400 (bad syntax), 415 (not JSON), 422 (wrong shape) or 413.
async fn post_report(
    State(shared): State<Arc<Shared>>,
    Json(report): Json<ReportMsg>,
) -> impl IntoResponse {
    shared.count(&report.server)
}

/// `POST /agents/{server}[/anything]`: one report from `server`'s agent, whatever its body says.
/// The body is read (so an oversized one is refused with 413) and dropped.
async fn post_agent(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<BTreeMap<String, String>>,
    _body: Bytes,
) -> impl IntoResponse {
    let server = params.get("server").map_or("", String::as_str);
    if !is_server_name(server) {
        return (
            StatusCode::BAD_REQUEST,
            "the path must be /agents/{server}/..., where {server} is 1 to 64 of [A-Za-z0-9._-]",
        );
    }
    shared.count(server)
}

/// A name the per-server map may hold: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
fn is_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `GET /stats`: the counters right now.
async fn get_stats(State(shared): State<Arc<Shared>>) -> Json<CollectorStatsMsg> {
    let Counts { total, per_server } = shared.snapshot();
    Json(CollectorStatsMsg {
        total_reports: total,
        per_server,
    })
}

/// Emits `Event::CollectorStats` every `interval` when the counts changed since the last emitted
/// one, and once more on shutdown if they changed since.
async fn stats_loop(
    shared: Arc<Shared>,
    interval: HumanDuration,
    shutdown: CancellationToken,
    events: EventSink,
) {
    let period = interval.get();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Counts only ever grow, so "changed" is "the total moved".
    let mut last_total = 0;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let counts = shared.snapshot();
        if counts.total != last_total {
            last_total = counts.total;
            events.emit(Event::CollectorStats {
                total_reports: counts.total,
                per_server: counts.per_server,
            });
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::sync::mpsc::Receiver;

    /// Every network wait in these tests is bounded by this.
    const WAIT: Duration = Duration::from_secs(5);

    struct Running {
        addr: SocketAddr,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), Error>>,
        events: Receiver<Event>,
        client: reqwest::Client,
    }

    impl Running {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        async fn stats(&self) -> CollectorStatsMsg {
            let response = self.client.get(self.url("/stats")).send().await.unwrap();
            response.json().await.unwrap()
        }

        async fn stop(self) -> Vec<Event> {
            self.shutdown.cancel();
            let result = tokio::time::timeout(WAIT, self.task)
                .await
                .expect("collector stops within the deadline")
                .expect("collector task does not panic");
            assert!(result.is_ok(), "collector returned {result:?}");
            self.events.try_iter().collect()
        }
    }

    async fn start(stats_interval: HumanDuration) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (sink, events) = EventSink::channel();
        let config = Config {
            name: "collector-test".into(),
            stats_interval,
        };
        let task = tokio::spawn(run(
            config,
            Listeners { http: listener },
            shutdown.clone(),
            sink,
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .build()
            .unwrap();
        Running {
            addr,
            shutdown,
            task,
            events,
            client,
        }
    }

    /// Sends each request and keeps its status by what it tries.
    async fn statuses<const N: usize>(
        cases: [(&'static str, reqwest::RequestBuilder); N],
    ) -> BTreeMap<&'static str, u16> {
        let mut statuses = BTreeMap::new();
        for (what, request) in cases {
            statuses.insert(what, request.send().await.unwrap().status().as_u16());
        }
        statuses
    }

    async fn report(running: &Running, server: &str, seq: u64) -> StatusCode {
        let msg = ReportMsg {
            server: server.into(),
            seq,
            pending: 0,
        };
        let response = running
            .client
            .post(running.url("/report"))
            .json(&msg)
            .send()
            .await
            .unwrap();
        StatusCode::from_u16(response.status().as_u16()).unwrap()
    }

    #[tokio::test]
    async fn reports_are_counted_per_server_and_shown_in_stats() {
        let running = start(HumanDuration::secs(60)).await;
        for seq in 0..3 {
            assert_eq!(report(&running, "s000", seq).await, StatusCode::OK);
        }
        assert_eq!(report(&running, "s001", 0).await, StatusCode::OK);

        let stats = running.stats().await;
        assert_eq!(stats.total_reports, 4);
        assert_eq!(
            stats.per_server,
            BTreeMap::from([("s000".to_owned(), 3), ("s001".to_owned(), 1)])
        );

        let health = running
            .client
            .get(running.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200);
        assert_eq!(health.text().await.unwrap(), "ok");
        running.stop().await;
    }

    #[tokio::test]
    async fn bad_input_gets_a_4xx_and_is_not_counted() {
        let running = start(HumanDuration::secs(60)).await;
        let c = &running.client;
        let cases = [
            (
                "not JSON",
                c.post(running.url("/report"))
                    .header("content-type", "application/json")
                    .body("{not json"),
            ),
            (
                "unknown field",
                c.post(running.url("/report"))
                    .header("content-type", "application/json")
                    .body(r#"{"server":"s0","seq":1,"pending":0,"extra":1}"#),
            ),
            ("no content type", c.post(running.url("/report")).body("{}")),
            ("wrong method", c.get(running.url("/report"))),
            ("unknown path", c.get(running.url("/nope"))),
            (
                "oversized body",
                c.post(running.url("/report"))
                    .header("content-type", "application/json")
                    .body(vec![b' '; MAX_BODY_BYTES + 1]),
            ),
        ];
        let statuses = statuses(cases).await;
        for (what, status) in &statuses {
            assert!((400..500).contains(status), "{what}: got {status}");
        }
        assert_eq!(statuses["wrong method"], 405);
        assert_eq!(statuses["unknown path"], 404);
        assert_eq!(statuses["oversized body"], 413);

        let stats = running.stats().await;
        assert_eq!(stats.total_reports, 0);
        running.stop().await;
    }

    #[tokio::test]
    async fn any_post_under_agents_counts_for_the_server_its_path_names() {
        let running = start(HumanDuration::secs(60)).await;
        let c = &running.client;
        let posts = [
            (
                "/agents/s003/api/v1/write",
                "application/x-protobuf",
                vec![0xff, 0x00, 0x1f],
            ),
            (
                "/agents/s003/",
                "application/json",
                br#"[{"values":[1]}]"#.to_vec(),
            ),
            (
                "/agents/s004/loki/api/v1/push",
                "text/plain",
                b"anything".to_vec(),
            ),
            (
                "/agents/s004/v1/metrics",
                "application/x-protobuf",
                vec![0; 300 * 1024],
            ),
        ];
        for (path, content_type, body) in posts {
            let response = c
                .post(running.url(path))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
        }
        let refused = [
            (
                "oversized",
                c.post(running.url("/agents/s003/x"))
                    .body(vec![0; MAX_AGENT_BODY_BYTES + 1]),
            ),
            (
                "not a server name",
                c.post(running.url("/agents/s0%203/x")).body("1"),
            ),
            ("no server", c.post(running.url("/agents/")).body("1")),
            ("wrong method", c.get(running.url("/agents/s003/x"))),
        ];
        let statuses = statuses(refused).await;
        assert_eq!(statuses["oversized"], 413);
        assert_eq!(statuses["not a server name"], 400);
        assert_eq!(statuses["no server"], 404);
        assert_eq!(statuses["wrong method"], 405);

        let stats = running.stats().await;
        assert_eq!(
            stats.per_server,
            BTreeMap::from([("s003".to_owned(), 2), ("s004".to_owned(), 2)])
        );
        running.stop().await;
    }

    #[tokio::test]
    async fn the_first_event_is_one_ready_with_the_real_address() {
        let running = start(HumanDuration::secs(60)).await;
        let addr = running.addr;
        // Wait until it serves, so Ready has certainly been emitted.
        let health = running
            .client
            .get(running.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let events = running.stop().await;
        let ready: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Ready { .. }))
            .collect();
        assert_eq!(ready.len(), 1, "{events:?}");
        assert_eq!(
            events[0],
            Event::Ready {
                role: "collector".into(),
                addrs: BTreeMap::from([("http".to_owned(), addr)]),
            }
        );
    }

    #[tokio::test]
    async fn stats_events_are_emitted_only_when_counts_change() {
        let running = start(HumanDuration::millis(20)).await;
        assert_eq!(report(&running, "s007", 0).await, StatusCode::OK);
        // Several stats periods pass with no new report.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let events = running.stop().await;
        let stats: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::CollectorStats { .. }))
            .collect();
        assert_eq!(
            stats,
            [&Event::CollectorStats {
                total_reports: 1,
                per_server: BTreeMap::from([("s007".to_owned(), 1)]),
            }]
        );
    }

    #[tokio::test]
    async fn shutdown_returns_promptly_even_with_an_idle_keep_alive_connection() {
        let running = start(HumanDuration::secs(60)).await;
        // Leaves a pooled keep-alive connection open in the client.
        assert_eq!(report(&running, "s000", 0).await, StatusCode::OK);
        let started = std::time::Instant::now();
        running.stop().await;
        assert!(started.elapsed() < Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn shutdown_is_bounded_even_when_a_client_stalls_mid_request() {
        use tokio::io::AsyncWriteExt;

        let running = start(HumanDuration::secs(60)).await;
        let mut stalled = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(running.addr))
            .await
            .unwrap()
            .unwrap();
        // Headers promise 100 bytes of body; only one arrives, and the client goes quiet.
        stalled
            .write_all(
                b"POST /report HTTP/1.1\r\nhost: c\r\ncontent-type: application/json\r\n\
                  content-length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        // Make sure the server has picked the request up before shutting down.
        let health = running
            .client
            .get(running.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let started = std::time::Instant::now();
        running.stop().await;
        let took = started.elapsed();
        assert!(
            took < DRAIN_TIMEOUT + Duration::from_millis(500),
            "{took:?}"
        );
        drop(stalled);
    }

    #[tokio::test]
    async fn a_zero_stats_interval_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config {
            name: "c".into(),
            stats_interval: HumanDuration::millis(0),
        };
        let result = run(
            config,
            Listeners { http: listener },
            CancellationToken::new(),
            EventSink::discard(),
        )
        .await;
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn config_defaults_the_stats_interval_and_rejects_unknown_fields() {
        let config: Config = serde_json::from_str(r#"{"name":"collector-old"}"#).unwrap();
        assert_eq!(config.stats_interval, HumanDuration::secs(1));
        assert!(serde_json::from_str::<Config>(r#"{"name":"c","port":1}"#).is_err());
        let parsed: Config = serde_json::from_str(r#"{"name":"collector"}"#).unwrap();
        assert_eq!(parsed, Config::default());
    }
}

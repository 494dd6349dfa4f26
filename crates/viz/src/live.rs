//! The live view: a page served on loopback during a run that follows the run's journal through
//! server-sent events.
//!
//! The harness hands every journal entry it records to a [`Feed`] (one call, after it wrote the
//! line to `journal.jsonl`). The feed keeps what a page needs (not the per-agent counters, and
//! at most one memory sweep a second) in a backlog, so a browser that connects late still sees
//! the whole run, and fans it out to every open page through a tokio broadcast channel. [`run`]
//! serves the page (`/`, one HTML file with inline CSS and JS: no build step, nothing fetched)
//! and the stream (`/events`).
//!
//! Everything here runs as tasks on the harness's own single-threaded runtime: no thread is
//! added (the harness's children are tied to its one thread by their parent-death signal).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::stream::{self, Stream, StreamExt};
use outage_lab_ebs_events::{EventKind, JournalEntry};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The page. One file; its script builds the fleet tiles, the chart and the lists from the
/// events.
const PAGE: &str = include_str!("live.html");

/// Memory sweeps forwarded at most this often (journal time): a 200-server sweep is about 30 KB.
const SWEEP_EVERY_MS: u64 = 1_000;

/// Whether the page uses a journal kind. Every kind is named, so a new one is a decision here:
/// per-agent counters, per-volume changes and process starts are left out (the page shows the
/// fleet, not each process's chatter).
fn shown(kind: EventKind) -> bool {
    use EventKind as K;
    match kind {
        K::RunStarted | K::Phase | K::FaultInjected | K::FixApplied | K::DnsRecordChanged => true,
        K::RssSweep | K::Alarm | K::ServerHealth | K::ControlStats | K::LoadStats => true,
        K::CustomerStats | K::ProcessExited | K::Verdict | K::RunFinished => true,
        K::WorkshopStop | K::ParticipantAction | K::WorkshopOutcome => true,
        K::Ready | K::DnsAnswers | K::AgentResolved | K::AgentResolveFailed => false,
        K::AgentStats | K::CollectorStats | K::StorageStats | K::VolumeChanged => false,
        K::Failover | K::ProcessStarted | K::WorkshopResumed => false,
        K::DnsRecordRemoved | K::DnsFaultChanged => false,
    }
}

/// Entries kept for late-joining pages; past it, only the newest entries reach new pages whole
/// (a run of the default length stays far below it).
const BACKLOG_MAX: usize = 20_000;

/// One storage server as the fleet view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetServer {
    /// Server id (`s003`).
    pub id: String,
    /// The DNS server its agent resolves through.
    pub dns_server: String,
    /// Whether that DNS server misses the collector update in this scenario.
    pub stale: bool,
}

/// What the page is told first: who is in the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// Scenario name.
    pub scenario: String,
    /// Every storage server, in id order.
    pub servers: Vec<FleetServer>,
}

/// Where the harness publishes journal entries for the live view. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fleet: Arc<str>,
    tx: broadcast::Sender<Arc<str>>,
    backlog: Mutex<Backlog>,
}

#[derive(Debug, Default)]
struct Backlog {
    lines: Vec<Arc<str>>,
    last_sweep_ms: Option<u64>,
}

impl Feed {
    /// A feed for a run of this fleet.
    pub fn new(fleet: &Fleet) -> Self {
        // Serialising plain owned data cannot fail.
        let fleet = serde_json::to_string(fleet).unwrap_or_default();
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                fleet: fleet.into(),
                tx,
                backlog: Mutex::new(Backlog::default()),
            }),
        }
    }

    /// Offers one journal entry and its JSON line; kept and sent on if the page uses its kind.
    pub fn publish(&self, entry: &JournalEntry, line: &str) {
        let kind = entry.event.kind();
        if !shown(kind) {
            return;
        }
        let mut backlog = self.lock();
        if kind == EventKind::RssSweep {
            if backlog
                .last_sweep_ms
                .is_some_and(|last| entry.t_ms < last + SWEEP_EVERY_MS)
            {
                return;
            }
            backlog.last_sweep_ms = Some(entry.t_ms);
        }
        let line: Arc<str> = line.into();
        if backlog.lines.len() < BACKLOG_MAX {
            backlog.lines.push(line.clone());
        }
        // Sent while the backlog is locked, so a page that subscribes sees each entry once:
        // either in its backlog copy or on its receiver. No receiver is not an error.
        let _ = self.inner.tx.send(line);
    }

    /// Entries kept so far and a receiver for every later one, with no gap and no overlap.
    fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let backlog = self.lock();
        (backlog.lines.clone(), self.inner.tx.subscribe())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        // A panic while holding this lock leaves a Vec of lines intact: keep using it.
        self.inner
            .backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A live view being served: publish into [`LiveView::feed`]; dropping it stops the server.
#[derive(Debug)]
pub struct LiveView {
    /// Where the harness publishes journal entries.
    pub feed: Feed,
    /// The page's URL (`http://127.0.0.1:PORT/`).
    pub url: String,
    stop: CancellationToken,
}

impl LiveView {
    /// Binds `addr` and serves the view of `fleet` as a task on the current runtime, with
    /// `controls` (a workshop's control routes, which check their own token) beside the page.
    pub async fn start(
        addr: std::net::SocketAddr,
        fleet: &Fleet,
        controls: Option<Router>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let feed = Feed::new(fleet);
        let stop = CancellationToken::new();
        tokio::spawn(run(listener, feed.clone(), controls, stop.clone()));
        Ok(Self { feed, url, stop })
    }
}

impl LiveView {
    /// Stops serving after `linger`, so open pages receive the last entries (the verdict):
    /// the harness returns right after the run, and its runtime ends every task with it.
    pub async fn close(self, linger: std::time::Duration) {
        tokio::time::sleep(linger).await;
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the live view on `listener` until `shutdown` is cancelled. Open event streams are
/// dropped at shutdown (a graceful drain would wait for browsers that never hang up).
pub async fn run(
    listener: tokio::net::TcpListener,
    feed: Feed,
    controls: Option<Router>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .with_state(feed);
    if let Some(controls) = controls {
        app = app.merge(controls);
    }
    tokio::select! {
        r = axum::serve(listener, app) => r,
        () = shutdown.cancelled() => Ok(()),
    }
}

/// The page, with the fleet and the backlog so far inlined: it shows the run as it stands the
/// moment it loads, then follows `/events?after=N` for what comes next.
async fn page(State(feed): State<Feed>) -> impl IntoResponse {
    let backlog = feed.lock().lines.clone();
    let mut boot = format!("{{\"fleet\":{},\"entries\":[", feed.inner.fleet);
    for (i, line) in backlog.iter().enumerate() {
        if i > 0 {
            boot.push(',');
        }
        boot.push_str(line);
    }
    boot.push_str("]}");
    // Inside <script>, `</` could end the element early; `<\/` is the same JSON string.
    let boot = boot.replace("</", "<\\/");
    Html(PAGE.replacen("{/*BOOT*/}", &boot, 1))
}

/// `?after=N`: the page already holds the fleet and the first N backlog entries.
#[derive(Debug, serde::Deserialize)]
struct After {
    after: Option<usize>,
}

async fn events(
    State(feed): State<Feed>,
    Query(after): Query<After>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (backlog, rx) = feed.subscribe();
    let fleet = after.after.is_none().then(|| {
        SseEvent::default()
            .event("fleet")
            .data(feed.inner.fleet.as_ref())
    });
    let skip = after.after.unwrap_or(0);
    let head = stream::iter(
        fleet
            .into_iter()
            .chain(backlog.into_iter().skip(skip).map(entry_event))
            .map(Ok),
    );
    let live = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((Ok(entry_event(line)), rx)),
                // A page too slow to keep up misses some entries; the next sweep catches it up.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(head.chain(live)).keep_alive(KeepAlive::default())
}

fn entry_event(line: Arc<str>) -> SseEvent {
    SseEvent::default().event("entry").data(line.as_ref())
}

#[cfg(test)]
mod tests {
    use outage_lab_ebs_events::{Event, RssSample};

    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            scenario: "t".into(),
            servers: vec![FleetServer {
                id: "s000".into(),
                dns_server: "dns-c".into(),
                stale: true,
            }],
        }
    }

    fn publish(feed: &Feed, t_ms: u64, event: Event) {
        let entry = JournalEntry {
            t_ms,
            source: "x".into(),
            source_pid: None,
            event,
        };
        let line = serde_json::to_string(&entry).expect("json");
        feed.publish(&entry, &line);
    }

    #[test]
    fn the_feed_keeps_what_the_page_uses_and_one_sweep_a_second() {
        let feed = Feed::new(&fleet());
        for t in (0..3_000).step_by(250) {
            publish(
                &feed,
                t,
                Event::RssSweep {
                    samples: Vec::<RssSample>::new(),
                },
            );
            publish(
                &feed,
                t,
                Event::AgentStats {
                    server: "s000".into(),
                    ok_reports: 1,
                    failed_reports: 0,
                    pending_reports: 0,
                    retained_bytes: 0,
                },
            );
        }
        publish(
            &feed,
            3_000,
            Event::RunFinished {
                verdict: "pass".into(),
            },
        );
        let (backlog, _) = feed.subscribe();
        let kinds: Vec<&str> = backlog
            .iter()
            .map(|l| {
                if l.contains("rss_sweep") {
                    "sweep"
                } else {
                    "other"
                }
            })
            .collect();
        assert_eq!(kinds, ["sweep", "sweep", "sweep", "other"]);
    }

    #[tokio::test]
    async fn a_page_that_connects_late_gets_the_fleet_the_backlog_then_live_entries() {
        let feed = Feed::new(&fleet());
        publish(
            &feed,
            10,
            Event::Phase {
                name: outage_lab_proto::RunPhase::Timeline,
                detail: String::new(),
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let server = tokio::spawn(run(listener, feed.clone(), None, stop.clone()));

        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("send");
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut published_live = false;
        while !got.contains("run_finished") {
            let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
                .await
                .expect("stream answered in time")
                .expect("read");
            assert!(n > 0, "stream closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            if got.contains("\"timeline\"") && !published_live {
                published_live = true;
                publish(
                    &feed,
                    20,
                    Event::RunFinished {
                        verdict: "pass".into(),
                    },
                );
            }
        }
        assert!(got.contains("text/event-stream"), "{got}");
        let fleet_at = got.find("event: fleet").expect("fleet first");
        let phase_at = got.find("\"timeline\"").expect("backlog");
        let live_at = got.find("run_finished").expect("live");
        assert!(fleet_at < phase_at && phase_at < live_at, "{got}");
        assert!(
            got.contains(r#""stale":true"#),
            "the fleet says who is stale"
        );

        let page = http_get(addr, "/").await;
        assert!(
            page.contains("new EventSource"),
            "the page follows the stream"
        );
        stop.cancel();
        server.await.expect("joined").expect("served");
    }

    /// A plain HTTP/1.0 GET, to keep an HTTP client out of the dependencies.
    async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(format!("GET {path} HTTP/1.0\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("send");
        let mut body = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.read_to_string(&mut body),
        )
        .await
        .expect("in time")
        .expect("read");
        body
    }
}

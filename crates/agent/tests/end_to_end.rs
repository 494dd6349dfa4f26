//! The agent in-process against real sockets: a tiny authoritative DNS responder (real DNS
//! packets over UDP, built with hickory-proto), the real collector, and the real agent with its
//! real resolver and HTTP client. Everything stays on 127.0.0.0/8.
//!
//! Every wait is bounded: [`Events::wait_for`] gives up after [`WAIT`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use outage_lab_agent::{Config, Error, RetryPolicy};
use outage_lab_ebs_events::{COLLECTOR_NAME, Event, EventKind, EventSink};
use outage_lab_proto::{ByteSize, HumanDuration};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Upper bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A one-name authoritative DNS server: answers `collector.lab.internal. A` with the current
/// address set and TTL 1 s, NXDOMAIN for anything else. The address set can be swapped while it
/// runs, and it counts the queries it answered.
struct FakeDns {
    addr: SocketAddr,
    answer: Arc<Mutex<Vec<Ipv4Addr>>>,
    queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FakeDns {
    async fn start(answer: Vec<Ipv4Addr>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind DNS socket");
        let addr = socket.local_addr().expect("DNS socket address");
        let answer = Arc::new(Mutex::new(answer));
        let queries = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve_dns(socket, Arc::clone(&answer), Arc::clone(&queries)));
        Self {
            addr,
            answer,
            queries,
            task,
        }
    }

    fn set_answer(&self, addrs: Vec<Ipv4Addr>) {
        *self.answer.lock().expect("answer lock") = addrs;
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_dns(socket: UdpSocket, answer: Arc<Mutex<Vec<Ipv4Addr>>>, queries: Arc<AtomicU64>) {
    let collector = Name::from_ascii(COLLECTOR_NAME).expect("collector name");
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.add_queries(request.queries.iter().cloned());
        for query in &request.queries {
            if query.name() == &collector && query.query_type() == RecordType::A {
                let addrs = answer.lock().expect("answer lock").clone();
                for ip in addrs {
                    response.add_answer(Record::from_rdata(
                        query.name().clone(),
                        1,
                        RData::A(A(ip)),
                    ));
                }
            } else {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
        }
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

/// The events a role emitted so far, plus a bounded wait for the next interesting one.
struct Events {
    rx: Receiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    fn new(rx: Receiver<Event>) -> Self {
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most [`WAIT`]) until an event matching `pred` arrives; returns a copy of it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(event) = self.rx.try_recv() {
                self.seen.push(event.clone());
                if pred(&event) {
                    return event;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events so far: {:#?}",
                self.seen
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn drain(&mut self) -> &[Event] {
        self.seen.extend(self.rx.try_iter());
        &self.seen
    }
}

struct RunningAgent {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
    events: Events,
}

impl RunningAgent {
    fn start(config: Config) -> Self {
        let (sink, rx) = EventSink::channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(outage_lab_agent::run(config, shutdown.clone(), sink));
        Self {
            shutdown,
            task,
            events: Events::new(rx),
        }
    }

    /// Stops the agent and returns every event it emitted.
    async fn stop(mut self) -> Vec<Event> {
        self.shutdown.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stops within the deadline")
            .expect("agent task does not panic");
        assert!(result.is_ok(), "agent returned {result:?}");
        self.events.drain().to_vec()
    }
}

struct RunningCollector {
    port: u16,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), outage_lab_collector::Error>>,
    events: Events,
}

impl RunningCollector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let port = listener.local_addr().expect("collector address").port();
        let (sink, rx) = EventSink::channel();
        let shutdown = CancellationToken::new();
        let config = outage_lab_collector::Config {
            name: "collector-test".into(),
            stats_interval: HumanDuration::millis(50),
        };
        let listeners = outage_lab_collector::Listeners { http: listener };
        let task = tokio::spawn(outage_lab_collector::run(
            config,
            listeners,
            shutdown.clone(),
            sink,
        ));
        Self {
            port,
            shutdown,
            task,
            events: Events::new(rx),
        }
    }

    /// Stops the collector and returns its last per-server counts.
    async fn stop(mut self) -> BTreeMap<String, u64> {
        self.shutdown.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("collector stops within the deadline")
            .expect("collector task does not panic");
        assert!(result.is_ok(), "collector returned {result:?}");
        self.events
            .drain()
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::CollectorStats { per_server, .. } => Some(per_server.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on: connecting to it is refused at once, which is
/// what agents saw when their DNS server still named the dead collector.
async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

fn config(server: &str, dns: SocketAddr, collector_port: u16, retry: RetryPolicy) -> Config {
    Config {
        server: server.into(),
        dns_server: dns,
        collector_port,
        report_interval: HumanDuration::millis(20),
        request_timeout: HumanDuration::millis(500),
        stats_interval: HumanDuration::millis(50),
        retry,
        seed: 2012,
    }
}

fn leaky(per_failure: ByteSize, ceiling: ByteSize) -> RetryPolicy {
    RetryPolicy::Leaky {
        retained_per_failure: per_failure,
        ceiling,
        spool: ByteSize(0),
    }
}

const LOCALHOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The counters of one `AgentStats` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    ok: u64,
    failed: u64,
    pending: u64,
    retained: u64,
}

fn stats_of(event: &Event) -> Option<Stats> {
    match *event {
        Event::AgentStats {
            ok_reports,
            failed_reports,
            pending_reports,
            retained_bytes,
            ..
        } => Some(Stats {
            ok: ok_reports,
            failed: failed_reports,
            pending: pending_reports,
            retained: retained_bytes,
        }),
        _ => None,
    }
}

/// The last `AgentStats` in `events`.
fn last_stats(events: &[Event]) -> Stats {
    events
        .iter()
        .rev()
        .find_map(stats_of)
        .expect("at least one AgentStats")
}

fn is_stats_with(pred: impl Fn(Stats) -> bool) -> impl Fn(&Event) -> bool {
    move |e| stats_of(e).is_some_and(&pred)
}

#[tokio::test]
async fn an_agent_with_a_live_collector_reports_ok_and_announces_the_resolved_address() {
    let dns = FakeDns::start(vec![LOCALHOST]).await;
    let collector = RunningCollector::start().await;
    let mut agent = RunningAgent::start(config(
        "s001",
        dns.addr,
        collector.port,
        RetryPolicy::default(),
    ));
    agent
        .events
        .wait_for("5 accepted reports", is_stats_with(|s| s.ok >= 5))
        .await;
    let events = agent.stop().await;
    let counted = collector.stop().await;

    assert_eq!(
        events[0],
        Event::Ready {
            role: "agent".into(),
            addrs: BTreeMap::new()
        }
    );
    let ready = events
        .iter()
        .filter(|e| e.kind() == EventKind::Ready)
        .count();
    assert_eq!(ready, 1);
    let resolved: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::AgentResolved { .. }))
        .collect();
    assert_eq!(
        resolved,
        [&Event::AgentResolved {
            server: "s001".into(),
            addrs: vec![IpAddr::V4(LOCALHOST)],
        }]
    );
    assert!(
        !events
            .iter()
            .any(|e| e.kind() == EventKind::AgentResolveFailed)
    );

    let Stats {
        ok,
        failed,
        pending,
        retained,
    } = last_stats(&events);
    assert!(ok >= 5);
    assert_eq!((failed, pending, retained), (0, 0, 0));
    // The collector counted what the agent saw accepted (plus at most the one report in flight
    // when the agent stopped, whose answer it never read).
    let at_collector = counted.get("s001").copied().unwrap_or(0);
    assert!(
        at_collector == ok || at_collector == ok + 1,
        "collector counted {at_collector}, agent saw {ok} accepted"
    );
}

#[tokio::test]
async fn a_leaky_agent_with_no_collector_grows_failed_reports_and_retained_bytes() {
    let dns = FakeDns::start(vec![LOCALHOST]).await;
    let port = dead_port().await;
    let per_failure = 64 * 1024;
    let mut agent = RunningAgent::start(config(
        "s002",
        dns.addr,
        port,
        leaky(ByteSize(per_failure), ByteSize::mib(32)),
    ));
    let first = agent
        .events
        .wait_for("a failed report", is_stats_with(|s| s.failed >= 1))
        .await;
    agent
        .events
        .wait_for("more failed reports", is_stats_with(|s| s.failed >= 8))
        .await;
    let events = agent.stop().await;

    let first = stats_of(&first).expect("stats");
    let Stats {
        ok,
        failed,
        pending,
        retained,
    } = last_stats(&events);
    assert_eq!(ok, 0);
    assert!(failed > first.failed && retained > first.retained);
    // Well under the 32 MiB ceiling: every failure retained a whole buffer and its report.
    assert_eq!(retained, failed * per_failure);
    assert_eq!(pending, failed);
    // Resolution worked; it is the collector that is gone.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::AgentResolved { .. }))
    );
}

#[tokio::test]
async fn a_leaky_agent_stops_retaining_at_its_ceiling_but_keeps_counting_failures() {
    let dns = FakeDns::start(vec![LOCALHOST]).await;
    let port = dead_port().await;
    let ceiling = ByteSize::kib(256);
    let mut agent = RunningAgent::start(config(
        "s003",
        dns.addr,
        port,
        leaky(ByteSize::kib(64), ceiling),
    ));
    agent
        .events
        .wait_for(
            "failures past the ceiling",
            is_stats_with(|s| s.failed >= 8),
        )
        .await;
    let events = agent.stop().await;
    let Stats {
        failed,
        pending,
        retained,
        ..
    } = last_stats(&events);
    assert!(failed >= 8);
    assert_eq!(retained, ceiling.bytes());
    assert_eq!(pending, 4);
}

#[tokio::test]
async fn a_fixed_agent_with_no_collector_fails_without_retaining_memory() {
    let dns = FakeDns::start(vec![LOCALHOST]).await;
    let port = dead_port().await;
    let policy = RetryPolicy::Fixed {
        max_pending: 4,
        backoff_base: HumanDuration::millis(10),
        backoff_max: HumanDuration::millis(40),
    };
    let mut agent = RunningAgent::start(config("s004", dns.addr, port, policy));
    agent
        .events
        .wait_for("failed reports", is_stats_with(|s| s.failed >= 8))
        .await;
    let events = agent.stop().await;
    let Stats {
        ok,
        failed,
        pending,
        retained,
    } = last_stats(&events);
    assert_eq!(ok, 0);
    assert!(failed >= 8);
    assert_eq!(retained, 0);
    assert_eq!(pending, 4, "bounded at max_pending");
    for e in &events {
        if let Event::AgentStats { retained_bytes, .. } = e {
            assert_eq!(*retained_bytes, 0);
        }
    }
}

#[tokio::test]
async fn a_record_change_reaches_the_agent_only_after_the_ttl_through_the_resolver_cache() {
    let dns = FakeDns::start(vec![LOCALHOST]).await;
    let collector = RunningCollector::start().await;
    let mut agent = RunningAgent::start(config(
        "s005",
        dns.addr,
        collector.port,
        RetryPolicy::default(),
    ));
    agent
        .events
        .wait_for("the first resolution", |e| {
            matches!(e, Event::AgentResolved { .. })
        })
        .await;
    // The collector is "replaced": the record now names an address nothing listens on.
    let moved = Ipv4Addr::new(127, 0, 0, 2);
    dns.set_answer(vec![moved]);
    let swapped = Instant::now();
    let event = agent
        .events
        .wait_for(
            "the new address",
            |e| matches!(e, Event::AgentResolved { addrs, .. } if addrs == &[IpAddr::V4(moved)]),
        )
        .await;
    let took = swapped.elapsed();
    let events = agent.stop().await;
    collector.stop().await;

    assert_eq!(
        event,
        Event::AgentResolved {
            server: "s005".into(),
            addrs: vec![IpAddr::V4(moved)]
        }
    );
    // The answer had TTL 1 s and was cached just before the swap.
    assert!(
        took >= Duration::from_millis(800),
        "new address seen after {took:?}, before the TTL ran out"
    );
    // About 50 reports were attempted per second; the DNS server saw about one query per TTL.
    let Stats { ok, failed, .. } = last_stats(&events);
    let queries = dns.queries();
    assert!(
        queries * 5 < ok + failed,
        "{queries} DNS queries for {} attempts: the resolver cache is not used",
        ok + failed
    );
    assert!(ok >= 1 && failed >= 1, "ok {ok}, failed {failed}");
}

#[tokio::test]
async fn an_agent_that_cannot_resolve_reports_the_failure_once_not_every_tick() {
    // A DNS server that never answers: every lookup times out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let dns = silent.local_addr().expect("address");
    let mut cfg = config("s006", dns, dead_port().await, RetryPolicy::default());
    cfg.request_timeout = HumanDuration::millis(50);
    let mut agent = RunningAgent::start(cfg);
    agent
        .events
        .wait_for("several failed lookups", is_stats_with(|s| s.failed >= 5))
        .await;
    let events = agent.stop().await;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::AgentResolveFailed { .. }))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(matches!(failures[0], Event::AgentResolveFailed { server, .. } if server == "s006"));
    assert!(!events.iter().any(|e| e.kind() == EventKind::AgentResolved));
    let Stats {
        failed, retained, ..
    } = last_stats(&events);
    assert_eq!(
        retained,
        failed * 64 * 1024,
        "a failed lookup is a failed report too"
    );
    drop(silent);
}

#[tokio::test]
async fn shutdown_stops_an_agent_in_the_middle_of_a_slow_attempt_and_emits_final_stats() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let dns = silent.local_addr().expect("address");
    let mut cfg = config("s007", dns, dead_port().await, RetryPolicy::default());
    cfg.request_timeout = HumanDuration::secs(5);
    cfg.stats_interval = HumanDuration::secs(60);
    let mut agent = RunningAgent::start(cfg);
    agent
        .events
        .wait_for("readiness", |e| e.kind() == EventKind::Ready)
        .await;
    // Let the first lookup start and hang.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = Instant::now();
    let events = agent.stop().await;
    assert!(stopping.elapsed() < Duration::from_millis(500));
    assert_eq!(
        last_stats(&events),
        Stats {
            ok: 0,
            failed: 0,
            pending: 0,
            retained: 0
        }
    );
    drop(silent);
}

#[tokio::test]
async fn an_agent_with_an_inverted_backoff_refuses_to_start() {
    let policy = RetryPolicy::Fixed {
        max_pending: 8,
        backoff_base: HumanDuration::secs(3),
        backoff_max: HumanDuration::secs(1),
    };
    let cfg = config("s008", "127.0.0.1:9".parse().expect("addr"), 9, policy);
    let result = outage_lab_agent::run(cfg, CancellationToken::new(), EventSink::discard()).await;
    assert!(matches!(result, Err(Error::InvalidConfig(_))));
}

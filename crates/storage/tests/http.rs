//! The storage role in-process: real sockets on 127.0.0.1, real cache memory.
//!
//! Every server in this file sizes its cache from this test process's own RSS, so two servers
//! running at once would each see the other's cache as their own "base" memory and fight. The
//! tests therefore take [`SERIAL`] for their whole duration.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use outage_lab_ebs_events::{Event, EventSink};
use outage_lab_proto::testing::{self, RunningRole, start_role};
use outage_lab_proto::{ByteSize, HumanDuration};
use outage_lab_storage::{Config, Health, Listeners, run};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(10);

/// A running storage server; cancels and joins it on `stop`.
struct Server {
    role: RunningRole<outage_lab_storage::Error, outage_lab_ebs_events::Event>,
}

impl Server {
    /// Starts one on loopback; its first event must be `Ready` naming its `http` address.
    async fn start(config: Config) -> Self {
        let role = start_role("storage", "http", |http, shutdown, sink| {
            run(config, Listeners { http }, shutdown, sink)
        })
        .await;
        Self { role }
    }

    async fn health(&self) -> Health {
        let resp = tokio::time::timeout(WAIT, self.role.http.get(self.role.url("/health")).send())
            .await
            .expect("health in time")
            .expect("health request");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("health JSON")
    }

    /// Sends one request; returns status, body and how long it took.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>, Duration) {
        let started = Instant::now();
        let resp = tokio::time::timeout(
            WAIT,
            self.role
                .http
                .request(method, self.role.url(path))
                .body(body)
                .send(),
        )
        .await
        .expect("answer in time")
        .expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body").to_vec();
        (status, bytes, started.elapsed())
    }

    async fn get(&self, path: &str) -> (u16, Vec<u8>, Duration) {
        self.request(reqwest::Method::GET, path, Vec::new()).await
    }

    async fn stop(self) {
        self.role
            .stop(Duration::from_secs(5))
            .await
            .expect("storage returns Ok on shutdown");
    }
}

/// Waits (under a timeout) for the first event matching `pred`, skipping others.
async fn next_event(events: &Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    testing::next_event(events, WAIT, pred)
        .await
        .expect("event in time")
}

/// A server whose cache can never hold its working set (1 GiB of blocks, 64 MiB budget): low
/// slots are hits, the last slot is always a miss.
fn degraded_config() -> Config {
    let mut c = Config::new("s007");
    c.budget = ByteSize::mib(64);
    c.working_set = ByteSize::mib(1024);
    c.stats_interval = HumanDuration::millis(100);
    c
}

const LAST_SLOT: u64 = 1024 * 16 - 1;

#[tokio::test]
async fn a_ready_event_comes_first_and_stats_follow_with_the_cache_size() {
    let _serial = SERIAL.lock().await;
    let server = Server::start(degraded_config()).await;
    let health = server.health().await;
    assert!(health.cache_bytes > 0, "cache never grew: {health:?}");
    assert!(health.cache_bytes <= 64 << 20);
    assert_eq!(health.cache_bytes % (64 << 10), 0);
    assert!(health.degraded, "1 GiB working set cannot fit: {health:?}");
    let stats = next_event(&server.role.events, |e| {
        matches!(e, Event::StorageStats { .. })
    })
    .await;
    let Event::StorageStats {
        server: name,
        cache_bytes,
        degraded,
        agent_rss_bytes,
        ..
    } = stats
    else {
        unreachable!("filtered on StorageStats")
    };
    assert_eq!(name, "s007");
    assert!(cache_bytes > 0);
    assert!(degraded);
    assert_eq!(agent_rss_bytes, 0, "no pid file: no agent memory");
    server.stop().await;
}

#[tokio::test]
async fn hits_are_fast_misses_queue_on_the_disk_and_a_tight_deadline_yields_503() {
    let _serial = SERIAL.lock().await;
    let mut config = degraded_config();
    config.miss_penalty = HumanDuration::millis(50);
    // Two misses fit (done at 50 and 100 ms); a third would finish at 150 ms.
    config.request_deadline = HumanDuration::millis(120);
    let server = Server::start(config).await;

    let (status, body, took) = server.get("/blocks/0").await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 64 << 10);
    assert!(
        body.iter().all(|&b| b == body[0] && b != 0),
        "a hit returns the block's bytes"
    );
    assert!(
        took < Duration::from_millis(50),
        "a hit took {took:?}, as long as a disk read"
    );

    // Four concurrent misses on the one disk.
    let path = format!("/blocks/{LAST_SLOT}");
    let (a, b, c, d) = tokio::join!(
        server.get(&path),
        server.get(&path),
        server.get(&path),
        server.get(&path)
    );
    let mut results = [a, b, c, d];
    results.sort_by_key(|r| r.2);
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let late: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(
        ok.len() + late.len(),
        4,
        "only 200 or 503: {:?}",
        results.map(|r| (r.0, r.2))
    );
    assert!(!ok.is_empty(), "the first miss gets the disk");
    assert!(
        ok.iter()
            .all(|r| r.1.len() == 64 << 10 && r.2 >= Duration::from_millis(50))
    );
    assert!(
        !late.is_empty(),
        "four queued misses cannot all finish within 120 ms"
    );
    assert!(late.iter().all(|r| r.1 == b"deadline exceeded"));
    if ok.len() >= 2 {
        assert!(
            ok[1].2 >= Duration::from_millis(100),
            "the second miss waited for the first"
        );
    }

    let health = server.health().await;
    assert_eq!(health.hits, 1);
    assert_eq!(health.misses, 4);
    assert_eq!(health.deadline_misses, late.len() as u64);
    server.stop().await;
}

#[tokio::test]
async fn misses_serialise_on_the_single_disk() {
    let _serial = SERIAL.lock().await;
    let mut config = degraded_config();
    config.miss_penalty = HumanDuration::millis(30);
    config.request_deadline = HumanDuration::secs(5);
    let server = Server::start(config).await;
    let path = format!("/blocks/{LAST_SLOT}");
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        server.get(&path),
        server.get(&path),
        server.get(&path),
        server.get(&path)
    );
    let wall = started.elapsed();
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.0, 200);
    }
    let slowest = [a.2, b.2, c.2, d.2].into_iter().max().unwrap_or_default();
    assert!(
        slowest >= Duration::from_millis(120),
        "4 x 30 ms misses, slowest took {slowest:?}"
    );
    assert!(wall >= Duration::from_millis(120));
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_and_a_written_block_reads_back() {
    let _serial = SERIAL.lock().await;
    let server = Server::start(degraded_config()).await;
    assert_eq!(server.get("/blocks/abc").await.0, 400);
    assert_eq!(server.get("/blocks/-1").await.0, 400);
    assert_eq!(server.get("/blocks/99999999999999999999999").await.0, 400);
    assert_eq!(server.get("/nope").await.0, 404);
    assert_eq!(server.get("/blocks").await.0, 404);
    let (status, ..) = server
        .request(reqwest::Method::DELETE, "/blocks/1", Vec::new())
        .await;
    assert_eq!(status, 405);
    let (status, ..) = server
        .request(reqwest::Method::POST, "/health", Vec::new())
        .await;
    assert_eq!(status, 405);
    let (status, ..) = server
        .request(reqwest::Method::PUT, "/blocks/1", vec![7; (64 << 10) + 1])
        .await;
    assert_eq!(status, 413, "a body larger than one block");

    let (status, ..) = server
        .request(reqwest::Method::PUT, "/blocks/0", vec![7; 100])
        .await;
    assert_eq!(status, 204);
    let (status, body, _) = server.get("/blocks/0").await;
    assert_eq!(status, 200);
    assert!(body[..100].iter().all(|&b| b == 7));
    assert!(body[100..].iter().all(|&b| b != 7 && b != 0));
    server.stop().await;
}

#[tokio::test]
async fn the_agent_pid_file_is_read_and_an_absent_agent_keeps_its_share_until_a_new_one_runs() {
    let _serial = SERIAL.lock().await;
    // Any small live process stands in for the agent.
    let mut agent = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let dir = std::env::temp_dir().join(format!("outage-lab-storage-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let pid_file = dir.join("agent.pid");
    std::fs::write(&pid_file, format!("{}\n", agent.id())).expect("write pid file");

    let mut config = degraded_config();
    config.agent_pid_file = Some(pid_file.clone());
    config.resize_interval = HumanDuration::millis(20);
    let server = Server::start(config).await;
    let with_agent = server.health().await;
    assert!(with_agent.agent_rss_bytes > 0, "{with_agent:?}");

    // The agent goes away (a restart): for many ticks its share stays out of the cache, so the
    // storage process's memory does not climb and fall back while the agent is replaced.
    let _ = agent.kill();
    let _ = agent.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let absent = server.health().await;
    assert_eq!(
        absent.agent_rss_bytes, with_agent.agent_rss_bytes,
        "{absent:?}"
    );
    // (Within 1 MiB: in this test the storage is the test process, whose own memory wobbles;
    // without the hold the target would jump by the agent's whole share.)
    assert!(
        absent
            .cache_target_bytes
            .abs_diff(with_agent.cache_target_bytes)
            < 1 << 20,
        "{with_agent:?} then {absent:?}"
    );

    // A new agent runs (this test process, which is much larger than `sleep`): its memory is read.
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("write pid file");
    let replaced = tokio::time::timeout(WAIT, async {
        loop {
            let h = server.health().await;
            if h.agent_rss_bytes != with_agent.agent_rss_bytes {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the new agent's memory is read");
    assert!(
        replaced.agent_rss_bytes > with_agent.agent_rss_bytes,
        "{with_agent:?} then {replaced:?}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_invalid_config_is_an_error_before_anything_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = Config::new("s000");
    config.block_size = ByteSize(1000); // not whole pages
    let res = tokio::time::timeout(
        WAIT,
        run(
            config,
            Listeners { http: listener },
            CancellationToken::new(),
            EventSink::discard(),
        ),
    )
    .await
    .expect("returns at once");
    assert!(
        matches!(res, Err(outage_lab_storage::Error::Config(_))),
        "{res:?}"
    );
}

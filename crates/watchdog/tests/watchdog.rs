//! The watchdog in-process: a real admin API on 127.0.0.1 and real RSS readings of this very
//! test process, which plays the agent.

use std::hint::black_box;
use std::time::Duration;

use outage_lab_ebs_events::wire::Target;
use outage_lab_ebs_events::{AlarmKind, Event, EventSink, ProcessRole};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::testing::{RunningRole, next_event, start_role};
use outage_lab_watchdog::{Config, Health, Listeners, run};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Watchdog {
    role: RunningRole<outage_lab_watchdog::Error, outage_lab_ebs_events::Event>,
}

impl Watchdog {
    /// Starts one on loopback; its first event must be `Ready` naming its `admin` address.
    async fn start(config: Config) -> Self {
        let role = start_role("watchdog", "admin", |admin, shutdown, sink| {
            run(config, Listeners { admin }, shutdown, sink)
        })
        .await;
        Self { role }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        let resp = tokio::time::timeout(WAIT, req.send())
            .await
            .expect("answer in time")
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    async fn put_targets(&self, body: String, token: Option<&str>) -> (u16, String) {
        let mut req = self
            .role
            .http
            .put(self.role.url("/targets"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.send(self.role.http.get(self.role.url(path))).await
    }

    async fn stop(self) {
        self.role
            .stop(Duration::from_secs(5))
            .await
            .expect("watchdog returns Ok on shutdown");
    }
}

fn targets_json(targets: &[Target]) -> String {
    serde_json::to_string(targets).expect("serialize targets")
}

fn me_as_agent(server: &str, budget_bytes: u64) -> Target {
    Target {
        server: server.into(),
        role: ProcessRole::Agent,
        pid: std::process::id(),
        budget_bytes,
        stale: false,
        cache_url: None,
        tree: false,
        reader: None,
    }
}

/// This process's RSS from /proc/self/statm.
fn own_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident field");
    pages * 4096
}

#[tokio::test]
async fn sweeps_carry_this_process_rss_and_a_growing_allocation_raises_a_leak_alarm() {
    let config = Config {
        sample_interval: HumanDuration::millis(250),
        ..Config::default()
    };
    let wd = Watchdog::start(config).await;
    let me = me_as_agent("s042", 1 << 40);
    let (status, body) = wd
        .put_targets(targets_json(std::slice::from_ref(&me)), None)
        .await;
    assert_eq!(status, 200, "{body}");

    let sweep = next_event(
        &wd.role.events,
        WAIT,
        |e| matches!(e, Event::RssSweep { samples } if !samples.is_empty()),
    )
    .await
    .expect("a sweep with a sample");
    let Event::RssSweep { samples } = sweep else {
        unreachable!("filtered on RssSweep")
    };
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].pid, me.pid);
    assert_eq!(samples[0].server, "s042");
    assert_eq!(samples[0].role, ProcessRole::Agent);
    let expected = own_rss();
    assert!(
        samples[0].rss_bytes.abs_diff(expected) < 32 << 20,
        "sampled {} bytes, statm says {expected}",
        samples[0].rss_bytes
    );

    // Leak: 8 MiB touched every 500 ms, held until the end of the test.
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut alarm = None;
    for _ in 0..24 {
        held.push(black_box(vec![0xA5u8; 8 << 20]));
        alarm = next_event(&wd.role.events, Duration::from_millis(500), |e| {
            matches!(
                e,
                Event::Alarm {
                    alarm: AlarmKind::Leak,
                    ..
                }
            )
        })
        .await;
        if alarm.is_some() {
            break;
        }
    }
    let Some(Event::Alarm {
        server,
        role,
        pid,
        detail,
        ..
    }) = alarm
    else {
        panic!("no leak alarm after allocating {} MiB", held.len() * 8)
    };
    assert_eq!(server, "s042");
    assert_eq!(role, Some(ProcessRole::Agent));
    assert_eq!(pid, Some(me.pid));
    assert!(detail.contains("MiB"), "{detail}");
    black_box(&held);

    let (status, body) = wd.get("/health").await;
    assert_eq!(status, 200);
    let health: Health = serde_json::from_str(&body).expect("health JSON");
    assert_eq!(health.targets, 1);
    assert_eq!(health.leak_alarms, 1);
    assert!(health.sweeps >= 16, "{health:?}");
    wd.stop().await;
}

#[tokio::test]
async fn a_server_over_its_budget_for_four_sweeps_raises_the_aggregate_alarm() {
    let config = Config {
        sample_interval: HumanDuration::millis(50),
        ..Config::default()
    };
    let wd = Watchdog::start(config).await;
    // A child process stands in for storage; this process is the agent. A 1 MiB budget is
    // exceeded by either alone.
    let mut storage = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let targets = [
        me_as_agent("s001", 1 << 20),
        Target {
            server: "s001".into(),
            role: ProcessRole::Storage,
            pid: storage.id(),
            budget_bytes: 1 << 20,
            stale: false,
            cache_url: None,
            tree: false,
            reader: None,
        },
    ];
    let (status, body) = wd.put_targets(targets_json(&targets), None).await;
    assert_eq!(status, 200, "{body}");
    let alarm = next_event(&wd.role.events, WAIT, |e| {
        matches!(
            e,
            Event::Alarm {
                alarm: AlarmKind::Aggregate,
                ..
            }
        )
    })
    .await;
    let _ = storage.kill();
    let _ = storage.wait();
    let Some(Event::Alarm {
        server, role, pid, ..
    }) = alarm
    else {
        panic!("no aggregate alarm")
    };
    assert_eq!((server.as_str(), role, pid), ("s001", None, None));
    wd.stop().await;
}

#[tokio::test]
async fn targets_round_trip_and_bad_lists_get_4xx() {
    let wd = Watchdog::start(Config::default()).await;
    let (status, body) = wd.get("/targets").await;
    assert_eq!((status, body.as_str()), (200, "[]"));

    let me = me_as_agent("s000", 48 << 20);
    let (status, _) = wd
        .put_targets(targets_json(std::slice::from_ref(&me)), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = wd.get("/targets").await;
    assert_eq!(status, 200);
    let got: Vec<Target> = serde_json::from_str(&body).expect("targets JSON");
    assert_eq!(got, std::slice::from_ref(&me));

    assert_eq!(wd.put_targets("not json".into(), None).await.0, 400);
    assert_eq!(
        wd.put_targets(r#"[{"server":"s0"}]"#.into(), None).await.0,
        400
    );
    let unknown_field = r#"[{"server":"s0","role":"agent","pid":1,"budget_bytes":1,"x":1}]"#;
    assert_eq!(wd.put_targets(unknown_field.into(), None).await.0, 400);
    let twice = targets_json(&[me.clone(), me.clone()]);
    assert_eq!(wd.put_targets(twice, None).await.0, 422);
    let huge = format!("[{}]", " ".repeat(2 << 20));
    assert_eq!(wd.put_targets(huge, None).await.0, 413);
    assert_eq!(wd.get("/nope").await.0, 404);
    let (status, _) = wd.send(wd.role.http.delete(wd.role.url("/targets"))).await;
    assert_eq!(status, 405);

    // Rejected lists left the watched set alone.
    let (_, body) = wd.get("/targets").await;
    let got: Vec<Target> = serde_json::from_str(&body).expect("targets JSON");
    assert_eq!(got, [me]);
    wd.stop().await;
}

#[tokio::test]
async fn with_a_token_a_put_without_the_bearer_header_is_refused_with_401() {
    let config = Config {
        admin_token: Some("s3cret".into()),
        ..Config::default()
    };
    let wd = Watchdog::start(config).await;
    let body = targets_json(&[me_as_agent("s000", 48 << 20)]);
    assert_eq!(wd.put_targets(body.clone(), None).await.0, 401);
    assert_eq!(wd.put_targets(body.clone(), Some("wrong")).await.0, 401);
    // Refused before the body is even parsed.
    assert_eq!(wd.put_targets("not json".into(), None).await.0, 401);
    assert_eq!(wd.put_targets(body, Some("s3cret")).await.0, 200);
    // Reading stays open.
    assert_eq!(wd.get("/targets").await.0, 200);
    wd.stop().await;
}

#[tokio::test]
async fn an_invalid_config_is_an_error_before_anything_is_served() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = Config::default();
    config.leak.segments = 1;
    let res = tokio::time::timeout(
        WAIT,
        run(
            config,
            Listeners { admin: listener },
            CancellationToken::new(),
            EventSink::discard(),
        ),
    )
    .await
    .expect("returns at once");
    assert!(
        matches!(res, Err(outage_lab_watchdog::Error::Config(_))),
        "{res:?}"
    );
}

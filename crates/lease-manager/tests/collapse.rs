//! A metastable failure over real sockets: a lease manager whose state checks read a key-value
//! service through a lab DNS server, and 300 servers renewing their leases through it with a
//! budget and a retry. The DNS name is emptied long enough for every lease to expire, then
//! restored. Nothing else happens: whether the manager recovers is up to its queue, and then
//! to what operators do (a throttle, a restart). Each part is started as its role, as a run's
//! processes start them (here as tasks of one test process).
//!
//! Sizes: 4 workers at 20 ms a renewal can do 200 a second. In steady state 300 servers renew
//! every 3 s (100 a second). After the outage all 300 ask at once: 1.5 s of work against a
//! 300 ms budget, and every server whose renewal times out asks again 50 ms later.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use outage_lab_dns::client::change;
use outage_lab_dynamodb_events::{Event, EventSink};
use outage_lab_lease_manager::roles::{self, Listeners};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::wire::DnsChange;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

mod support;
use support::ENDPOINT;
const SERVERS: u64 = 300;

/// One second of the manager: (queued, processed, completed, timed out, leases valid).
type Second = (u64, u64, u64, u64, u64);

struct Lab {
    dns_admin: SocketAddr,
    service: Ipv4Addr,
    events: Receiver<Event>,
    /// The manager's API, where a restarted manager serves again.
    manager_addr: SocketAddr,
    /// Stops the running manager (its server, workers and stats).
    manager_stop: CancellationToken,
    /// Starts a manager on a listener, telling its stats where the first one did.
    start_manager: Box<dyn Fn(TcpListener, CancellationToken)>,
    shutdown: CancellationToken,
    _stop: DropGuard,
}

impl Lab {
    /// The service, its DNS server, the manager and the servers, each started as its role.
    async fn start(admission_control: Option<usize>, recovery_runbook: Option<u32>) -> Lab {
        let shutdown = CancellationToken::new();
        let (sink, events) = EventSink::channel();
        let service = Ipv4Addr::new(127, 0, 9, 1);
        let (config, dns_admin) =
            support::state_service(&shutdown, service, admission_control, recovery_runbook).await;
        let start_manager = Box::new(move |http: TcpListener, stop: CancellationToken| {
            let role = roles::manager(config.clone(), Listeners { http }, stop, sink.clone());
            tokio::spawn(role);
        });
        let api = TcpListener::bind("127.0.0.1:0").await.expect("manager");
        let manager_addr = api.local_addr().expect("addr");
        let manager_stop = shutdown.child_token();
        start_manager(api, manager_stop.clone());
        support::start_servers(
            &shutdown,
            manager_addr,
            SERVERS as usize,
            HumanDuration::secs(3),
        );
        let lab = Lab {
            dns_admin,
            service,
            events,
            manager_addr,
            manager_stop,
            start_manager,
            _stop: shutdown.clone().drop_guard(),
            shutdown,
        };
        lab.ready(&["lease_manager"]).await;
        lab
    }

    /// Waits until each of `roles` has told it is ready.
    async fn ready(&self, roles: &[&str]) {
        let mut waiting: Vec<&str> = roles.to_vec();
        for _ in 0..250 {
            while let Ok(event) = self.events.try_recv() {
                if let Event::Ready { role, .. } = event {
                    waiting.retain(|r| *r != role);
                }
            }
            if waiting.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not ready within 5 s: {waiting:?}");
    }

    async fn set(&self, addrs: Vec<Ipv4Addr>) {
        let change_ = DnsChange::Set(addrs.into_iter().map(Into::into).collect());
        let http = reqwest::Client::new();
        change(&http, self.dns_admin, ENDPOINT, &change_)
            .await
            .expect("admin");
    }

    /// Puts the operators' throttle on the manager through its API.
    async fn throttle(&self, per_second: u32) {
        let url = format!("http://{}/control", self.manager_addr);
        let body = format!(r#"{{"throttle":{per_second}}}"#);
        let http = reqwest::Client::new();
        let put = http
            .put(&url)
            .header("content-type", "application/json")
            .body(body);
        let answer = put.send().await.expect("the manager's API");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
    }

    /// Stops the manager, losing its queue as a killed process does, and starts a new one on
    /// the same address with `throttle` in force.
    async fn restart_manager(&mut self, throttle: u32) {
        self.manager_stop.cancel();
        let mut api = None;
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.manager_addr).await {
                api = Some(listener);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let api = api.expect("the manager's address free again within 2 s");
        self.manager_stop = self.shutdown.child_token();
        (self.start_manager)(api, self.manager_stop.clone());
        self.throttle(throttle).await;
    }

    /// The manager's seconds told during the next `span`.
    async fn seconds(&self, span: Duration) -> Vec<Second> {
        tokio::time::sleep(span).await;
        let mut seconds = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            if let Event::LeaseStats {
                queued,
                processed,
                completed,
                timed_out,
                leases_valid,
                ..
            } = event
            {
                seconds.push((queued, processed, completed, timed_out, leases_valid));
            }
        }
        seconds
    }

    /// Steady state, an outage long enough for every lease to expire, the repair; the seconds
    /// after the repair.
    async fn outage_and_repair(&self) -> Vec<Second> {
        let steady = self.seconds(Duration::from_secs(5)).await;
        assert!(
            steady.last().is_some_and(|s| s.4 == SERVERS && s.3 == 0),
            "not steady before the outage: {steady:?}"
        );
        self.set(vec![]).await;
        let outage = self.seconds(Duration::from_millis(6500)).await;
        assert!(
            outage.iter().any(|s| s.4 == 0),
            "leases did not all expire: {outage:?}"
        );
        self.set(vec![self.service]).await;
        self.seconds(Duration::from_secs(6)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admission_control_the_manager_recovers_by_itself() {
    let lab = Lab::start(Some(400), None).await;
    let after = lab.outage_and_repair().await;
    eprintln!("(queued, processed, completed, timed out, leases) after the repair: {after:?}");
    // Back within 3 s of the repair idle, within 4 s with both cores busy: the last 2 of 6 s.
    let tail = &after[after.len().saturating_sub(2)..];
    assert!(
        tail.iter().all(|s| s.4 == SERVERS),
        "leases not all back: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_in_first_out_it_collapses_and_stays_down_under_a_throttle_until_a_restart() {
    let mut lab = Lab::start(None, None).await;
    let after = lab.outage_and_repair().await;
    eprintln!("(queued, processed, completed, timed out, leases) after the repair: {after:?}");
    // The last 3 seconds: long after the negative TTL (1 s) let the checks through again.
    let tail = &after[after.len().saturating_sub(3)..];
    let processed: u64 = tail.iter().map(|s| s.1).sum();
    let completed: u64 = tail.iter().map(|s| s.2).sum();
    assert!(processed > 300, "the workers were not busy: {tail:?}");
    assert!(
        completed * 10 < processed,
        "goodput above a tenth of the work: {tail:?}"
    );
    assert!(
        tail.iter().all(|s| s.4 < SERVERS / 2),
        "leases came back: {tail:?}"
    );
    assert!(
        tail.windows(2).all(|w| w[1].0 >= w[0].0),
        "the queue shrank: {tail:?}"
    );

    lab.throttle(120).await;
    let throttled = lab.seconds(Duration::from_secs(4)).await;
    eprintln!("(queued, processed, completed, timed out, leases) throttled: {throttled:?}");
    let completed: u64 = throttled.iter().map(|s| s.2).sum();
    assert!(
        completed < 30,
        "the throttle alone brought renewals back: {throttled:?}"
    );
    lab.restart_manager(120).await;
    let restarted = lab.seconds(Duration::from_secs(5)).await;
    eprintln!("(queued, processed, completed, timed out, leases) restarted: {restarted:?}");
    // The leases come back. A throttle only a fifth above the renewals' rate refuses some in
    // the bursts, and a refused server waits its `Retry-After` (1-2 s with its jitter), longer
    // than its lease's slack (1 s): a few leases lapse a moment, as AWS's throttle refused
    // some launches (seen: 296-300 of 300 once back, idle and with both cores busy).
    assert!(
        restarted.iter().any(|s| s.4 >= SERVERS - 5),
        "leases not back: {restarted:?}"
    );
    let tail = &restarted[restarted.len().saturating_sub(2)..];
    assert!(
        tail.iter().all(|s| s.4 >= SERVERS - 10),
        "leases lost again: {restarted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_recovery_runbook_the_manager_drops_its_backlog_and_recovers_by_itself() {
    let lab = Lab::start(None, Some(120)).await;
    let mut after = lab.outage_and_repair().await;
    after.extend(lab.seconds(Duration::from_secs(2)).await);
    eprintln!("(queued, processed, completed, timed out, leases) after the repair: {after:?}");
    // The checks come back after the negative TTL and the backlog goes at once; servers the
    // bound refused wait their Retry-After (1-2 s), so the leases come back about 5 s after
    // the repair (seen: 281 then 298 of 300 at 5 and 6 s in a loaded CI run): the last 2 of 8 s.
    let tail = &after[after.len().saturating_sub(2)..];
    assert!(
        tail.iter().all(|s| s.4 >= SERVERS - 10),
        "leases not back: {after:?}"
    );
}

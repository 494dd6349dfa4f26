//! Clients against an endpoint that empties, over real sockets: a lab DNS server, two instances
//! of the service on their own loopback addresses, and three clients that differ only in how
//! long they keep their connections and whether they serve stale answers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use outage_lab_dns::client::change;
use outage_lab_dynamodb_events::{ClientKind, Event, EventSink};
use outage_lab_kv::client::{Client, Config};
use outage_lab_kv::service;
use outage_lab_proto::HumanDuration;
use outage_lab_proto::wire::DnsChange;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

const ENDPOINT: &str = "kv.lab.internal.";

/// What each client told, second by second: (ok, failed, served stale).
type Seconds = BTreeMap<String, Vec<(u64, u64, u64)>>;

struct Lab {
    dns_admin: SocketAddr,
    lbs: Vec<IpAddr>,
    events: Receiver<Event>,
    _stop: DropGuard,
}

/// Two service instances on 127.0.9.1 and 127.0.9.2, on one port.
async fn services(shutdown: &CancellationToken) -> u16 {
    let first = TcpListener::bind("127.0.9.1:0").await.expect("bind");
    let port = first.local_addr().expect("addr").port();
    let second = TcpListener::bind(("127.0.9.2", port))
        .await
        .expect("the same port");
    for listener in [first, second] {
        let serve = axum::serve(listener, service::router());
        let stop = shutdown.clone().cancelled_owned();
        tokio::spawn(serve.with_graceful_shutdown(stop).into_future());
    }
    port
}

impl Lab {
    async fn start(clients: &[(&str, Duration, bool)]) -> Lab {
        let shutdown = CancellationToken::new();
        let lbs: Vec<IpAddr> = vec![[127, 0, 9, 1].into(), [127, 0, 9, 2].into()];
        let v4 = |ip: &IpAddr| match ip {
            IpAddr::V4(v4) => *v4,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let config = outage_lab_dns::Config {
            records: BTreeMap::from([(ENDPOINT.to_owned(), lbs.iter().map(v4).collect())]),
            ttl: HumanDuration::secs(1),
            admin_token: None,
            counted: None,
        };
        let served = outage_lab_dns::testing::serve(config, &shutdown).await;
        let (dns, dns_admin) = (served.dns, served.admin);
        let port = services(&shutdown).await;
        let (sink, events) = EventSink::channel();
        for &(name, max_age, serve_stale) in clients {
            let client = Client::new(Config {
                name: name.into(),
                kind: ClientKind::Customer,
                endpoint: ENDPOINT.into(),
                port,
                dns_server: dns,
                rate: 20,
                timeout: HumanDuration::millis(500),
                connection_max_age: HumanDuration(max_age),
                serve_stale,
            })
            .expect("client");
            tokio::spawn(client.run(shutdown.clone(), sink.clone()));
        }
        Lab {
            dns_admin,
            lbs,
            events,
            _stop: shutdown.drop_guard(),
        }
    }

    async fn set(&self, addrs: Vec<IpAddr>) {
        let http = reqwest::Client::new();
        (change(&http, self.dns_admin, ENDPOINT, &DnsChange::Set(addrs)).await).expect("admin");
    }

    /// Every client's seconds told during the next `span`.
    async fn seconds(&self, span: Duration) -> Seconds {
        tokio::time::sleep(span).await;
        let mut seconds = Seconds::new();
        while let Ok(event) = self.events.try_recv() {
            if let Event::ClientStats {
                client,
                ok,
                failed,
                served_stale,
                ..
            } = event
            {
                seconds
                    .entry(client)
                    .or_default()
                    .push((ok, failed, served_stale));
            }
        }
        seconds
    }
}

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_endpoint_fails_new_connections_only_and_serve_stale_rides_it_out() {
    let lab = Lab::start(&[
        ("pooled", LONG, false),
        ("fresh", SHORT, false),
        ("stale", SHORT, true),
    ])
    .await;
    let before = lab.seconds(Duration::from_millis(2500)).await;
    for (client, seconds) in &before {
        assert!(
            seconds.iter().all(|s| s.1 == 0),
            "{client} failed before the fault: {seconds:?}"
        );
        assert!(
            seconds.iter().any(|s| s.0 > 0),
            "{client} sent nothing: {seconds:?}"
        );
    }

    lab.set(vec![]).await;
    // The positive TTL (1 s) and the pool's age (0.3 s) pass; then every new connection fails.
    let during = lab.seconds(Duration::from_millis(4500)).await;
    eprintln!("(ok, failed, stale) per second while empty: {during:?}");
    let failing = |s: &(u64, u64, u64)| s.0 == 0 && s.1 > 0;
    assert!(
        during["fresh"].iter().any(failing),
        "fresh never failed: {during:?}"
    );
    assert!(
        during["pooled"].iter().all(|s| s.1 == 0),
        "its connection survived: {during:?}"
    );
    assert!(
        during["stale"].iter().all(|s| s.1 == 0),
        "stale answers: {during:?}"
    );
    assert!(
        during["stale"].iter().any(|s| s.2 > 0),
        "no stale answer served: {during:?}"
    );

    lab.set(lab.lbs.clone()).await;
    // The negative TTL (the SOA's, 1 s) and the pool's age pass; then new connections work.
    let started = Instant::now();
    let mut recovered = None;
    while recovered.is_none() && started.elapsed() < Duration::from_secs(8) {
        let after = lab.seconds(Duration::from_millis(500)).await;
        if after
            .get("fresh")
            .is_some_and(|s| s.iter().any(|s| s.0 > 0 && s.1 == 0))
        {
            recovered = Some(started.elapsed());
        }
    }
    let recovered = recovered.expect("fresh did not recover within 8 s of the repair");
    eprintln!("fresh recovered {recovered:?} after the repair");
}

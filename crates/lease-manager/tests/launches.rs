//! Customers' launches over real sockets: a launch is placed on a server whose lease is valid,
//! and refused with "insufficient capacity" while no server holds one.

use std::net::Ipv4Addr;
use std::time::Duration;

use outage_lab_dynamodb_events::{Event, EventSink};
use outage_lab_lease_manager::launches;
use outage_lab_lease_manager::roles::{self, Listeners};
use outage_lab_proto::HumanDuration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod support;

/// What the customers told over `span`: (placed, insufficient capacity, failed) per second.
async fn told(events: &std::sync::mpsc::Receiver<Event>, span: Duration) -> Vec<(u64, u64, u64)> {
    tokio::time::sleep(span).await;
    let mut seconds: Vec<(u64, u64, u64)> = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::LaunchStats {
            customer,
            launched,
            insufficient_capacity,
            failed,
        } = event
        {
            if customer == launches::customer_name(0) {
                seconds.push((0, 0, 0));
            }
            if let Some(last) = seconds.last_mut() {
                *last = (
                    last.0 + launched,
                    last.1 + insufficient_capacity,
                    last.2 + failed,
                );
            }
        }
    }
    seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_are_refused_until_a_server_holds_a_lease_and_placed_after() {
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (sink, events) = EventSink::channel();
    let (config, _) =
        support::state_service(&shutdown, Ipv4Addr::new(127, 0, 9, 2), None, None).await;
    let api = TcpListener::bind("127.0.0.1:0").await.expect("manager");
    let manager = api.local_addr().expect("addr");
    tokio::spawn(roles::manager(
        config,
        Listeners { http: api },
        shutdown.clone(),
        EventSink::discard(),
    ));
    let customers = launches::Config {
        customers: 2,
        manager,
        every: HumanDuration::millis(100),
        timeout: HumanDuration::millis(500),
        start_after: HumanDuration::millis(0),
    };
    tokio::spawn(roles::launchers(customers, shutdown.clone(), sink));

    let before = told(&events, Duration::from_millis(2500)).await;
    assert!(
        before.iter().all(|s| s.0 == 0) && before.iter().map(|s| s.1).sum::<u64>() > 20,
        "with no server, every launch is refused for insufficient capacity: {before:?}"
    );
    support::start_servers(&shutdown, manager, 10, HumanDuration::secs(1));
    let after = told(&events, Duration::from_secs(3)).await;
    let last = after.last().copied().unwrap_or_default();
    assert!(
        last.0 > 10 && last.1 == 0 && last.2 == 0,
        "once servers hold leases, launches are placed: {after:?}"
    );
}

//! What the lease manager's tests share: the state service its checks read (the key-value
//! service and a lab DNS server naming it), and the manager's config over it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use outage_lab_dns::testing;
use outage_lab_dynamodb_events::EventSink;
use outage_lab_kv as kv;
use outage_lab_lease_manager::manager::Config;
use outage_lab_lease_manager::roles::{self, ManagerConfig, StateService};
use outage_lab_lease_manager::servers;
use outage_lab_proto::HumanDuration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The service's name in the lab DNS.
pub(crate) const ENDPOINT: &str = "kv.lab.internal.";

/// The state service on `ip`, started as its roles, and a manager's config checking through it:
/// 4 workers at 20 ms a renewal (200 a second), leases of 4 s. Also the DNS server's admin API,
/// where a test empties the name.
pub(crate) async fn state_service(
    shutdown: &CancellationToken,
    ip: Ipv4Addr,
    admission_control: Option<usize>,
    recovery_runbook: Option<u32>,
) -> (ManagerConfig, SocketAddr) {
    let http = TcpListener::bind((ip, 0)).await.expect("service");
    let port = http.local_addr().expect("addr").port();
    let listeners = kv::roles::Listeners { http };
    tokio::spawn(kv::roles::service(
        listeners,
        shutdown.clone(),
        EventSink::discard(),
    ));
    let dns = outage_lab_dns::Config {
        records: BTreeMap::from([(ENDPOINT.to_owned(), vec![ip])]),
        ttl: HumanDuration::secs(1),
        admin_token: None,
        counted: None,
    };
    let dns = testing::serve(dns, shutdown).await;
    let config = ManagerConfig {
        manager: Config {
            workers: 4,
            work: HumanDuration::millis(20),
            lease_ttl: HumanDuration::secs(4),
            connection_max_age: HumanDuration::secs(1),
            admission_control,
            ledger: None,
            recovery_runbook,
        },
        state: StateService {
            dns_server: dns.dns,
            endpoint: ENDPOINT.to_owned(),
            port,
            timeout: HumanDuration::millis(500),
        },
    };
    (config, dns.admin)
}

/// Starts `count` servers renewing through `manager` every `renew_every`, each waiting 300 ms
/// for an answer and asking again 50 ms after a failure.
pub(crate) fn start_servers(
    shutdown: &CancellationToken,
    manager: SocketAddr,
    count: usize,
    renew_every: HumanDuration,
) {
    let fleet = servers::Config {
        count,
        manager,
        renew_every,
        budget: HumanDuration::millis(300),
        retry_after: HumanDuration::millis(50),
    };
    let servers = roles::servers(fleet, shutdown.clone(), EventSink::discard());
    tokio::spawn(servers);
}

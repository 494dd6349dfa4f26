//! Running the fleet on launcher hosts (`outage-lab run --hosts dns:PORT|DIR`), as in the
//! compose and Swarm deployments: every role process is started by the `outage-lab host` of its
//! container instead of being forked here.
//!
//! The hosts are found ([`Hosts`]) through the engine's DNS, each launcher telling its service
//! and address itself (`GET /identity`), or in a state directory they all mount (see
//! `outage_lab_host::register`). Before the run starts, the harness waits for one host of each
//! fixed service and for one `storage` host per storage server, checks each answers, and moves
//! the address plan onto them: DNS servers,
//! collectors, watchdog and control on their service's container, storage server `i` (its
//! storage process and its agent) on the `i`-th storage container.
//!
//! For an agent that resolves through the container's resolver (an external agent), each DNS
//! server needs an address of its own and each storage container the right one in its `dns:`.
//! So a DNS server named `dns-c` runs on a host of service `dns-c` when one registered (else on
//! the `dns` host), and the storage servers behind it on hosts of service `storage-dns-c` when
//! any registered (else on `storage` hosts).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use outage_lab_host::Registration;

use crate::names::{Generation, ProcessName};
use crate::plan::Plan;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::supervisor::launcher::{Hosts, Launchers, auth_headers};

/// The services a compose deployment runs one launcher each for.
pub const FIXED_SERVICES: [&str; 5] = [
    "dns",
    "collector-old",
    "collector-new",
    "watchdog",
    "control",
];
/// The scaled service: one container per storage server.
pub const STORAGE_SERVICE: &str = "storage";

/// Why the launcher hosts cannot be used: not every process of the plan has one (the run fails
/// to start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// What the plan needs and the live hosts lack.
    #[error("{}", .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Missing {
        /// Each lack, fixed services first.
        missing: Vec<MissingHost>,
    },
}

/// One thing the plan needs that the live hosts lack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingHost {
    /// No host of a fixed service, or of a DNS server's own service.
    Service {
        /// The service.
        service: String,
    },
    /// Fewer storage hosts of a service than servers behind it.
    Storage {
        /// The service (`storage`, or `storage-DNS` for the servers behind a DNS server).
        service: String,
        /// Its live hosts.
        have: usize,
        /// The servers it is to run.
        needed: usize,
        /// The plan's servers, all services together.
        servers: usize,
    },
}

impl std::fmt::Display for MissingHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Service { service } => write!(f, "no `{service}` host"),
            Self::Storage {
                service,
                have,
                needed,
                servers,
            } => {
                write!(
                    f,
                    "{have} of {needed} `{service}` hosts (scale the {service} service to {needed}"
                )?;
                if service == STORAGE_SERVICE {
                    write!(f, ": SERVERS={servers}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Where each process of a 2012 run is started, and how to talk to the launchers.
pub type Remote = Launchers<ProcessName>;

/// Waits up to `timeout` for the hosts a run of `plan` needs, then moves `plan`'s addresses onto
/// them. Says which services are missing when time runs out. `token_file` holds the admin token
/// when the hosts are found by DNS (else it is the state directory's).
pub async fn connect(
    hosts: &Hosts,
    token_file: Option<&Path>,
    plan: &mut Plan,
    timeout: Duration,
) -> Result<Remote, HarnessError> {
    let token = token(hosts, token_file)?;
    // A machine lost without a word (powered off, cut off) closes no connection: the kernel's
    // keepalive probes find out, and the spawn streams to it end as lost within seconds.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Duration::from_secs(2))
        .tcp_keepalive_interval(Duration::from_secs(1))
        .tcp_keepalive_retries(3)
        .default_headers(auth_headers(&token)?)
        .build()
        .map_err(|e| HarnessError::Start(format!("HTTP client: {e}")))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut healthy: BTreeMap<SocketAddr, bool> = BTreeMap::new();
    loop {
        let registered = find(hosts, &client).await?;
        for reg in &registered {
            if !healthy.get(&reg.addr).copied().unwrap_or(false) {
                let ok = answers(&client, reg.addr).await;
                healthy.insert(reg.addr, ok);
            }
        }
        let live: Vec<&Registration> = registered
            .iter()
            .filter(|r| healthy.get(&r.addr).copied().unwrap_or(false))
            .collect();
        match assign(&live, plan) {
            Ok(assignment) => {
                let by_process = apply(plan, &assignment);
                return Ok(Launchers::new(by_process, token, client));
            }
            Err(missing) if tokio::time::Instant::now() >= deadline => {
                return Err(HarnessError::Start(format!(
                    "the launcher hosts in {hosts} are not all up after {timeout:?}: {missing}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The admin token every launcher shares.
fn token(hosts: &Hosts, token_file: Option<&Path>) -> Result<String, HarnessError> {
    match (hosts, token_file) {
        (_, Some(file)) => outage_lab_host::read_token_file(file)
            .map_err(|e| HarnessError::io(format!("read the admin token in {}", file.display()), e)),
        (Hosts::Dir(state), None) => outage_lab_host::load_or_create_token(state)
            .map_err(|e| HarnessError::io(format!("read the admin token in {}", state.display()), e)),
        (Hosts::Dns { .. }, None) => std::env::var(crate::roles::ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                HarnessError::Start(format!(
                    "launchers found by DNS need their admin token: pass --token-file (a Docker secret) or set {}",
                    crate::roles::ADMIN_TOKEN_ENV
                ))
            }),
    }
}

/// The launchers there are now, as each says it is.
async fn find(hosts: &Hosts, client: &reqwest::Client) -> Result<Vec<Registration>, HarnessError> {
    match hosts {
        Hosts::Dir(state) => outage_lab_host::registrations(state)
            .map_err(|e| HarnessError::io(format!("read the hosts in {}", state.display()), e)),
        Hosts::Dns { port } => Ok(by_dns(client, *port, &dns_services()).await),
    }
}

/// The launcher services looked up by DNS: the fixed ones and `storage`. A name the engine does
/// not know is forwarded to the machine's own resolvers, so no name is asked for on the chance
/// that it exists; the per-DNS-server services (`dns-c`, `storage-dns-c`) are found only in a
/// state directory.
fn dns_services() -> Vec<String> {
    (FIXED_SERVICES.iter().chain([&STORAGE_SERVICE]))
        .map(|s| s.to_string())
        .collect()
}

/// Resolves each service's launchers (`tasks.<service>`, else `<service>`) and asks each who
/// it is. A name that does not resolve is a service that is not deployed (or not yet).
async fn by_dns(client: &reqwest::Client, port: u16, services: &[String]) -> Vec<Registration> {
    let mut found = Vec::new();
    for service in services {
        let mut addrs = Vec::new();
        for name in [format!("tasks.{service}"), service.clone()] {
            if let Ok(resolved) = tokio::net::lookup_host((name.as_str(), port)).await {
                addrs.extend(resolved.filter(|a| a.is_ipv4()));
            }
            if !addrs.is_empty() {
                break;
            }
        }
        addrs.sort();
        addrs.dedup();
        for addr in addrs {
            match identity(client, addr).await {
                Ok(reg) => found.push(reg),
                Err(e) => tracing::debug!(%addr, %service, "no launcher identity yet: {e}"),
            }
        }
    }
    found.sort_by(|a, b| (&a.service, &a.host).cmp(&(&b.service, &b.host)));
    found.dedup();
    found
}

async fn identity(client: &reqwest::Client, addr: SocketAddr) -> reqwest::Result<Registration> {
    let url = format!("http://{addr}/identity");
    let response = client
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await?;
    response.error_for_status()?.json().await
}

async fn answers(client: &reqwest::Client, addr: SocketAddr) -> bool {
    let url = format!("http://{addr}/health");
    matches!(
        client.get(&url).timeout(Duration::from_secs(2)).send().await,
        Ok(r) if r.status().is_success()
    )
}

/// The hosts chosen for a run: one per fixed service and per DNS server that has its own
/// service, one storage host per storage server, in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    fixed: BTreeMap<String, SocketAddr>,
    storage: Vec<SocketAddr>,
}

/// The service whose hosts run the storage servers behind DNS server `dns`.
fn storage_service(dns: &str) -> String {
    format!("{STORAGE_SERVICE}-{dns}")
}

/// Picks the hosts, or says what is missing. Several hosts of a fixed service, or more storage
/// hosts than servers, are fine: the first ones by host name are used.
fn assign(live: &[&Registration], plan: &Plan) -> Result<Assignment, RemoteError> {
    let mut fixed = BTreeMap::new();
    let mut missing = Vec::new();
    let own_dns = (plan.dns.iter()).filter(|d| live.iter().any(|r| r.service == d.name));
    let services = FIXED_SERVICES.iter().map(|s| s.to_string());
    for service in services.chain(own_dns.map(|d| d.name.clone())) {
        match live.iter().find(|r| r.service == service) {
            Some(r) => {
                fixed.insert(service, r.addr);
            }
            None => missing.push(MissingHost::Service { service }),
        }
    }
    // Storage hosts by service, each list used in order.
    let mut pools: BTreeMap<String, std::vec::IntoIter<SocketAddr>> = BTreeMap::new();
    let mut wanted: BTreeMap<String, usize> = BTreeMap::new();
    let mut storage = Vec::new();
    for server in &plan.servers {
        let own = storage_service(&server.dns_server);
        let service = if live.iter().any(|r| r.service == own) {
            own
        } else {
            STORAGE_SERVICE.to_owned()
        };
        *wanted.entry(service.clone()).or_default() += 1;
        let pool = pools.entry(service.clone()).or_insert_with(|| {
            let hosts: Vec<SocketAddr> = (live.iter())
                .filter(|r| r.service == service)
                .map(|r| r.addr)
                .collect();
            hosts.into_iter()
        });
        if let Some(host) = pool.next() {
            storage.push(host);
        }
    }
    for (service, needed) in &wanted {
        let have = live.iter().filter(|r| &r.service == service).count();
        if have < *needed {
            missing.push(MissingHost::Storage {
                service: service.clone(),
                have,
                needed: *needed,
                servers: plan.servers.len(),
            });
        }
    }
    if missing.is_empty() {
        Ok(Assignment { fixed, storage })
    } else {
        Err(RemoteError::Missing { missing })
    }
}

/// Moves the plan onto the hosts and says which host runs which process.
fn apply(plan: &mut Plan, a: &Assignment) -> BTreeMap<ProcessName, SocketAddr> {
    let ip = |addr: SocketAddr| match addr.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let mut by_process = BTreeMap::new();
    for d in &mut plan.dns {
        let host = (a.fixed.get(&d.name).copied()).unwrap_or(a.fixed["dns"]);
        d.ip = ip(host);
        by_process.insert(ProcessName::Dns(d.name.clone()), host);
    }
    for (process, slot) in [
        (
            ProcessName::Collector(Generation::Old),
            &mut plan.collector_old,
        ),
        (
            ProcessName::Collector(Generation::New),
            &mut plan.collector_new,
        ),
        (ProcessName::Watchdog, &mut plan.watchdog),
        (ProcessName::Control, &mut plan.control),
    ] {
        // Each fixed service's launcher is named like the process it runs.
        let host = a.fixed[process.to_string().as_str()];
        *slot = ip(host);
        by_process.insert(process, host);
    }
    for (server, &host) in plan.servers.iter_mut().zip(&a.storage) {
        server.ip = ip(host);
        by_process.insert(ProcessName::Storage(server.id.clone()), host);
        by_process.insert(ProcessName::Agent(server.id.clone()), host);
    }
    by_process
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn reg(service: &str, host: &str, addr: &str) -> Registration {
        Registration {
            service: service.into(),
            host: host.into(),
            addr: addr.parse().expect("addr"),
        }
    }

    fn fleet() -> Vec<Registration> {
        vec![
            reg("collector-new", "c2", "10.0.0.3:7070"),
            reg("collector-old", "c1", "10.0.0.2:7070"),
            reg("control", "ct", "10.0.0.5:7070"),
            reg("dns", "d", "10.0.0.1:7070"),
            reg("storage", "s1", "10.0.0.11:7070"),
            reg("storage", "s2", "10.0.0.12:7070"),
            reg("storage", "s3", "10.0.0.13:7070"),
            reg("watchdog", "w", "10.0.0.4:7070"),
        ]
    }

    #[test]
    fn each_storage_server_gets_its_own_container_and_the_rest_their_service() {
        let regs = fleet();
        let live: Vec<&Registration> = regs.iter().collect();
        let dns = vec!["dns-a".to_owned(), "dns-b".to_owned()];
        let mut plan = Plan::new(40, 1, 2, &dns, &BTreeSet::from(["dns-b".to_owned()]));
        let a = assign(&live, &plan).expect("enough hosts");
        let by_process = apply(&mut plan, &a);
        assert_eq!(plan.dns[1].ip.to_string(), "10.0.0.1");
        assert_eq!(plan.collector_old.to_string(), "10.0.0.2");
        assert_eq!(plan.collector_new.to_string(), "10.0.0.3");
        let ips: Vec<String> = plan.servers.iter().map(|s| s.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.11", "10.0.0.12"]);
        let id = &plan.servers[1].id;
        assert_eq!(
            by_process[&ProcessName::Agent(id.clone())],
            by_process[&ProcessName::Storage(id.clone())]
        );
        let dns_b = ProcessName::Dns("dns-b".into());
        assert_eq!(by_process[&dns_b].to_string(), "10.0.0.1:7070");
    }

    #[test]
    fn missing_hosts_are_named_with_how_to_fix_them() {
        let regs = fleet();
        let live: Vec<&Registration> = regs.iter().filter(|r| r.service != "control").collect();
        let dns = vec!["dns-a".to_owned()];
        let plan = Plan::new(40, 1, 5, &dns, &BTreeSet::new());
        let err = assign(&live, &plan).expect_err("not enough").to_string();
        assert!(err.contains("no `control` host"), "{err}");
        assert!(err.contains("3 of 5 `storage` hosts"), "{err}");
        assert!(err.contains("SERVERS=5"), "{err}");
    }

    #[test]
    fn a_dns_server_with_a_service_of_its_own_gets_it_and_so_do_the_servers_behind_it() {
        let mut regs = fleet();
        regs.push(reg("dns-b", "db", "10.0.0.9:7070"));
        regs.push(reg("storage-dns-b", "sb1", "10.0.0.21:7070"));
        let live: Vec<&Registration> = regs.iter().collect();
        let dns = vec!["dns-a".to_owned(), "dns-b".to_owned()];
        let mut plan = Plan::new(40, 1, 3, &dns, &BTreeSet::from(["dns-b".to_owned()]));
        let a = assign(&live, &plan).expect("enough hosts");
        apply(&mut plan, &a);
        assert_eq!(
            plan.dns[0].ip.to_string(),
            "10.0.0.1",
            "dns-a: the shared dns host"
        );
        assert_eq!(plan.dns[1].ip.to_string(), "10.0.0.9", "dns-b: its own");
        for server in &plan.servers {
            let behind_b = server.dns_server == "dns-b";
            assert_eq!(server.ip.to_string() == "10.0.0.21", behind_b, "{server:?}");
        }
        let stale = plan.servers.iter().filter(|s| s.stale).count();
        assert_eq!(stale, 1, "one of three servers behind dns-b");
    }
}

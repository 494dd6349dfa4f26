//! The lab of a 2025 run as processes: the DNS servers, the plan store, the service's instances
//! (one per load-balancer address), the planner, the enactors, and once the endpoint answers
//! everywhere, the clients, then the lease manager and its servers if the scenario has them. Each is this program's hidden role command, with its config in
//! `<run>/config/<name>.json`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outage_lab_dns_automation::{enactor, planner};
use outage_lab_dynamodb_events::ClientKind;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::supervisor::{Started, Supervisor};
use outage_lab_lease_manager::launches as lease_launches;
use outage_lab_lease_manager::manager as lease_manager;
use outage_lab_lease_manager::roles as lease_roles;
use outage_lab_lease_manager::servers as lease_servers;

use crate::names::ProcessName;
use crate::scenario::{Launches, LeaseServers, Scenario};

/// How long a process may take to tell it is ready.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// How long the automation may take to give the endpoint its first addresses everywhere.
const FIRST_PLAN_WITHIN: Duration = Duration::from_secs(20);

/// Other services' endpoints, named after AWS services whose names sort after `dynamodb` (the
/// enactors apply endpoints in name order).
const OTHER_SERVICES: &[&str] = &[
    "ec2",
    "ecs",
    "elasticache",
    "elb",
    "events",
    "firehose",
    "glue",
    "iam",
    "kinesis",
    "kms",
    "lambda",
    "logs",
    "monitoring",
    "rds",
    "redshift",
    "route53",
    "s3",
    "sns",
    "sqs",
    "ssm",
    "states",
    "sts",
    "swf",
];

/// One lab DNS server: its name, where it answers DNS and where its admin API is.
#[derive(Debug, Clone)]
pub(crate) struct DnsServer {
    pub name: String,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
}

/// The running lab, as steps and the probe reach it.
pub(crate) struct Fleet {
    pub sup: Arc<Supervisor<ProcessName>>,
    pub http: reqwest::Client,
    pub dns: Vec<DnsServer>,
    pub store: SocketAddr,
    /// The planner's admin API, then each enactor's, by name.
    pub controls: BTreeMap<String, SocketAddr>,
    /// The lease manager's API, if the scenario has one.
    pub lease_manager: Option<SocketAddr>,
    config_dir: PathBuf,
}

impl Fleet {
    /// Starts every process, in the order each needs the others; returns once every client runs.
    pub(crate) async fn start(
        scenario: &Scenario,
        seed: u64,
        run_dir: &Path,
        sup: Arc<Supervisor<ProcessName>>,
    ) -> Result<Fleet, HarnessError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HarnessError::Start(format!("HTTP client: {e}")))?;
        let mut fleet = Fleet {
            sup,
            http,
            dns: Vec::new(),
            store: SocketAddr::from(([127, 0, 0, 1], 0)),
            controls: BTreeMap::new(),
            lease_manager: None,
            config_dir: run_dir.join("config"),
        };
        fleet.start_dns(scenario).await?;
        let store = fleet.spawn(ProcessName::PlanStore, &[], loopback()).await?;
        fleet.store = addr(&store, "http", "plan-store")?;
        let lbs = fleet.start_service(scenario).await?;
        fleet
            .start_automation(scenario, seed, lbs.ip_addrs())
            .await?;
        fleet
            .wait_for_first_plan(&scenario.service.endpoint)
            .await?;
        fleet.start_clients(scenario, lbs.port).await?;
        fleet.start_leases(scenario, lbs.port).await?;
        Ok(fleet)
    }

    async fn start_dns(&mut self, scenario: &Scenario) -> Result<(), HarnessError> {
        for n in 0..scenario.dns.servers {
            let name = ProcessName::Dns(n);
            let config = outage_lab_dns::Config {
                ttl: scenario.dns.ttl,
                counted: Some(scenario.service.endpoint.clone()),
                ..outage_lab_dns::Config::default()
            };
            let file = self.write_config(&name, &config)?;
            let any = "127.0.0.1:0";
            let args = args(&["dns", "--config", &file, "--listen", any, "--admin", any]);
            let started = self.spawn_args(&name, &args).await?;
            self.dns.push(DnsServer {
                name: name.to_string(),
                dns: addr(&started, "dns", &name.to_string())?,
                admin: addr(&started, "admin", &name.to_string())?,
            });
        }
        Ok(())
    }

    /// The service's instances, each on its own load-balancer address and the same port.
    async fn start_service(&mut self, scenario: &Scenario) -> Result<Balancers, HarnessError> {
        let octet = run_octet();
        let mut lbs = Balancers {
            addrs: Vec::new(),
            port: 0,
        };
        for n in 0..scenario.service.instances {
            let ip = Ipv4Addr::new(127, 25, octet, u8::try_from(n + 1).unwrap_or(1));
            let listen = SocketAddr::from((ip, lbs.port));
            let started = self.spawn(ProcessName::Kv(n), &[], listen).await?;
            let served = addr(&started, "http", &ProcessName::Kv(n).to_string())?;
            lbs.port = served.port();
            lbs.addrs.push(served);
        }
        Ok(lbs)
    }

    async fn start_automation(
        &mut self,
        scenario: &Scenario,
        seed: u64,
        lbs: Vec<Ipv4Addr>,
    ) -> Result<(), HarnessError> {
        let auto = &scenario.automation;
        let mut endpoints = BTreeMap::from([(scenario.service.endpoint.clone(), lbs)]);
        let octet = run_octet();
        for n in 0..auto.other_endpoints {
            let lbs = (1..=3).map(|k| Ipv4Addr::new(127, 26, octet, (n * 3 + k) as u8));
            endpoints.insert(other_endpoint(n), lbs.collect());
        }
        let planner = planner::Config {
            interval: auto.planner_interval,
            endpoints,
            seed,
        };
        self.start_controlled(ProcessName::Planner, &planner)
            .await?;
        let dns_admins: Vec<SocketAddr> = self.dns.iter().map(|d| d.admin).collect();
        for n in 0..auto.enactors {
            let config = enactor::Config {
                name: ProcessName::Enactor(n).to_string(),
                poll: auto.poll,
                settle: auto.settle,
                keep_generations: auto.keep_generations,
                dns_admins: dns_admins.clone(),
                fixes: scenario.fixes.automation(),
                seed: seed.wrapping_add(1 + n as u64),
            };
            self.start_controlled(ProcessName::Enactor(n), &config)
                .await?;
        }
        Ok(())
    }

    /// The planner or an enactor: its config, the store, and its admin API on loopback.
    async fn start_controlled(
        &mut self,
        name: ProcessName,
        config: &impl serde::Serialize,
    ) -> Result<(), HarnessError> {
        let file = self.write_config(&name, config)?;
        let store = self.store.to_string();
        let extra = ["--config", file.as_str(), "--store", store.as_str()];
        let started = self.spawn(name.clone(), &extra, loopback()).await?;
        let control = addr(&started, "http", &name.to_string())?;
        self.controls.insert(name.to_string(), control);
        Ok(())
    }

    /// Waits until every DNS server answers the endpoint with an address.
    async fn wait_for_first_plan(&self, endpoint: &str) -> Result<(), HarnessError> {
        let began = Instant::now();
        loop {
            let mut answered = 0;
            for server in &self.dns {
                let answer =
                    outage_lab_dns::client::query_a(server.dns, endpoint, Duration::from_secs(1));
                if answer.await.is_ok_and(|addrs| !addrs.is_empty()) {
                    answered += 1;
                }
            }
            if answered == self.dns.len() {
                return Ok(());
            }
            if began.elapsed() > FIRST_PLAN_WITHIN {
                return Err(HarnessError::Start(format!(
                    "the automation gave {endpoint} no address on {} of {} DNS servers within {FIRST_PLAN_WITHIN:?}; see logs/planner.log and logs/enactor-*.log",
                    self.dns.len() - answered,
                    self.dns.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_clients(&mut self, scenario: &Scenario, port: u16) -> Result<(), HarnessError> {
        let c = &scenario.clients;
        let kinds = (0..c.customers)
            .map(|n| (ClientKind::Customer, n))
            .chain((0..c.dependents).map(|n| (ClientKind::Dependent, n)));
        for (i, (kind, n)) in kinds.enumerate() {
            let name = ProcessName::Client(kind, n);
            let config = outage_lab_kv::client::Config {
                name: name.to_string(),
                kind,
                endpoint: scenario.service.endpoint.clone(),
                port,
                dns_server: self.dns[i % self.dns.len()].dns,
                rate: c.rate,
                timeout: c.timeout,
                connection_max_age: c.connection_max_age,
                serve_stale: scenario.fixes.serve_stale.is_some(),
            };
            let file = self.write_config(&name, &config)?;
            self.spawn_args(&name, &args(&["kv-client", "--config", &file]))
                .await?;
        }
        Ok(())
    }

    /// The lease manager, checking state through the first DNS server, and its servers.
    async fn start_leases(&mut self, scenario: &Scenario, port: u16) -> Result<(), HarnessError> {
        let Some(leases) = &scenario.leases else {
            return Ok(());
        };
        let m = &leases.manager;
        let config = lease_roles::ManagerConfig {
            manager: lease_manager::Config {
                workers: m.workers,
                work: m.work,
                lease_ttl: m.lease_ttl,
                connection_max_age: m.connection_max_age,
                admission_control: scenario.fixes.admission_control.map(|a| a.capacity),
                ledger: Some(self.config_dir.with_file_name("lease-ledger")),
                recovery_runbook: scenario.fixes.recovery_runbook.map(|r| r.per_second),
            },
            state: lease_roles::StateService {
                dns_server: self.dns[0].dns,
                endpoint: scenario.service.endpoint.clone(),
                port,
                timeout: m.check_timeout,
            },
        };
        let name = ProcessName::LeaseManager;
        let file = self.write_config(&name, &config)?;
        let started = self.spawn(name, &["--config", &file], loopback()).await?;
        let manager = addr(&started, "http", "lease-manager")?;
        self.lease_manager = Some(manager);
        let s = &leases.servers;
        let servers = lease_servers::Config {
            count: s.count,
            manager,
            renew_every: s.renew_every,
            budget: s.budget,
            retry_after: s.retry_after,
        };
        let name = ProcessName::LeaseServers;
        let file = self.write_config(&name, &servers)?;
        self.spawn_args(&name, &args(&["lease-servers", "--config", &file]))
            .await?;
        match &leases.launches {
            Some(launches) => self.start_launchers(launches, manager, s).await,
            None => Ok(()),
        }
    }

    /// The customers launching instances through the lease manager at `manager`, each waiting
    /// as long as a server does for an answer, from the servers' first round of renewals on.
    async fn start_launchers(
        &mut self,
        launches: &Launches,
        manager: SocketAddr,
        servers: &LeaseServers,
    ) -> Result<(), HarnessError> {
        let config = lease_launches::Config {
            customers: launches.customers,
            manager,
            every: launches.every,
            timeout: servers.budget,
            start_after: servers.renew_every,
        };
        let name = ProcessName::Launchers;
        let file = self.write_config(&name, &config)?;
        self.spawn_args(&name, &args(&["launchers", "--config", &file]))
            .await?;
        Ok(())
    }

    /// Kills the lease manager (its queue dies with it) and starts it again where it served,
    /// with the config it had; its address.
    pub(crate) async fn restart_lease_manager(&self) -> Result<SocketAddr, HarnessError> {
        let name = ProcessName::LeaseManager;
        let Some(at) = self.lease_manager else {
            return Err(HarnessError::Start("this run has no lease manager".into()));
        };
        self.sup
            .stop_many(std::slice::from_ref(&name), Duration::ZERO)
            .await;
        let file = self
            .config_dir
            .join(format!("{name}.json"))
            .display()
            .to_string();
        // The killed process's port is free once the kernel has closed its socket: at once,
        // as a rule; a few tries cover a slow close.
        let mut tries = 0;
        loop {
            match self.spawn(name.clone(), &["--config", &file], at).await {
                Ok(_) => return Ok(at),
                Err(e) if tries >= 4 => return Err(e),
                Err(_) => tries += 1,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts `name` (`<role> <extra> --listen <listen>`) and waits until it is ready.
    async fn spawn(
        &self,
        name: ProcessName,
        extra: &[&str],
        listen: SocketAddr,
    ) -> Result<Started, HarnessError> {
        let mut all = vec![name.role().to_owned()];
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        all.extend(["--listen".to_owned(), listen.to_string()]);
        self.spawn_args(&name, &all).await
    }

    async fn spawn_args(
        &self,
        name: &ProcessName,
        args: &[String],
    ) -> Result<Started, HarnessError> {
        self.sup.spawn(name, args).await?.ready(READY_WITHIN).await
    }

    fn write_config(
        &self,
        name: &ProcessName,
        config: &impl serde::Serialize,
    ) -> Result<String, HarnessError> {
        let path = self.config_dir.join(format!("{name}.json"));
        outage_lab_engine::run_dir::write_json(&path, config)?;
        Ok(path.display().to_string())
    }

    /// Every DNS server's admin API.
    pub(crate) fn dns_admins(&self) -> Vec<SocketAddr> {
        self.dns.iter().map(|d| d.admin).collect()
    }
}

/// The service's load balancers: their addresses and the one port they share.
struct Balancers {
    addrs: Vec<SocketAddr>,
    port: u16,
}

impl Balancers {
    fn ip_addrs(&self) -> Vec<Ipv4Addr> {
        (self.addrs.iter())
            .filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(*v4.ip()),
                SocketAddr::V6(_) => None,
            })
            .collect()
    }
}

/// The `n`th other service's endpoint.
fn other_endpoint(n: usize) -> String {
    match OTHER_SERVICES.get(n) {
        Some(service) => format!("{service}.us-east-1.lab.internal."),
        None => format!("svc-{n:02}.us-east-1.lab.internal."),
    }
}

/// The third octet of this run's addresses (127.25.X.n for the service, 127.26.X.n for other
/// endpoints): from the process id, so that runs side by side do not share addresses. It
/// changes no behaviour, so it need not come from the seed.
fn run_octet() -> u8 {
    u8::try_from(std::process::id() % 250 + 1).unwrap_or(1)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

fn addr(started: &Started, purpose: &str, who: &str) -> Result<SocketAddr, HarnessError> {
    (started.addrs.get(purpose).copied()).ok_or_else(|| {
        HarnessError::Start(format!(
            "{who} told no `{purpose}` address when it was ready"
        ))
    })
}

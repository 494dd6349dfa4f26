//! The running fleet: every process of a run, what the harness learned of each from its
//! readiness line, and the few things one can do to them. It is the handle a timeline step or a
//! fix acts through ([`FleetHandle`]): start a collector, kill processes, restart agents, point a
//! DNS server's record, all through the supervisor and the roles' admin APIs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use outage_lab_ebs_events::wire::Target;
use outage_lab_ebs_events::{COLLECTOR_NAME, ProcessRole};
use outage_lab_proto::wire::DnsChange;

pub mod configs;
pub mod endpoints;
pub mod limiter;

use self::configs::role_args;
use self::endpoints::Endpoints;
use self::limiter::Limiter;
use crate::external_agent::{self, ExternalAgent};
use crate::fleet_handle::FleetHandle;
use crate::names::{Generation, ProcessName};
use crate::plan::{Plan, ServerPlan};
use crate::scenario::Scenario;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::supervisor::{Isolate, Pending, Program, Started, Supervisor};

/// How long a process may take to print its readiness line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Addresses learned from readiness lines.
#[derive(Debug, Default)]
struct Learned {
    /// Per DNS server: (DNS, admin API).
    dns: BTreeMap<String, (SocketAddr, SocketAddr)>,
    collector_port: u16,
    watchdog_admin: Option<SocketAddr>,
    agent_pids: BTreeMap<String, u32>,
    storage_pids: BTreeMap<String, u32>,
    storage_addrs: BTreeMap<String, SocketAddr>,
    control: Option<SocketAddr>,
}

/// The processes of one run and how to reach them.
#[derive(Debug)]
pub struct Fleet<'a> {
    /// The scenario being run.
    pub scenario: &'a Scenario,
    /// Where everything lives, and who is stale.
    pub plan: &'a Plan,
    /// The run's seed.
    pub seed: u64,
    /// Starts and stops the processes.
    pub sup: Supervisor<ProcessName>,
    /// For the roles' admin APIs (with the run's token on launcher hosts).
    pub http: reqwest::Client,
    run_dir: PathBuf,
    learned: Learned,
    /// Every URL of the run, for `endpoints.json`.
    pub listed: Endpoints,
    /// The agents' memory limit (the `agent_memory_limit` fix), when it is on.
    pub limiter: Option<Limiter>,
}

impl<'a> Fleet<'a> {
    /// A fleet of nothing yet.
    pub fn new(
        scenario: &'a Scenario,
        plan: &'a Plan,
        seed: u64,
        sup: Supervisor<ProcessName>,
        http: reqwest::Client,
        run_dir: PathBuf,
    ) -> Self {
        Self {
            scenario,
            plan,
            seed,
            sup,
            http,
            run_dir,
            learned: Learned::default(),
            listed: Endpoints::default(),
            limiter: None,
        }
    }

    /// Starts DNS servers, the old collector and the watchdog, then every agent and storage
    /// process at once, and waits for each to be ready; tells the watchdog what to watch.
    pub async fn start_servers(&mut self) -> Result<(), HarnessError> {
        self.start_dns().await?;
        let old = SocketAddr::new(self.plan.collector_old.into(), 0);
        let collector = self.start_collector(Generation::Old, old).await?;
        self.learned.collector_port = collector.port();
        self.start_watchdog().await?;
        self.start_agents_and_storage().await?;
        self.push_targets().await
    }

    async fn start_dns(&mut self) -> Result<(), HarnessError> {
        // Every DNS server answers the old collector at first.
        let mut pendings = Vec::new();
        for dns in &self.plan.dns {
            let config = outage_lab_dns::Config {
                records: BTreeMap::from([(
                    COLLECTOR_NAME.to_owned(),
                    vec![self.plan.collector_old],
                )]),
                ttl: self.scenario.dns.ttl,
                admin_token: None,
                // What each one answered for the collector is the evidence of what an agent the
                // lab did not write resolved (the `fault_took_effect` row).
                counted: Some(COLLECTOR_NAME.to_owned()),
            };
            let name = ProcessName::Dns(dns.name.clone());
            let file = self.write_config(&name, &config)?;
            let mut listen = vec![
                ("--listen", format!("{}:0", dns.ip)),
                ("--admin", format!("{}:0", dns.ip)),
            ];
            if self.scenario.agent.command.is_some() {
                // An external agent's resolver reads /etc/resolv.conf, which names no port.
                listen.push(("--also", format!("{}:{}", dns.ip, external_agent::DNS_PORT)));
            }
            let args = role_args("dns", &file, &listen);
            pendings.push((name.clone(), self.sup.spawn(&name, &args).await?));
        }
        for (name, pending) in pendings {
            let started = pending.ready(READY_TIMEOUT).await?;
            let udp = addr(&started, "dns", &name)?;
            let admin = addr(&started, "admin", &name)?;
            self.listed.learn(&name, &started);
            self.learned.dns.insert(name.to_string(), (udp, admin));
        }
        Ok(())
    }

    async fn start_watchdog(&mut self) -> Result<(), HarnessError> {
        let name = ProcessName::Watchdog;
        let file = self.write_config(&name, &configs::watchdog(self.scenario))?;
        let listen = [("--listen", format!("{}:0", self.plan.watchdog))];
        let args = role_args("watchdog", &file, &listen);
        let started = self.sup.start(&name, &args, READY_TIMEOUT).await?;
        self.learned.watchdog_admin = Some(addr(&started, "admin", &name)?);
        self.listed.learn(&name, &started);
        Ok(())
    }

    /// Agents first (storage needs their pids), all at once, then storage, then wait for all.
    async fn start_agents_and_storage(&mut self) -> Result<(), HarnessError> {
        let plan = self.plan;
        let mut pendings = Vec::new();
        for server in &plan.servers {
            let pending = self.spawn_agent(server).await?;
            pendings.push((ProcessName::Agent(server.id.clone()), pending));
        }
        for server in &plan.servers {
            let config = configs::storage(self.scenario, &server.id, self.pid_file(&server.id));
            let name = ProcessName::Storage(server.id.clone());
            let file = self.write_config(&name, &config)?;
            let args = role_args(
                "storage",
                &file,
                &[("--listen", format!("{}:0", server.ip))],
            );
            pendings.push((name.clone(), self.sup.spawn(&name, &args).await?));
        }
        let timeout = READY_TIMEOUT + Duration::from_millis(50 * plan.servers.len() as u64);
        for (name, pending) in pendings {
            let started = pending.ready(timeout).await?;
            self.listed.learn(&name, &started);
            match &name {
                ProcessName::Agent(id) => {
                    self.learned.agent_pids.insert(id.clone(), started.pid);
                }
                ProcessName::Storage(id) => {
                    let http = addr(&started, "http", &name)?;
                    self.learned.storage_addrs.insert(id.clone(), http);
                    self.learned.storage_pids.insert(id.clone(), started.pid);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts control, which places every volume on the storage servers before it is ready.
    /// Returns its HTTP address.
    pub async fn start_control(&mut self) -> Result<SocketAddr, HarnessError> {
        let servers = (self.plan.servers.iter())
            .filter_map(|s| {
                let addr = *self.learned.storage_addrs.get(&s.id)?;
                let id = s.id.clone();
                Some(outage_lab_control::ServerEntry { id, addr })
            })
            .collect();
        let config = configs::control(self.scenario, servers, self.seed);
        let name = ProcessName::Control;
        let file = self.write_config(&name, &config)?;
        let args = role_args(
            "control",
            &file,
            &[("--listen", format!("{}:0", self.plan.control))],
        );
        // Placement creates every replica before control is ready.
        let timeout = READY_TIMEOUT + Duration::from_millis(20 * self.plan.servers.len() as u64);
        let started = self.sup.start(&name, &args, timeout).await?;
        let control = addr(&started, "http", &name)?;
        self.listed.learn(&name, &started);
        self.learned.control = Some(control);
        Ok(control)
    }

    /// Control's HTTP address, once it is up.
    pub fn control(&self) -> Option<SocketAddr> {
        self.learned.control
    }

    async fn spawn_agent(&mut self, server: &ServerPlan) -> Result<Pending, HarnessError> {
        let (dns_addr, _) = (self.learned.dns.get(&server.dns_server).copied())
            .ok_or_else(|| HarnessError::Start(format!("no DNS server {}", server.dns_server)))?;
        let port = self.learned.collector_port;
        let name = ProcessName::Agent(server.id.clone());
        let rlimit = self.limiter.as_ref().and_then(Limiter::rlimit);
        let pending = if let Some(external) = self.scenario.agent.external() {
            self.spawn_external_agent(server, &external, rlimit).await?
        } else {
            let config = configs::agent(self.scenario, server, dns_addr, port);
            let file = self.write_config(&name, &config)?;
            // Metrics on the server's own address; a restarted agent takes its old port again.
            let metrics = (self.listed.metrics_addr(&name))
                .unwrap_or_else(|| SocketAddr::new(server.ip.into(), 0));
            let args = role_args("agent", &file, &[("--metrics", metrics.to_string())]);
            self.sup.spawn_limited(&name, &args, rlimit).await?
        };
        if let Some(limiter) = &self.limiter {
            // Before the agent has had time to grow: it leaks only once a fault makes it fail.
            limiter.attach(&name, pending.pid()).map_err(|e| {
                HarnessError::Start(format!(
                    "{name}: could not put it under its memory limit: {e}"
                ))
            })?;
        }
        if !self.sup.is_remote() {
            // On a launcher, the launcher writes it beside the storage server.
            let pid_file = self.pid_file(&server.id);
            std::fs::write(&pid_file, format!("{}\n", pending.pid()))
                .map_err(|e| HarnessError::io(format!("write {}", pid_file.display()), e))?;
        }
        Ok(pending)
    }

    /// Starts `external` as `server`'s agent: its working directory and files written from the
    /// templates, resolving through its DNS server on port 53.
    async fn spawn_external_agent(
        &self,
        server: &ServerPlan,
        external: &ExternalAgent,
        rlimit: Option<u64>,
    ) -> Result<Pending, HarnessError> {
        let dns = (self.plan.dns.iter().find(|d| d.name == server.dns_server))
            .ok_or_else(|| HarnessError::Start(format!("no DNS server {}", server.dns_server)))?;
        let root = self.run_dir.join("agents");
        let workdir = root.join(&server.id);
        let values = external_agent::Values {
            server: server.id.clone(),
            server_ip: server.ip,
            collector_port: self.learned.collector_port,
            dns_server: dns.ip,
            workdir: workdir.clone(),
            scenario_dir: self.scenario.dir.clone(),
        };
        let io = |what: String| move |e| HarnessError::io(what, e);
        let etc = root.join(format!("{}.etc", server.id));
        for dir in [&workdir, &etc] {
            std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        for (path, template) in &external.files {
            let file = workdir.join(path);
            if let Some(parent) = file.parent() {
                (std::fs::create_dir_all(parent))
                    .map_err(io(format!("create {}", parent.display())))?;
            }
            std::fs::write(&file, external_agent::render(template, &values))
                .map_err(io(format!("write {}", file.display())))?;
        }
        // Here, a mount namespace gives it its own resolv.conf; on a launcher host the
        // container's (compose's `dns:`) does.
        let isolation = if self.sup.is_remote() {
            None
        } else {
            let written = outage_lab_engine::supervisor::isolation::Isolation::write(&etc, dns.ip);
            Some(written.map_err(io(format!("write {}", etc.display())))?)
        };
        let argv: Vec<String> = (external.command.value.iter())
            .map(|t| external_agent::render(t, &values))
            .collect();
        let env: BTreeMap<String, String> = (external.env.iter())
            .map(|(k, t)| (k.clone(), external_agent::render(t, &values)))
            .collect();
        let program = Program {
            argv: &argv,
            env: &env,
            workdir: &workdir,
            isolation: isolation.as_ref().map(|i| i as &dyn Isolate),
            may_exit: external.may_exit,
        };
        let name = ProcessName::Agent(server.id.clone());
        self.sup.spawn_program(&name, &program, rlimit).await
    }

    /// Tells the watchdog the complete set of pids to watch.
    async fn push_targets(&mut self) -> Result<(), HarnessError> {
        let budget = self.scenario.fleet.memory_budget.value.bytes();
        let plan = self.plan;
        let stale = |id: &str| plan.servers.iter().any(|s| s.id == id && s.stale);
        // The cache-aware aggregate alarm asks each storage process for its cache size.
        let net_of_cache = self.scenario.fixes.cache_aware_aggregate_alarm.is_some();
        let addrs = &self.learned.storage_addrs;
        // An agent the lab did not write may fork: it is measured as its whole tree.
        let tree = self.scenario.agent.command.is_some();
        let sup = &self.sup;
        let target = |server: &String, role, pid: &u32| Target {
            reader: sup.memory_reader(&match role {
                ProcessRole::Agent => ProcessName::Agent(server.clone()),
                ProcessRole::Storage => ProcessName::Storage(server.clone()),
            }),
            tree: tree && role == ProcessRole::Agent,
            server: server.clone(),
            role,
            pid: *pid,
            budget_bytes: budget,
            stale: stale(server),
            cache_url: (role == ProcessRole::Storage && net_of_cache)
                .then(|| addrs.get(server).map(|a| format!("http://{a}/health")))
                .flatten(),
        };
        let agents =
            (self.learned.agent_pids.iter()).map(|(s, p)| target(s, ProcessRole::Agent, p));
        let storage =
            (self.learned.storage_pids.iter()).map(|(s, p)| target(s, ProcessRole::Storage, p));
        let targets: Vec<Target> = agents.chain(storage).collect();
        let Some(admin) = self.learned.watchdog_admin else {
            return Err(HarnessError::Start(
                "the watchdog has no admin address".into(),
            ));
        };
        let url = format!("http://{admin}/targets");
        match self.http.put(&url).json(&targets).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(HarnessError::Start(format!(
                "watchdog refused the targets: PUT {url} answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default().trim()
            ))),
            Err(e) => Err(HarnessError::Start(format!(
                "could not reach the watchdog at {url}: {e}"
            ))),
        }
    }

    /// Writes `endpoints.json` as it is now.
    pub fn write_endpoints(&self) -> Result<(), HarnessError> {
        let path = self.run_dir.join(endpoints::FILE);
        (self.listed.write(&self.run_dir))
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
    }

    fn write_config<T: serde::Serialize>(
        &self,
        name: &ProcessName,
        config: &T,
    ) -> Result<PathBuf, HarnessError> {
        let path = self.run_dir.join("config").join(format!("{name}.json"));
        outage_lab_engine::run_dir::write_json(&path, config)?;
        Ok(path)
    }

    /// Where `server`'s storage process finds its agent's pid: in the run directory, or on a
    /// launcher the file it keeps for the agent, named from the storage's own directory there.
    fn pid_file(&self, server: &str) -> PathBuf {
        if self.sup.is_remote() {
            let agent = ProcessName::Agent(server.to_owned());
            return PathBuf::from(format!("../{agent}.pid"));
        }
        (self.run_dir.join("pids")).join(format!("{server}.agent.pid"))
    }
}

impl<'a> FleetHandle<'a> for Fleet<'a> {
    fn plan(&self) -> &'a Plan {
        self.plan
    }

    fn api_throttle(&self) -> outage_lab_control::api::ThrottleConfig {
        self.scenario.api.throttle
    }

    fn dns_addr(&self, name: &str) -> Option<SocketAddr> {
        self.learned.dns.get(name).map(|(udp, _)| *udp)
    }

    fn limit_explains(&mut self, name: &ProcessName, status: &str) -> Option<String> {
        self.limiter.as_mut()?.explains(name, status)
    }

    fn collector_port(&self) -> u16 {
        self.learned.collector_port
    }

    async fn start_collector(
        &mut self,
        generation: Generation,
        listen: SocketAddr,
    ) -> Result<SocketAddr, HarnessError> {
        let name = ProcessName::Collector(generation);
        let config = outage_lab_collector::Config {
            name: name.to_string(),
            ..outage_lab_collector::Config::default()
        };
        let file = self.write_config(&name, &config)?;
        let args = role_args("collector", &file, &[("--listen", listen.to_string())]);
        let started = self.sup.start(&name, &args, READY_TIMEOUT).await?;
        self.listed.learn(&name, &started);
        addr(&started, "http", &name)
    }

    async fn kill(
        &mut self,
        names: &[ProcessName],
    ) -> Result<Vec<(ProcessName, u32)>, HarnessError> {
        let killed = self.sup.stop_many(names, Duration::ZERO).await;
        for name in names {
            self.listed.forget(name);
        }
        self.write_endpoints()?;
        Ok(killed)
    }

    async fn restart_agents(&mut self, servers: &[&ServerPlan]) -> Result<(), HarnessError> {
        let names: Vec<ProcessName> = (servers.iter())
            .map(|s| ProcessName::Agent(s.id.clone()))
            .collect();
        self.sup.stop_many(&names, STOP_GRACE).await;
        let mut pendings = Vec::new();
        for s in servers {
            pendings.push((s.id.clone(), self.spawn_agent(s).await?));
        }
        for (id, pending) in pendings {
            let started = pending.ready(READY_TIMEOUT).await?;
            self.learned.agent_pids.insert(id, started.pid);
        }
        self.push_targets().await
    }

    async fn change_dns(
        &self,
        dns_name: &str,
        change: &DnsChange,
        step: &str,
    ) -> Result<(), HarnessError> {
        let fault = |detail: String| HarnessError::Fault {
            action: step.to_owned(),
            detail,
        };
        let (_, admin) = (self.learned.dns.get(dns_name))
            .ok_or_else(|| fault(format!("no DNS server {dns_name}")))?;
        outage_lab_dns::client::change(&self.http, *admin, COLLECTOR_NAME, change)
            .await
            .map_err(|e| fault(e.to_string()))
    }

    async fn set_throttle(
        &self,
        config: outage_lab_control::api::ThrottleConfig,
    ) -> Result<outage_lab_control::api::ThrottleConfig, HarnessError> {
        let config = self.scenario.fixes.throttle(config);
        let fault = |detail: String| HarnessError::Fault {
            action: "throttle".to_owned(),
            detail,
        };
        let control = self
            .control()
            .ok_or_else(|| fault("control is not up".into()))?;
        let url = format!("http://{control}/admin/throttle");
        match self.http.put(&url).json(&config).send().await {
            Ok(r) if r.status().is_success() => {
                (r.json().await).map_err(|e| fault(format!("PUT {url}: {e}")))
            }
            Ok(r) => Err(fault(format!(
                "PUT {url} answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ))),
            Err(e) => Err(fault(format!("PUT {url} failed: {e}"))),
        }
    }
}

fn addr(started: &Started, key: &str, name: &ProcessName) -> Result<SocketAddr, HarnessError> {
    started.addrs.get(key).copied().ok_or_else(|| {
        HarnessError::Start(format!(
            "{name} announced no {key:?} address (it said {:?})",
            started.addrs
        ))
    })
}

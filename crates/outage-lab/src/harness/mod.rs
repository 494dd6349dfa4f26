//! The harness: `outage-lab run`. Plans a run, starts every process, drives the timeline, checks
//! the expectations, writes the run directory and stops everything it started.
//!
//! Order of a run:
//! 1. plan addresses and the DNS assignment, create the run directory;
//! 2. start the DNS servers, the old collector and the watchdog, then every agent and storage
//!    process at once, and wait for each readiness line;
//! 3. tell the watchdog which pids to watch, then run the timeline (faults and repairs at their
//!    times) while every event is folded into the journal and the run state;
//! 4. stop every process (always, whatever happened above), drain what they said last;
//! 5. check the expectations and write `report.json`.

pub mod checks;
pub mod endpoints;
pub mod ledger;
pub mod load;
pub mod remote;
pub mod report;
pub mod state;
pub mod supervisor;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outage_lab_proto::report::{ExpectationResult, Report, Verdict};
use outage_lab_proto::wire::{SetRecordMsg, Target};
use outage_lab_proto::{COLLECTOR_NAME, Event, HumanDuration, JournalEntry, ProcessRole};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::checks::{CheckInput, check_all};
use self::state::RunState;
use self::supervisor::{Inbound, Started, Supervisor};
use crate::containment::MemoryGuard;
use crate::plan::{Plan, ServerPlan, pick_octet};
use crate::scenario::{AgentSelection, Scenario, Step};

/// How long a process may take to print its readiness line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process may take to stop after SIGTERM before it gets SIGKILL.
/// How often the customer load's counters go to the journal.
const LOAD_STATS_INTERVAL: Duration = Duration::from_secs(1);
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long `run --hosts` waits for every launcher host to register and answer.
const HOSTS_TIMEOUT: Duration = Duration::from_secs(90);

/// A failure of the harness itself (exit code 3): a process would not start, a fault could not be
/// injected, the run directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file-system operation failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A process did not start or did not become ready.
    #[error("a process did not start: {0}")]
    Start(String),
    /// A fault or repair could not be applied.
    #[error("could not inject {action}: {detail}")]
    Fault {
        /// Timeline action.
        action: String,
        /// What went wrong.
        detail: String,
    },
}

impl HarnessError {
    fn io(what: String, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

/// Options of `outage-lab run` that override or complement the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Override of the scenario's seed.
    pub seed: Option<u64>,
    /// Most memory the run's agents and storage processes may hold; the run stops above it.
    pub memory_limit: u64,
    /// The run directory; default `runs/<scenario>-<UTC time>-seed<seed>`.
    pub out: Option<PathBuf>,
    /// The outage-lab binary to spawn for every role (normally `current_exe()`).
    pub exe: PathBuf,
    /// The scenario file's text, copied into the run directory.
    pub scenario_text: String,
    /// Serve the live view on this address during the run (loopback, unless on launcher hosts).
    pub serve: Option<SocketAddr>,
    /// Run the fleet on the launcher hosts registered in this state directory (compose).
    pub hosts: Option<PathBuf>,
}

/// How a run ended, when the harness itself did not fail.
#[derive(Debug)]
pub struct Outcome {
    /// Where everything was written.
    pub run_dir: PathBuf,
    /// The report (also in `report.json`).
    pub report: Report,
    /// Set when SIGINT or SIGTERM cut the run short.
    pub interrupted: Option<&'static str>,
}

/// Runs a scenario to the end. Every process it starts is stopped before it returns, on every
/// path; a harness killed outright takes them with it through the parent-death signal.
pub async fn run(scenario: Scenario, opts: RunOptions) -> Result<Outcome, HarnessError> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    let mut plan = Plan::new(
        pick_octet(),
        seed,
        scenario.servers(),
        &scenario.dns_names(),
        &scenario.stale_dns_names(),
    );
    let run_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&scenario.name, seed));
    // Absolute, so every child's command line names it in full: the ledger proves a process's
    // identity by it, and logs and configs stay findable whatever the working directory.
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let remote = match &opts.hosts {
        Some(state) => {
            say(&format!(
                "waiting for the launcher hosts registered in {}",
                state.display()
            ));
            Some(remote::connect(state, &mut plan, HOSTS_TIMEOUT).await?)
        }
        None => None,
    };
    prepare_run_dir(&run_dir, &opts.scenario_text, &plan)?;

    // The ledger lets a later run on this machine reap what a crashed one left; processes on
    // launcher hosts die with their launcher's connection instead.
    let ledger = if remote.is_none() {
        for line in ledger::reap_orphans() {
            say(&format!("reaped a process left behind: {line}"));
        }
        Some(ledger::Ledger::create(&run_dir).map_err(|e| {
            HarnessError::io(
                format!("create the ledger in {}", ledger::state_dir().display()),
                e,
            )
        })?)
    } else {
        None
    };

    let t0 = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let headers = match &remote {
        Some(remote) => remote::Remote::auth_headers(&remote.token)?,
        None => reqwest::header::HeaderMap::new(),
    };
    let sup = Supervisor::new(opts.exe.clone(), &run_dir, t0, tx, ledger, remote);
    let journal_path = run_dir.join("journal.jsonl");
    let journal = File::create(&journal_path)
        .map_err(|e| HarnessError::io(format!("create {}", journal_path.display()), e))?;
    let mut driver = Driver {
        sup,
        rx,
        journal: BufWriter::new(journal),
        state: RunState::with_servers(plan.servers.iter().map(|s| s.id.as_str())),
        scenario: &scenario,
        plan: &plan,
        run_dir: run_dir.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HarnessError::Start(format!("HTTP client: {e}")))?,
        endpoints: Endpoints::default(),
        next_status_ms: 0,
        last_flush: Instant::now(),
        guard: MemoryGuard::new(opts.memory_limit),
        memory_abort: None,
        seed,
        load: Arc::default(),
        load_stop: CancellationToken::new(),
        load_task: None,
        write_check: None,
        live: None,
    };
    if let Some(addr) = opts.serve {
        let live = live_view(addr, &scenario, &plan).await?;
        driver.endpoints.listed.add_live_view(&live.url);
        driver.live = Some(live);
    }
    driver.sup.emit(Event::RunStarted {
        scenario: scenario.name.clone(),
        seed,
        servers: plan.servers.len(),
    });
    say(&format!(
        "outage-lab: scenario {} ({}), seed {seed}\n{} storage servers behind {} DNS servers, {} stale; run directory {}",
        scenario.name,
        scenario.description,
        plan.servers.len(),
        plan.dns.len(),
        plan.stale_servers().count(),
        run_dir.display()
    ));

    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| HarnessError::io("listen for SIGINT".into(), e))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| HarnessError::io("listen for SIGTERM".into(), e))?;
    let mut interrupted = None;
    let driven = tokio::select! {
        r = driver.drive() => r,
        _ = sigint.recv() => { interrupted = Some("SIGINT"); Ok(()) }
        _ = sigterm.recv() => { interrupted = Some("SIGTERM"); Ok(()) }
    };
    let end_ms = driver.sup.now_ms();

    // Whatever happened, stop everything and hear the last words (final agent counters).
    say("stopping every process of the run");
    driver.sup.emit(Event::Phase {
        name: "stopping".into(),
        detail: "every process gets SIGTERM".into(),
    });
    driver.sup.stop_all(STOP_GRACE).await;
    driver.drain_until_closed(Duration::from_secs(5)).await;
    let leftovers = driver.sup.running();
    if leftovers.is_empty() {
        driver.sup.close_ledger();
    }
    driven?;

    let mut expectations = check_all(&CheckInput {
        scenario: &scenario,
        plan: &plan,
        state: &driver.state,
        end_ms,
        writes: driver.write_check.as_ref(),
    });
    if let Some(sig) = interrupted {
        expectations.insert(
            0,
            ExpectationResult {
                name: "run_completed".into(),
                passed: false,
                detail: format!("interrupted by {sig} at {end_ms}ms; the timeline did not finish"),
            },
        );
    }
    if let Some(reason) = &driver.memory_abort {
        expectations.insert(
            0,
            ExpectationResult {
                name: "memory_contained".into(),
                passed: false,
                detail: reason.clone(),
            },
        );
    }
    if !leftovers.is_empty() {
        expectations.push(ExpectationResult {
            name: "no_process_left".into(),
            passed: false,
            detail: format!("still running after stop: {leftovers:?}"),
        });
    }
    let verdict = if expectations.iter().all(|e| e.passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    for e in &expectations {
        driver.sup.emit(Event::Verdict {
            name: e.name.clone(),
            passed: e.passed,
            detail: e.detail.clone(),
        });
    }
    driver.sup.emit(Event::RunFinished {
        verdict: if verdict == Verdict::Pass {
            "pass"
        } else {
            "fail"
        }
        .into(),
    });
    driver.pump();
    driver
        .journal
        .flush()
        .map_err(|e| HarnessError::io("write journal.jsonl".into(), e))?;

    let (load_total, acknowledged_writes) = {
        let ledger = load::lock(&driver.load);
        (ledger.total(), ledger.acknowledged_writes)
    };
    let report = report::build(
        &scenario.name,
        seed,
        &plan,
        &driver.state,
        report::Outcome {
            verdict,
            wall: t0.elapsed(),
            expectations,
            load: load_total,
            acknowledged_writes,
            writes: driver.write_check.as_ref().and_then(|c| c.as_ref().ok()),
        },
    );
    let junit_path = run_dir.join("junit.xml");
    std::fs::write(&junit_path, report::junit(&report))
        .map_err(|e| HarnessError::io(format!("write {}", junit_path.display()), e))?;
    let report_path = run_dir.join("report.json");
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| HarnessError::io("encode report".into(), std::io::Error::other(e)))?;
    std::fs::write(&report_path, json + "\n")
        .map_err(|e| HarnessError::io(format!("write {}", report_path.display()), e))?;
    // The page people read, from the files just written (`outage-lab report` does the same).
    if let Err(e) = outage_lab_viz::write_report(&run_dir) {
        say(&format!("could not write report.html: {e}"));
    }
    if let Some(live) = driver.live.take() {
        live.close(Duration::from_millis(500)).await;
    }
    Ok(Outcome {
        run_dir,
        report,
        interrupted,
    })
}

/// Addresses learned from readiness lines.
#[derive(Debug, Default)]
struct Endpoints {
    dns: BTreeMap<String, (SocketAddr, SocketAddr)>,
    collector_port: u16,
    watchdog_admin: Option<SocketAddr>,
    agent_pids: BTreeMap<String, u32>,
    storage_pids: BTreeMap<String, u32>,
    storage_addrs: BTreeMap<String, SocketAddr>,
    control: Option<SocketAddr>,
    /// Every URL of the run, for `endpoints.json`.
    listed: endpoints::Endpoints,
}

struct Driver<'a> {
    sup: Supervisor,
    rx: mpsc::UnboundedReceiver<Inbound>,
    journal: BufWriter<File>,
    state: RunState,
    scenario: &'a Scenario,
    plan: &'a Plan,
    run_dir: PathBuf,
    http: reqwest::Client,
    endpoints: Endpoints,
    next_status_ms: u64,
    /// The journal is flushed at least this often, so `tail -f journal.jsonl` follows the run.
    last_flush: Instant,
    /// Trips when the real memory of the run's processes crosses the limit.
    guard: MemoryGuard,
    /// Set by the guard: why the run was stopped early.
    memory_abort: Option<String>,
    /// The run's seed (the scenario's, or `--seed`).
    seed: u64,
    /// The customer load's counters and acknowledged writes.
    load: Arc<Mutex<load::LoadLedger>>,
    /// Stops the customer load.
    load_stop: CancellationToken,
    /// The customer load, while it runs.
    load_task: Option<tokio::task::JoinHandle<()>>,
    /// Every acknowledged write read back at the end (after recovery).
    write_check: Option<Result<load::WriteCheck, String>>,
    /// The live view (`run --serve`), fed every journal entry.
    live: Option<outage_lab_viz::live::LiveView>,
}

impl Driver<'_> {
    /// Starts the fleet and runs the timeline to the end of the scenario's duration.
    async fn drive(&mut self) -> Result<(), HarnessError> {
        self.start_fleet().await?;
        let fleet_up = Instant::now();
        self.sup.emit(Event::Phase {
            name: "timeline".into(),
            detail: format!(
                "fleet up; the timeline runs for {}",
                self.scenario.duration.value
            ),
        });
        say(&format!(
            "fleet up: every agent reports to the collector; timeline starts ({})",
            self.scenario.duration.value
        ));
        self.pump();
        let status_every = 5_000;
        self.next_status_ms = self.sup.now_ms() + status_every;
        let mut load_stats = tokio::time::interval(LOAD_STATS_INTERVAL);
        load_stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let steps = self.scenario.timeline.clone();
        let end = fleet_up + self.scenario.duration.value.get();
        let mut next = 0;
        loop {
            let deadline = steps
                .get(next)
                .map_or(end, |s| fleet_up + s.at().value.get());
            tokio::select! {
                msg = self.rx.recv() => {
                    if let Some(msg) = msg { self.record(msg); }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    match steps.get(next) {
                        Some(step) => { self.apply(step).await?; next += 1; }
                        None => break,
                    }
                }
                _ = load_stats.tick() => self.emit_load_stats(),
            }
            if self.memory_abort.is_some() {
                return Ok(());
            }
            crate::terminal::tick(|| {
                report::status_line(self.sup.now_ms(), self.plan, &self.state)
            });
            if self.sup.now_ms() >= self.next_status_ms {
                self.next_status_ms += status_every;
                say(&report::status_line(
                    self.sup.now_ms(),
                    self.plan,
                    &self.state,
                ));
            }
        }
        self.pump();
        self.finish_load().await;
        say(&report::status_line(
            self.sup.now_ms(),
            self.plan,
            &self.state,
        ));
        Ok(())
    }

    fn emit_load_stats(&mut self) {
        if self.load_task.is_some() {
            self.emit_load_window();
        }
    }

    /// Tells the load's counters since the last window.
    fn emit_load_window(&mut self) {
        let w = load::lock(&self.load).take_window();
        self.sup.emit(Event::LoadStats {
            requests: w.requests,
            ok: w.ok,
            errors: w.errors,
            p50_ms: w.p50_ms,
            p99_ms: w.p99_ms,
        });
    }

    /// Starts control (which places the volumes) and then the customer load.
    async fn start_control_and_load(&mut self) -> Result<(), HarnessError> {
        let servers = self
            .plan
            .servers
            .iter()
            .filter_map(|s| {
                self.endpoints.storage_addrs.get(&s.id).map(|addr| {
                    outage_lab_control::ServerEntry {
                        id: s.id.clone(),
                        addr: *addr,
                    }
                })
            })
            .collect();
        let config = control_config(self.scenario, servers, self.seed);
        let file = self.write_config("control", &config)?;
        let args = role_args(
            "control",
            &file,
            &[("--listen", format!("{}:0", self.plan.control))],
        );
        // Placement creates every replica before control is ready.
        let timeout = READY_TIMEOUT + Duration::from_millis(20 * self.plan.servers.len() as u64);
        let started = self.sup.start("control", "control", &args, timeout).await?;
        let control = addr(&started, "http", "control")?;
        self.endpoints.listed.learn("control", "control", &started);
        self.endpoints.control = Some(control);
        self.pump();
        let l = &self.scenario.load;
        if l.requests_per_second > 0.0 {
            let config = load::LoadConfig {
                control,
                requests_per_second: l.requests_per_second,
                read_fraction: l.read_fraction,
                deadline: l.deadline.get(),
                seed: self.seed ^ 0x10AD_10AD,
            };
            self.load_task = Some(tokio::spawn(load::run(
                config,
                self.http.clone(),
                Arc::clone(&self.load),
                self.load_stop.clone(),
            )));
        }
        Ok(())
    }

    /// Stops the load, then reads every acknowledged write back (the timeline has repaired
    /// everything by now).
    async fn finish_load(&mut self) {
        let Some(task) = self.load_task.take() else {
            return;
        };
        self.load_stop.cancel();
        let _ = task.await;
        self.emit_load_window();
        let Some(control) = self.endpoints.control else {
            return;
        };
        let acked = load::lock(&self.load).acked.clone();
        let check = load::read_back(&self.http, control, &acked).await;
        match &check {
            Ok(c) => say(&format!(
                "t={:>5.1}s  read back {} blocks with acknowledged writes: {} lost, {} unreadable",
                self.sup.now_ms() as f64 / 1000.0,
                c.checked,
                c.lost.len(),
                c.unreadable.len()
            )),
            Err(e) => say(&format!("could not read acknowledged writes back: {e}")),
        }
        self.write_check = Some(check);
    }

    async fn start_fleet(&mut self) -> Result<(), HarnessError> {
        let scenario = self.scenario;
        let plan = self.plan;
        // DNS servers: every one answers the old collector at first.
        let mut pendings = Vec::new();
        for dns in &plan.dns {
            let config = outage_lab_dns::Config {
                records: BTreeMap::from([(COLLECTOR_NAME.to_owned(), vec![plan.collector_old])]),
                ttl: scenario.dns.ttl,
                admin_token: None,
            };
            let file = self.write_config(&dns.name, &config)?;
            let args = role_args(
                "dns",
                &file,
                &[
                    ("--listen", format!("{}:0", dns.ip)),
                    ("--admin", format!("{}:0", dns.ip)),
                ],
            );
            pendings.push((
                dns.name.clone(),
                self.sup.spawn(&dns.name, "dns", &args).await?,
            ));
        }
        for (name, pending) in pendings {
            let started = pending.ready(READY_TIMEOUT).await?;
            let udp = addr(&started, "dns", &name)?;
            let admin = addr(&started, "admin", &name)?;
            self.endpoints.listed.learn(&name, "dns", &started);
            self.endpoints.dns.insert(name, (udp, admin));
        }

        let collector = self
            .start_collector(
                "collector-old",
                SocketAddr::new(plan.collector_old.into(), 0),
            )
            .await?;
        self.endpoints.collector_port = collector.port();

        let file = self.write_config("watchdog", &watchdog_config(scenario))?;
        let args = role_args(
            "watchdog",
            &file,
            &[("--listen", format!("{}:0", plan.watchdog))],
        );
        let started = self
            .sup
            .start("watchdog", "watchdog", &args, READY_TIMEOUT)
            .await?;
        self.endpoints.watchdog_admin = Some(addr(&started, "admin", "watchdog")?);
        self.endpoints
            .listed
            .learn("watchdog", "watchdog", &started);
        self.pump();

        // Agents first (storage needs their pids), all at once, then storage, then wait for all.
        let mut pendings = Vec::new();
        for server in &plan.servers {
            pendings.push((
                server.id.clone(),
                ProcessRole::Agent,
                self.spawn_agent(server).await?,
            ));
        }
        for server in &plan.servers {
            let config = storage_config(scenario, &server.id, self.pid_file(&server.id));
            let name = format!("storage-{}", server.id);
            let file = self.write_config(&name, &config)?;
            let args = role_args(
                "storage",
                &file,
                &[("--listen", format!("{}:0", server.ip))],
            );
            pendings.push((
                server.id.clone(),
                ProcessRole::Storage,
                self.sup.spawn(&name, "storage", &args).await?,
            ));
        }
        let timeout = READY_TIMEOUT + Duration::from_millis(50 * plan.servers.len() as u64);
        for (id, role, pending) in pendings {
            let started = pending.ready(timeout).await?;
            let name = format!("{role}-{id}");
            self.endpoints
                .listed
                .learn(&name, &role.to_string(), &started);
            match role {
                ProcessRole::Agent => {
                    self.endpoints.agent_pids.insert(id, started.pid);
                }
                ProcessRole::Storage => {
                    let http = addr(&started, "http", &format!("storage-{id}"))?;
                    self.endpoints.storage_addrs.insert(id.clone(), http);
                    self.endpoints.storage_pids.insert(id, started.pid);
                }
            }
            self.pump();
        }
        self.push_targets().await?;
        self.start_control_and_load().await?;
        self.write_endpoints()
    }

    fn write_endpoints(&self) -> Result<(), HarnessError> {
        let path = self.run_dir.join(endpoints::FILE);
        self.endpoints
            .listed
            .write(&self.run_dir)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
    }

    async fn start_collector(
        &mut self,
        name: &str,
        listen: SocketAddr,
    ) -> Result<SocketAddr, HarnessError> {
        let config = outage_lab_collector::Config {
            name: name.to_owned(),
            ..outage_lab_collector::Config::default()
        };
        let file = self.write_config(name, &config)?;
        let args = role_args("collector", &file, &[("--listen", listen.to_string())]);
        let started = self
            .sup
            .start(name, "collector", &args, READY_TIMEOUT)
            .await?;
        self.endpoints.listed.learn(name, "collector", &started);
        addr(&started, "http", name)
    }

    async fn spawn_agent(
        &mut self,
        server: &ServerPlan,
    ) -> Result<supervisor::Pending, HarnessError> {
        let scenario = self.scenario;
        let (dns_addr, _) = self
            .endpoints
            .dns
            .get(&server.dns_server)
            .copied()
            .ok_or_else(|| HarnessError::Start(format!("no DNS server {}", server.dns_server)))?;
        let config = agent_config(scenario, server, dns_addr, self.endpoints.collector_port);
        let name = format!("agent-{}", server.id);
        let file = self.write_config(&name, &config)?;
        // Metrics on the server's own address; a restarted agent takes its old port again.
        let metrics = (self.endpoints.listed.metrics_addr(&name))
            .unwrap_or_else(|| SocketAddr::new(server.ip.into(), 0));
        let args = role_args("agent", &file, &[("--metrics", metrics.to_string())]);
        let pending = self.sup.spawn(&name, "agent", &args).await?;
        let pid_file = self.pid_file(&server.id);
        std::fs::write(&pid_file, format!("{}\n", pending.pid()))
            .map_err(|e| HarnessError::io(format!("write {}", pid_file.display()), e))?;
        Ok(pending)
    }

    /// Tells the watchdog the complete set of pids to watch.
    async fn push_targets(&mut self) -> Result<(), HarnessError> {
        let budget = self.scenario.fleet.memory_budget.value.bytes();
        let plan = self.plan;
        let stale = |id: &str| plan.servers.iter().any(|s| s.id == id && s.stale);
        let mut targets = Vec::new();
        for (server, pid) in &self.endpoints.agent_pids {
            targets.push(Target {
                server: server.clone(),
                role: ProcessRole::Agent,
                pid: *pid,
                budget_bytes: budget,
                stale: stale(server),
            });
        }
        for (server, pid) in &self.endpoints.storage_pids {
            targets.push(Target {
                server: server.clone(),
                role: ProcessRole::Storage,
                pid: *pid,
                budget_bytes: budget,
                stale: stale(server),
            });
        }
        let Some(admin) = self.endpoints.watchdog_admin else {
            return Err(HarnessError::Start(
                "the watchdog has no admin address".into(),
            ));
        };
        let url = format!("http://{admin}/targets");
        let resp = self.http.put(&url).json(&targets).send().await;
        match resp {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(HarnessError::Start(format!(
                "watchdog refused the targets: PUT {url} answered {}",
                r.status()
            ))),
            Err(e) => Err(HarnessError::Start(format!(
                "could not reach the watchdog at {url}: {e}"
            ))),
        }
    }

    async fn apply(&mut self, step: &Step) -> Result<(), HarnessError> {
        let action = step.action().to_owned();
        let fault = |detail: String| HarnessError::Fault {
            action: action.clone(),
            detail,
        };
        let detail = match step {
            Step::ReplaceCollector(_) => {
                let port = self.endpoints.collector_port;
                let new = self
                    .start_collector(
                        "collector-new",
                        SocketAddr::new(self.plan.collector_new.into(), port),
                    )
                    .await?;
                // A hardware failure does not shut down cleanly: SIGKILL at once.
                self.sup.stop("collector-old", Duration::ZERO).await;
                self.endpoints.listed.forget("collector-old");
                self.write_endpoints()?;
                format!(
                    "collector-old ({}:{port}) failed (SIGKILL); replacement collector-new serves on {new}; DNS still names the old address",
                    self.plan.collector_old
                )
            }
            Step::DnsUpdate(update) => {
                let reached: Vec<String> = update
                    .propagate_to
                    .iter()
                    .map(|n| n.value.clone())
                    .collect();
                for name in &reached {
                    self.set_collector_record(name).await.map_err(fault)?;
                }
                let missed: Vec<&str> = self
                    .plan
                    .dns
                    .iter()
                    .filter(|d| d.stale)
                    .map(|d| d.name.as_str())
                    .collect();
                format!(
                    "{COLLECTOR_NAME} -> {} on {}; missed {} ({} agents stay on the dead address)",
                    self.plan.collector_new,
                    reached.join(", "),
                    if missed.is_empty() {
                        "none".to_owned()
                    } else {
                        missed.join(", ")
                    },
                    self.plan.stale_servers().count()
                )
            }
            Step::DnsRepair(_) => {
                let names: Vec<String> = self.plan.dns.iter().map(|d| d.name.clone()).collect();
                for name in &names {
                    self.set_collector_record(name).await.map_err(fault)?;
                }
                format!(
                    "{COLLECTOR_NAME} -> {} on every DNS server",
                    self.plan.collector_new
                )
            }
            Step::Restart(restart) => {
                let servers: Vec<ServerPlan> = self
                    .plan
                    .servers
                    .iter()
                    .filter(|s| restart.agents == AgentSelection::All || s.stale)
                    .cloned()
                    .collect();
                let names: Vec<String> =
                    servers.iter().map(|s| format!("agent-{}", s.id)).collect();
                self.sup.stop_many(&names, STOP_GRACE).await;
                let mut pendings = Vec::new();
                for s in &servers {
                    pendings.push((s.id.clone(), self.spawn_agent(s).await?));
                }
                for (id, pending) in pendings {
                    let started = pending.ready(READY_TIMEOUT).await?;
                    self.endpoints.agent_pids.insert(id, started.pid);
                }
                self.push_targets().await?;
                format!(
                    "restarted {} {} agents; whatever they leaked is freed",
                    servers.len(),
                    if restart.agents == AgentSelection::All {
                        "(all)"
                    } else {
                        "stale"
                    }
                )
            }
        };
        say(&format!(
            "t={:>5.1}s  {action}: {detail}",
            self.sup.now_ms() as f64 / 1000.0
        ));
        self.sup.emit(Event::FaultInjected { action, detail });
        self.pump();
        Ok(())
    }

    async fn set_collector_record(&self, dns_name: &str) -> Result<(), String> {
        let (_, admin) = self
            .endpoints
            .dns
            .get(dns_name)
            .ok_or_else(|| format!("no DNS server {dns_name}"))?;
        let url = format!("http://{admin}/records/{COLLECTOR_NAME}");
        let body = SetRecordMsg {
            addrs: vec![self.plan.collector_new.into()],
        };
        match self.http.put(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!(
                "PUT {url} answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => Err(format!("PUT {url} failed: {e}")),
        }
    }

    fn write_config<T: serde::Serialize>(
        &self,
        name: &str,
        config: &T,
    ) -> Result<PathBuf, HarnessError> {
        let path = self.run_dir.join("config").join(format!("{name}.json"));
        let json = serde_json::to_string_pretty(config).map_err(|e| {
            HarnessError::io(
                format!("encode {}", path.display()),
                std::io::Error::other(e),
            )
        })?;
        std::fs::write(&path, json)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        Ok(path)
    }

    fn pid_file(&self, server: &str) -> PathBuf {
        self.run_dir
            .join("pids")
            .join(format!("{server}.agent.pid"))
    }

    /// Folds every event already waiting into the journal and the state.
    fn pump(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.record(msg);
        }
    }

    fn record(&mut self, msg: Inbound) {
        let entry = JournalEntry {
            t_ms: msg.t_ms,
            source: msg.source,
            source_pid: msg.pid,
            event: msg.event,
        };
        if let Ok(line) = serde_json::to_string(&entry) {
            // A full disk shows up at the final flush, which is checked.
            let _ = writeln!(self.journal, "{line}");
            if let Some(live) = &self.live {
                live.feed.publish(&entry, &line);
            }
        }
        if self.last_flush.elapsed() >= Duration::from_millis(250) || entry.source == "harness" {
            let _ = self.journal.flush();
            self.last_flush = Instant::now();
        }
        if let Event::RssSweep { samples } = &entry.event {
            let total = samples.iter().map(|s| s.rss_bytes).sum();
            if let (None, Some(reason)) = (&self.memory_abort, self.guard.check(total)) {
                say(&format!(
                    "t={:>5.1}s  STOPPING: {reason}",
                    entry.t_ms as f64 / 1000.0
                ));
                self.memory_abort = Some(reason);
            }
        }
        if let Event::Alarm {
            alarm,
            server,
            role,
            detail,
            ..
        } = &entry.event
        {
            say(&format!(
                "t={:>5.1}s  ALARM {alarm} on {server}{}: {detail}",
                entry.t_ms as f64 / 1000.0,
                role.map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        crate::terminal::observe(&entry);
        self.state.apply(&entry);
    }

    /// After every process was stopped: reads until every child's stdout has closed.
    async fn drain_until_closed(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        // The supervisor holds one sender; the rest belong to per-child tasks that end at EOF.
        // Wait until only the supervisor's is left (strong_count would need the sender), so poll.
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => self.record(msg),
                Ok(None) | Err(_) => break,
            }
            if self.rx.sender_strong_count() <= 1 && self.rx.is_empty() {
                break;
            }
        }
    }
}

/// The agent's config for `server`, resolving through `dns` and reporting to `collector_port`.
fn agent_config(
    scenario: &Scenario,
    server: &ServerPlan,
    dns: SocketAddr,
    collector_port: u16,
) -> outage_lab_agent::Config {
    outage_lab_agent::Config {
        server: server.id.clone(),
        dns_server: dns,
        collector_port,
        report_interval: scenario.agent.report_interval.value,
        request_timeout: scenario.agent.request_timeout,
        retry: scenario.agent.retry.clone(),
        seed: server.seed,
        ..outage_lab_agent::Config::default()
    }
}

/// The storage config of server `id`, which finds its agent's pid in `pid_file`.
fn storage_config(scenario: &Scenario, id: &str, pid_file: PathBuf) -> outage_lab_storage::Config {
    outage_lab_storage::Config {
        server: id.to_owned(),
        budget: scenario.fleet.memory_budget.value,
        fill_fraction: scenario.storage.fill_fraction.value,
        agent_pid_file: Some(pid_file),
        working_set: scenario.storage.working_set.value,
        miss_penalty: scenario.storage.miss_penalty,
        request_deadline: scenario.storage.request_deadline,
        replica_bytes: scenario.volumes.replica_size,
        probe_blocks: scenario.volumes.probe.blocks,
        ..outage_lab_storage::Config::default()
    }
}

/// The control plane's config for these storage servers.
pub(crate) fn control_config(
    scenario: &Scenario,
    servers: Vec<outage_lab_control::ServerEntry>,
    seed: u64,
) -> outage_lab_control::Config {
    let v = &scenario.volumes;
    outage_lab_control::Config {
        servers,
        slots_per_server: v.slots_per_server,
        placement_fill: v.placement_fill,
        blocks_per_volume: v.blocks_per_volume,
        probe_interval: v.probe.interval,
        // A probe is one request with the storage deadline; give the network a little more.
        probe_timeout: HumanDuration(
            scenario.storage.request_deadline.get() + Duration::from_millis(150),
        ),
        probe_window: v.probe.window,
        unhealthy_after: v.probe.fail_after,
        healthy_after: v.probe.recover_after,
        failovers_per_second: v.failovers_per_second,
        seed,
        ..outage_lab_control::Config::new(Vec::new())
    }
}

/// The watchdog's config.
fn watchdog_config(scenario: &Scenario) -> outage_lab_watchdog::Config {
    outage_lab_watchdog::Config {
        sample_interval: scenario.watchdog.sample_interval,
        leak: scenario.watchdog.leak.clone(),
        aggregate: scenario.watchdog.aggregate.clone(),
        admin_token: None,
    }
}

/// Starts the live view (`run --serve`) of this fleet and tells its URL.
async fn live_view(
    addr: SocketAddr,
    scenario: &Scenario,
    plan: &Plan,
) -> Result<outage_lab_viz::live::LiveView, HarnessError> {
    use outage_lab_viz::live::{Fleet, FleetServer, LiveView};
    let fleet = Fleet {
        scenario: scenario.name.clone(),
        servers: (plan.servers.iter())
            .map(|s| FleetServer {
                id: s.id.clone(),
                dns_server: s.dns_server.clone(),
                stale: s.stale,
            })
            .collect(),
    };
    let view = LiveView::start(addr, &fleet)
        .await
        .map_err(|e| HarnessError::io(format!("serve the live view on {addr}"), e))?;
    if addr.ip().is_unspecified() {
        // In a container (run --hosts): the URL is the container's; the user opens the port
        // compose publishes on the machine's loopback.
        say(&format!(
            "live view: {} in this container; open the port compose publishes (http://127.0.0.1:8080/ by default)",
            view.url
        ));
    } else {
        say(&format!("live view: {}", view.url));
    }
    Ok(view)
}

/// Checks that every process the scenario would start accepts its config, so a value the roles
/// refuse (a zero interval, an inverted backoff, a working set smaller than a block) is bad input
/// reported before anything starts, not a process that dies at start-up.
pub fn preflight(scenario: &Scenario) -> Result<(), String> {
    let probe = ServerPlan {
        id: "s000".into(),
        ip: std::net::Ipv4Addr::LOCALHOST,
        dns_server: String::new(),
        stale: false,
        seed: 0,
    };
    let dns = SocketAddr::from(([127, 0, 0, 1], 53));
    agent_config(scenario, &probe, dns, 1)
        .validate()
        .map_err(|e| format!("agent: {e}"))?;
    storage_config(scenario, "s000", PathBuf::from("agent.pid"))
        .validate()
        .map_err(|e| format!("fleet/storage: {e}"))?;
    watchdog_config(scenario)
        .validate()
        .map_err(|e| format!("watchdog: {e}"))?;
    if scenario.watchdog.sample_interval.get().is_zero() {
        return Err("watchdog: sample_interval must be greater than 0ms".into());
    }
    Ok(())
}

fn role_args(role: &str, config: &Path, flags: &[(&str, String)]) -> Vec<String> {
    let mut args = vec![
        role.to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    for (flag, value) in flags {
        args.push((*flag).to_owned());
        args.push(value.clone());
    }
    args
}

fn addr(started: &Started, key: &str, name: &str) -> Result<SocketAddr, HarnessError> {
    started.addrs.get(key).copied().ok_or_else(|| {
        HarnessError::Start(format!(
            "{name} announced no {key:?} address (it said {:?})",
            started.addrs
        ))
    })
}

fn prepare_run_dir(run_dir: &Path, scenario_text: &str, plan: &Plan) -> Result<(), HarnessError> {
    for sub in ["config", "logs", "pids"] {
        let dir = run_dir.join(sub);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    }
    let write = |name: &str, body: &str| {
        let path = run_dir.join(name);
        std::fs::write(&path, body)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
    };
    write("scenario.yaml", scenario_text)?;
    let plan_json = serde_json::to_string_pretty(plan)
        .map_err(|e| HarnessError::io("encode plan".into(), std::io::Error::other(e)))?;
    write("plan.json", &plan_json)
}

/// `runs/<scenario>-<YYYYmmddTHHMMSSZ>-seed<seed>`.
fn default_run_dir(name: &str, seed: u64) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{name}-{}-seed{seed}", utc_stamp(secs)))
}

/// Formats Unix seconds as `YYYYmmddTHHMMSSZ` (proleptic Gregorian, UTC).
fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), shifted so March is month 0.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A line for the person watching.
pub fn say(line: &str) {
    crate::terminal::say(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // The incident: 2012-10-22 17:00:00 UTC (10:00 PDT).
        assert_eq!(utc_stamp(1_350_925_200), "20121022T170000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }
}

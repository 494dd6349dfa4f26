//! The harness: `outage-lab run`. A run reads as its phases, each a function below:
//!
//! 1. **plan**: addresses, the DNS assignment (who is stale), the run directory;
//! 2. **start**: the supervisor, the journal, the live view (no process yet);
//! 3. **drive**: the fleet comes up and the timeline plays ([`driver`]; each step is a module
//!    of [`crate::steps`]), until its end or a signal;
//! 4. **stop**: every process is stopped, always, whatever happened above, and what they said
//!    last is drained into the journal;
//! 5. **judge**: every planned check ([`crate::checks`]) against what happened;
//! 6. **write**: the verdicts into the journal, then `report.json`, `junit.xml`, `report.html`.

pub mod customers;
pub mod driver;
pub mod halt;
pub mod report;
pub mod stops;
pub mod traffic;

use std::fs::File;

use outage_lab_engine::{clock, ledger};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outage_lab_ebs_events::Event;
use outage_lab_proto::report::{ExpectationResult, Report, Verdict};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use self::driver::Driver;
use crate::check::CheckInput;
use crate::containment::MemoryGuard;
use crate::fixes::action::Action;
use crate::fleet::limiter::Limiter;
use crate::fleet::{Fleet, STOP_GRACE};
use crate::launchers::{self as remote};
use crate::load;
use crate::plan::{Plan, pick_octet};
use crate::scenario::Scenario;
use crate::steps::dns_update;
use outage_lab_engine::args::Hosts;

use outage_lab_engine::checks::RunFacts;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::supervisor::Supervisor;
use outage_lab_engine::terminal::say;

/// How long `run --hosts` waits for every launcher host to register and answer.
const HOSTS_TIMEOUT: Duration = Duration::from_secs(90);

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
    /// Serve the live view on this address during the run (loopback, unless on launcher hosts).
    pub serve: Option<SocketAddr>,
    /// Run the fleet on launcher hosts found there (compose, Swarm).
    pub hosts: Option<Hosts>,
    /// The launchers' admin token, when they are found by DNS (a Docker secret).
    pub token_file: Option<PathBuf>,
    /// `outage-lab workshop`: stop at each link of the chain (local runs only).
    pub workshop: Option<crate::workshop::Options>,
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

/// What the plan phase decides.
struct Planned {
    seed: u64,
    plan: Plan,
    run_dir: PathBuf,
    remote: Option<remote::Remote>,
}

/// Runs a scenario to the end. Every process it starts is stopped before it returns, on every
/// path; a harness killed outright takes them with it through the parent-death signal.
pub async fn run(scenario: Scenario, opts: RunOptions) -> Result<Outcome, HarnessError> {
    let Planned {
        seed,
        plan,
        run_dir,
        remote,
    } = plan(&scenario, &opts).await?;
    // Journal times count from here: the fleet's plan is made, nothing is started yet.
    let clock = clock::LabClock::start();
    let mut driver = start(
        &scenario,
        &plan,
        seed,
        &run_dir,
        remote,
        &opts,
        clock.clone(),
    )
    .await?;
    let (driven, interrupted) = drive(&mut driver).await;
    let end_ms = driver.fleet.sup.now_ms();
    if let Some(workshop) = &driver.workshop {
        workshop.close();
    }
    let leftovers = stop(&mut driver).await;
    driven?;
    let lag = driver.lag.report(scenario.lag_tolerance.get());
    let facts = RunFacts {
        interrupted,
        memory_abort: driver.halt.memory_abort.clone(),
        hosts_lost: driver.halt.hosts_lost.clone(),
        leftovers,
        disturbed: outage_lab_engine::lag::disturbance(&lag),
    };
    let expectations = judge(&scenario, &driver, end_ms, &facts);
    let finished = Finished {
        expectations,
        lag,
        wall: clock.wall(),
    };
    let report = write(&scenario, &mut driver, &run_dir, finished)?;
    if let Some(live) = driver.live.take() {
        live.close(Duration::from_millis(500)).await;
    }
    Ok(Outcome {
        run_dir,
        report,
        interrupted,
    })
}

/// Plans addresses and the DNS assignment, and creates the run directory. On launcher hosts,
/// waits for them and moves the plan onto their addresses.
async fn plan(scenario: &Scenario, opts: &RunOptions) -> Result<Planned, HarnessError> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    let dns = scenario.dns_names();
    let stale = dns_update::missed(&scenario.timeline, &dns);
    let mut plan = Plan::new(pick_octet(), seed, scenario.servers(), &dns, &stale);
    let run_dir = (opts.out.clone())
        .unwrap_or_else(|| outage_lab_engine::run_dir::default_run_dir(&scenario.name, seed));
    // Absolute, so every child's command line names it in full: the ledger proves a process's
    // identity by it, and logs and configs stay findable whatever the working directory.
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let remote = match &opts.hosts {
        Some(hosts) => {
            say(&format!("waiting for the launcher hosts in {hosts}"));
            let token_file = opts.token_file.as_deref();
            Some(remote::connect(hosts, token_file, &mut plan, HOSTS_TIMEOUT).await?)
        }
        None => None,
    };
    prepare_run_dir(&run_dir, &scenario.text, &plan)?;
    Ok(Planned {
        seed,
        plan,
        run_dir,
        remote,
    })
}

/// Sets up everything but the processes: the ledger, the supervisor, the journal and the live
/// view, and tells what is about to run.
async fn start<'a>(
    scenario: &'a Scenario,
    plan: &'a Plan,
    seed: u64,
    run_dir: &Path,
    remote: Option<remote::Remote>,
    opts: &RunOptions,
    clock: clock::LabClock,
) -> Result<Driver<'a>, HarnessError> {
    // The ledger lets a later run on this machine reap what a crashed one left; processes on
    // launcher hosts die with their launcher's connection instead.
    let ledger = match &remote {
        Some(_) => None,
        None => Some(local_ledger(run_dir)?),
    };
    let headers = match &remote {
        Some(remote) => outage_lab_engine::supervisor::launcher::auth_headers(&remote.token)?,
        None => reqwest::header::HeaderMap::new(),
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| HarnessError::Start(format!("HTTP client: {e}")))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let sup = Supervisor::new(opts.exe.clone(), run_dir, clock, tx, ledger, remote);
    let journal_path = run_dir.join("journal.jsonl");
    let journal = File::create(&journal_path)
        .map_err(|e| HarnessError::io(format!("create {}", journal_path.display()), e))?;
    let fleet = Fleet::new(scenario, plan, seed, sup, http, run_dir.to_owned());
    let mut driver = Driver::new(fleet, rx, journal, MemoryGuard::new(opts.memory_limit));
    let controls = match &opts.workshop {
        Some(options) => Some(start_workshop(&mut driver, options, run_dir).await?),
        None => None,
    };
    if let Some(addr) = opts.serve {
        let token = controls.as_ref().map(|(_, token)| token.clone());
        let live = live_view(addr, scenario, plan, controls.map(|(routes, _)| routes)).await?;
        if let Some(token) = token {
            say(&format!(
                "workshop page (with its controls): {}#token={token}",
                live.url
            ));
        }
        driver.fleet.listed.add_live_view(&live.url);
        let feed = live.feed.clone();
        (driver.journal).read_along(Box::new(move |entry, line| feed.publish(entry, line)));
        driver.live = Some(live);
    }
    driver.fleet.sup.emit(Event::RunStarted {
        scenario: scenario.name.clone(),
        seed,
        servers: plan.servers.len(),
    });
    let on = scenario.fixes.on();
    if !on.is_empty() {
        let on: Vec<&str> = on.iter().map(|f| f.name()).collect();
        say(&format!("fixes on: {}", on.join(", ")));
    }
    put_limits_in_place(&mut driver, opts);
    say(&format!(
        "outage-lab: scenario {} ({}), seed {seed}\n{} storage servers behind {} DNS servers, {} stale; run directory {}",
        scenario.name,
        scenario.description,
        plan.servers.len(),
        plan.dns.len(),
        plan.stale_servers().count(),
        run_dir.display()
    ));
    Ok(driver)
}

/// The `agent_memory_limit` fix: chooses how the limit is enforced here, before any agent
/// starts, and journals which.
fn put_limits_in_place(driver: &mut Driver<'_>, opts: &RunOptions) {
    let Some(fix) = &driver.fleet.scenario.fixes.agent_memory_limit else {
        return;
    };
    let detail = if opts.hosts.is_some() {
        "not in place: on launcher hosts each container's engine sets memory limits (compose `mem_limit`)".to_owned()
    } else {
        let run = format!("{}-{}", driver.fleet.plan.octet, std::process::id());
        let limiter = Limiter::prepare(fix.limit, &run);
        if let Some(dir) = limiter.cgroup() {
            driver.fleet.sup.record_cgroup(dir);
        }
        let detail = format!("in place: {}", limiter.describe());
        driver.fleet.limiter = Some(limiter);
        detail
    };
    driver.fix_applied(Action {
        fix: crate::kinds::FixName::AgentMemoryLimit,
        server: None,
        process: None,
        detail,
    });
}

/// Reaps what a crashed run left behind, then opens this run's ledger.
fn local_ledger(run_dir: &Path) -> Result<ledger::Ledger, HarnessError> {
    for line in ledger::reap_orphans() {
        say(&format!("reaped a process left behind: {line}"));
    }
    ledger::Ledger::create(run_dir).map_err(|e| {
        HarnessError::io(
            format!("create the ledger in {}", ledger::state_dir().display()),
            e,
        )
    })
}

/// Drives the run until its end, a failure, or SIGINT / SIGTERM (which is returned).
async fn drive(driver: &mut Driver<'_>) -> (Result<(), HarnessError>, Option<&'static str>) {
    let listen = |kind, what: &str| {
        signal(kind).map_err(|e| HarnessError::io(format!("listen for {what}"), e))
    };
    let (mut sigint, mut sigterm) = match (
        listen(SignalKind::interrupt(), "SIGINT"),
        listen(SignalKind::terminate(), "SIGTERM"),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => return (Err(e), None),
    };
    tokio::select! {
        r = driver.drive() => (r, None),
        _ = sigint.recv() => (Ok(()), Some("SIGINT")),
        _ = sigterm.recv() => (Ok(()), Some("SIGTERM")),
    }
}

/// Stops every process and hears their last words (final agent counters). Returns what is
/// still running afterwards (nothing, unless a process could not be stopped).
async fn stop(driver: &mut Driver<'_>) -> Vec<String> {
    say("stopping every process of the run");
    driver.fleet.sup.emit(Event::Phase {
        name: outage_lab_proto::RunPhase::Stopping,
        detail: "every process gets SIGTERM".into(),
    });
    // Control first: it alone judges volumes, and storage servers going away under it at the
    // end would otherwise be recorded as volumes getting stuck after the run (a two-run test
    // under load saw exactly that).
    (driver.fleet.sup)
        .stop_many(&[crate::names::ProcessName::Control], STOP_GRACE)
        .await;
    driver.fleet.sup.stop_all(STOP_GRACE).await;
    if let Some(limiter) = &driver.fleet.limiter {
        limiter.cleanup();
    }
    driver.drain_until_closed(Duration::from_secs(5)).await;
    let leftovers = driver.fleet.sup.running();
    if leftovers.is_empty() {
        driver.fleet.sup.close_ledger();
    }
    leftovers
}

/// Every planned check, framed by the rows about the run itself.
fn judge(
    scenario: &Scenario,
    driver: &Driver<'_>,
    end_ms: u64,
    facts: &RunFacts,
) -> Vec<ExpectationResult> {
    let customers = driver.customers_report();
    let input = CheckInput {
        plan: driver.fleet.plan,
        state: &driver.state,
        end_ms,
        writes: driver.traffic.write_check.as_ref(),
        customers: customers.as_ref(),
        external_agent: scenario.agent.command.is_some(),
    };
    crate::checks::plan::judge(scenario, &input, facts)
}

/// What the run came to, once judged.
struct Finished {
    expectations: Vec<ExpectationResult>,
    lag: outage_lab_proto::report::LagReport,
    wall: Duration,
}

/// Journals the verdicts, then writes `report.json`, `junit.xml` and `report.html`.
fn write(
    scenario: &Scenario,
    driver: &mut Driver<'_>,
    run_dir: &Path,
    finished: Finished,
) -> Result<Report, HarnessError> {
    let Finished {
        expectations,
        lag,
        wall,
    } = finished;
    let verdict = if expectations.iter().all(|e| e.passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    for e in &expectations {
        driver.fleet.sup.emit(Event::Verdict {
            name: e.name.clone(),
            passed: e.passed,
            detail: e.detail.clone(),
        });
    }
    let verdict_name = if verdict == Verdict::Pass {
        "pass"
    } else {
        "fail"
    };
    driver.fleet.sup.emit(Event::RunFinished {
        verdict: verdict_name.into(),
    });
    driver.pump();
    driver.flush_journal()?;
    let (load_total, acknowledged_writes) = {
        let ledger = load::lock(&driver.traffic.load);
        (ledger.total(), ledger.acknowledged_writes)
    };
    let report = report::build(
        &scenario.name,
        driver.fleet.seed,
        driver.fleet.plan,
        &driver.state,
        report::Outcome {
            verdict,
            wall,
            expectations,
            load: load_total,
            acknowledged_writes,
            writes: driver
                .traffic
                .write_check
                .as_ref()
                .and_then(|c| c.as_ref().ok()),
            fixes: crate::fixes::report(
                &scenario.fixes,
                crate::fixes::RunContext {
                    placement_fill: scenario.volumes.placement_fill,
                    actions: &driver.state.fix_actions,
                    aggregate_alarm_servers: (driver.state.servers.values())
                        .filter(|s| s.aggregate_at_ms.is_some())
                        .count(),
                },
            ),
            customers: driver.customers_report(),
            lag,
        },
    );
    write_report_files(run_dir, &report)?;
    Ok(report)
}

fn write_report_files(run_dir: &Path, report: &Report) -> Result<(), HarnessError> {
    let junit_path = run_dir.join("junit.xml");
    std::fs::write(&junit_path, report::junit(report))
        .map_err(|e| HarnessError::io(format!("write {}", junit_path.display()), e))?;
    let report_path = run_dir.join("report.json");
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| HarnessError::io("encode report".into(), std::io::Error::other(e)))?;
    std::fs::write(&report_path, json + "\n")
        .map_err(|e| HarnessError::io(format!("write {}", report_path.display()), e))?;
    // The page people read, from the files just written (`outage-lab report` does the same).
    if let Err(e) = outage_lab_viz::write_report(run_dir) {
        say(&format!("could not write report.html: {e}"));
    }
    Ok(())
}

/// Starts the live view (`run --serve`) of this fleet and tells its URL.
/// Attaches a workshop to `driver`: its control API on loopback (token in the run directory),
/// and Enter on the terminal to go on. Returns the control routes (for the live page too) and
/// the token.
async fn start_workshop(
    driver: &mut Driver<'_>,
    options: &crate::workshop::Options,
    run_dir: &Path,
) -> Result<(axum::Router, String), HarnessError> {
    use crate::workshop::control::{self, Asked, Request};
    let token = outage_lab_host::load_or_create_token(run_dir).map_err(|e| {
        HarnessError::io(
            format!("create the run's token in {}", run_dir.display()),
            e,
        )
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    let routes = control::router(token.clone(), tx.clone());
    let stop_serving = tokio_util::sync::CancellationToken::new();
    let addr = control::start(run_dir, routes.clone(), stop_serving.clone())
        .await
        .map_err(|e| HarnessError::io("serve the workshop's control API".into(), e))?;
    // Enter on the terminal goes on. A plain thread: a blocking read would hold up the runtime's
    // shutdown, and this thread forks nothing (the parent-death signal is tied to the main one).
    let _ = std::thread::Builder::new()
        .name("workshop-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                if line.is_err() {
                    break;
                }
                let (reply, _) = tokio::sync::oneshot::channel();
                let next = Request::Next {
                    who: "the facilitator (Enter)".into(),
                };
                if tx
                    .send(Asked {
                        request: next,
                        reply,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
    let session = crate::workshop::Session::new(driver.fleet.scenario, options.clone());
    driver.workshop = Some(crate::workshop::Workshop::new(
        session,
        rx,
        stop_serving,
        run_dir,
    ));
    say(&format!(
        "workshop: the run stops at each link of the chain; control API on http://{addr} \
         (outage-lab ctl {} status; token in {}/{})",
        run_dir.display(),
        run_dir.display(),
        outage_lab_host::TOKEN_FILE
    ));
    Ok((routes, token))
}

async fn live_view(
    addr: SocketAddr,
    scenario: &Scenario,
    plan: &Plan,
    controls: Option<axum::Router>,
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
    let view = LiveView::start(addr, &fleet, controls)
        .await
        .map_err(|e| HarnessError::io(format!("serve the live view on {addr}"), e))?;
    if addr.ip().is_unspecified() {
        // In a container (run --hosts): the URL is the container's; the user opens the port
        // compose publishes on the machine's loopback.
        say(&format!(
            "live view: {} in this container; open the port its deployment publishes (compose: http://127.0.0.1:8080/ by default; Swarm: port 8080 of the harness's machine)",
            view.url
        ));
    } else {
        say(&format!("live view: {}", view.url));
    }
    Ok(view)
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

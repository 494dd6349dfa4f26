//! `outage-lab run` of a 2025 scenario: bring the lab up as processes, play the timeline, stop
//! everything, judge the journal, write the report. Exit 0 when every expectation held, 1 when
//! one did not, 2 for bad input, 3 when the harness failed, 130 when interrupted.
//!
//! - [`fleet`]: the processes, their configs, their readiness;
//! - [`steps`]: what each timeline step does to the running lab;
//! - [`record`]: hears every process, writes the journal, tells the person watching;
//! - [`probe`]: asks every lab DNS server for the endpoint, in real DNS packets.

mod fleet;
mod probe;
mod record;
mod steps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use outage_lab_dynamodb_events::JournalEntry;
use outage_lab_engine::args::RunArgs;
use outage_lab_engine::clock::LabClock;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::exit;
use outage_lab_engine::lag::{Heartbeat, LagMeter};
use outage_lab_engine::ledger;
use outage_lab_engine::supervisor::Supervisor;
use outage_lab_engine::terminal::say;
use outage_lab_proto::report::LagReport;
use outage_lab_proto::{EngineEvent, RunPhase};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::checks;
use crate::names::ProcessName;
use crate::report::{self, Report};
use crate::scenario::{FIX_NAMES, Scenario};
use outage_lab_engine::overrides::Setting;

pub(crate) use fleet::Fleet;

/// How long every process gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// `outage-lab run` for a 2025 scenario.
pub(crate) fn command(args: RunArgs) -> ExitCode {
    let prepared = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("outage-lab: {message}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return harness_failed(&format!("cannot find this program's path: {e}")),
    };
    let runtime = match outage_lab_engine::runtime::single_threaded() {
        Ok(runtime) => runtime,
        Err(e) => return harness_failed(&format!("cannot start a runtime: {e}")),
    };
    match runtime.block_on(run(&prepared, exe)) {
        Ok(Ended::Judged(true)) => ExitCode::SUCCESS,
        Ok(Ended::Judged(false)) => ExitCode::from(exit::EXPECTATION_FAILED),
        Ok(Ended::Interrupted(sig)) => {
            eprintln!("outage-lab: interrupted by {sig}; every process of the run was stopped");
            ExitCode::from(exit::INTERRUPTED)
        }
        Err(e) => harness_failed(&e.to_string()),
    }
}

fn harness_failed(message: &str) -> ExitCode {
    eprintln!("outage-lab: {message}");
    ExitCode::from(exit::HARNESS_FAILED)
}

/// A run about to start.
struct Prepared {
    /// The scenario as it runs: its fixes turned on, its seed the run's.
    scenario: Scenario,
    seed: u64,
    run_dir: PathBuf,
    /// The head of the scenario.yaml the run keeps: the file and the settings it ran with.
    header: String,
}

/// The scenario as it runs, its seed and its run directory; or why not.
fn prepare(args: &RunArgs) -> Result<Prepared, String> {
    let settings = &args.settings;
    let unsupported = [
        (settings.servers.is_some(), "--servers"),
        (settings.memory_limit.is_some(), "--memory-limit"),
        (settings.serve.is_some(), "--serve"),
        (args.hosts.is_some(), "--hosts"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
        return Err(format!(
            "{flag} is not available for {} runs yet: they take --seed, --set, --fix and --out",
            crate::scenario::NAME
        ));
    }
    let mut given = Vec::new();
    for arg in &settings.set {
        given.push(Setting::parse(arg).map_err(|e| format!("--set {e}"))?);
    }
    for fix in &settings.fix {
        given.push(Setting::fix(fix, FIX_NAMES).map_err(|e| e.to_string())?);
    }
    let mut scenario = Scenario::load_with(&args.scenario, &given).map_err(|e| e.to_string())?;
    let seed = settings.seed.unwrap_or(scenario.seed);
    scenario.seed = seed;
    let run_dir = (settings.out.clone())
        .unwrap_or_else(|| outage_lab_engine::run_dir::default_run_dir(&scenario.name, seed));
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
    let shown: Vec<String> = given.iter().map(ToString::to_string).collect();
    let header =
        outage_lab_engine::run_dir::settings_header(&args.scenario.display().to_string(), &shown);
    Ok(Prepared {
        scenario,
        seed,
        run_dir,
        header,
    })
}

/// How a run ended.
enum Ended {
    /// It ran to its end and was judged: whether every expectation held.
    Judged(bool),
    /// A signal cut it short.
    Interrupted(&'static str),
}

async fn run(prepared: &Prepared, exe: PathBuf) -> Result<Ended, HarnessError> {
    let Prepared {
        scenario,
        seed,
        run_dir,
        header,
    } = prepared;
    let (seed, run_dir) = (*seed, run_dir.as_path());
    prepare_run_dir(run_dir, scenario, header)?;
    for line in ledger::reap_orphans() {
        say(&format!("reaped a process left behind: {line}"));
    }
    let ledger = ledger::Ledger::create(run_dir)
        .map_err(|e| HarnessError::io("create the run's ledger".into(), e))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let clock = LabClock::start();
    let sup = Arc::new(Supervisor::new(exe, run_dir, clock, tx, Some(ledger), None));
    let recorder = record::Recorder::start(run_dir, rx, &scenario.service.endpoint)?;
    say(&format!(
        "outage-lab: scenario {} ({}), seed {seed}\n{} enactors, {} DNS servers, {} service instances, {} clients; run directory {}",
        scenario.name,
        scenario.description,
        scenario.automation.enactors,
        scenario.dns.servers,
        scenario.service.instances,
        scenario.clients.customers + scenario.clients.dependents,
        run_dir.display()
    ));
    let fixes = scenario.fixes.on();
    if !fixes.is_empty() {
        say(&format!("fixes on: {}", fixes.join(", ")));
    }
    let played = play(scenario, seed, run_dir, &sup).await;
    sup.emit(EngineEvent::Phase {
        name: RunPhase::Stopping,
        detail: "stopping every process of the run".into(),
    });
    say("stopping every process of the run");
    sup.stop_all(STOP_GRACE).await;
    let leftovers = sup.running();
    sup.close_ledger();
    let sup = Arc::into_inner(sup).expect("every task holding the supervisor has ended");
    let wall_ms = sup.now_ms();
    let recorded = recorder.finish(sup).await?;
    let (played, lag) = played?;
    let interrupted = match played {
        Played::Completed => None,
        Played::Interrupted(sig) => Some(sig),
    };
    let ended = Ending {
        interrupted,
        leftovers,
        lag,
        wall_ms,
    };
    judge(scenario, seed, run_dir, recorded, ended)
}

/// How the timeline went.
enum Played {
    Completed,
    Interrupted(&'static str),
}

/// Brings the lab up and plays the timeline to its end (or to SIGINT / SIGTERM); with how late
/// the timeline's work fired.
async fn play(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    sup: &Arc<Supervisor<ProcessName>>,
) -> Result<(Played, LagReport), HarnessError> {
    let stop = CancellationToken::new();
    let signalled = watch_signals(stop.clone())?;
    let fleet = tokio::select! {
        fleet = Fleet::start(scenario, seed, run_dir, Arc::clone(sup)) => fleet?,
        () = stop.cancelled() => {
            let lag = LagMeter::default().report(scenario.lag_tolerance.get());
            return Ok((Played::Interrupted(signalled.get()), lag));
        }
    };
    let probing = probe::start(&fleet, &scenario.service.endpoint, stop.child_token());
    sup.emit(EngineEvent::Phase {
        name: RunPhase::Timeline,
        detail: format!("the timeline plays for {}", scenario.duration),
    });
    say(&format!(
        "lab up: the endpoint {} answers on every DNS server; the timeline starts",
        scenario.service.endpoint
    ));
    let mut meter = LagMeter::default();
    meter.open();
    let heartbeat = Heartbeat::start();
    let played = steps::play(scenario, &fleet, &stop, &mut meter).await;
    heartbeat.finish(&mut meter);
    meter.close();
    stop.cancel();
    let _ = probing.await;
    played?;
    let lag = meter.report(scenario.lag_tolerance.get());
    let played = match signalled.take() {
        Some(sig) => Played::Interrupted(sig),
        None => Played::Completed,
    };
    Ok((played, lag))
}

/// The signal that stopped the run, once one did.
#[derive(Clone, Default)]
struct Signalled(Arc<std::sync::Mutex<Option<&'static str>>>);

impl Signalled {
    fn take(&self) -> Option<&'static str> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self) -> &'static str {
        self.take().unwrap_or("a signal")
    }
}

/// Cancels `stop` on the first SIGINT or SIGTERM, and says which.
fn watch_signals(stop: CancellationToken) -> Result<Signalled, HarnessError> {
    let listen = |kind, what: &str| {
        signal(kind).map_err(|e| HarnessError::io(format!("listen for {what}"), e))
    };
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let signalled = Signalled::default();
    let told = signalled.clone();
    tokio::spawn(async move {
        let sig = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            () = stop.cancelled() => return,
        };
        *told.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(sig);
        stop.cancel();
    });
    Ok(signalled)
}

fn prepare_run_dir(run_dir: &Path, scenario: &Scenario, header: &str) -> Result<(), HarnessError> {
    for sub in ["config", "logs"] {
        let dir = run_dir.join(sub);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    }
    let text = serde_saphyr::to_string(scenario)
        .map_err(|e| HarnessError::io("write the scenario".into(), std::io::Error::other(e)))?;
    let path = run_dir.join("scenario.yaml");
    std::fs::write(&path, format!("{header}{text}"))
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// How the run ended, besides its journal: what the checks and the report need.
struct Ending {
    interrupted: Option<&'static str>,
    /// Processes still running after the stop.
    leftovers: Vec<String>,
    lag: LagReport,
    /// Lab time when everything had stopped.
    wall_ms: u64,
}

/// Judges the journal, appends the verdict to it, writes the report, prints the verdict table.
fn judge(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    (entries, mut journal): record::Recorded,
    ended: Ending,
) -> Result<Ended, HarnessError> {
    let Ending {
        interrupted,
        leftovers,
        lag,
        wall_ms,
    } = ended;
    let end_ms = entries.last().map_or(0, |e| e.t_ms);
    let facts = outage_lab_engine::checks::RunFacts {
        interrupted,
        leftovers,
        disturbed: outage_lab_engine::lag::disturbance(&lag),
        ..Default::default()
    };
    let mut rows = outage_lab_engine::checks::before(&facts, end_ms);
    rows.extend(checks::judge(scenario, &entries));
    rows.extend(outage_lab_engine::checks::after(&facts));
    let judged = report::Judged {
        measures: checks::measure(scenario, &entries),
        rows,
        wall_ms,
        lag,
    };
    let report = Report::new(scenario, seed, judged);
    let verdicts = (report.expectations.iter()).map(|r| EngineEvent::Verdict {
        name: r.name.clone(),
        passed: r.passed,
        detail: r.detail.clone(),
    });
    let finished = EngineEvent::RunFinished {
        verdict: report.verdict.clone(),
    };
    for event in verdicts.chain([finished]) {
        journal.write(&JournalEntry {
            t_ms: end_ms,
            source: "harness".into(),
            source_pid: None,
            event: event.into(),
        });
    }
    journal.flush()?;
    report::write(run_dir, &report)?;
    crate::page::write(run_dir, &report, &entries)
        .map_err(|e| HarnessError::io(format!("write {}/report.html", run_dir.display()), e))?;
    say(&report.table());
    say(&format!("run directory: {}", run_dir.display()));
    Ok(match interrupted {
        Some(sig) => Ended::Interrupted(sig),
        None => Ended::Judged(report.passed()),
    })
}

//! `outage-lab`: one binary for the user commands (`run`, `validate`) and the hidden role
//! commands the harness spawns as processes (`dns`, `collector`, `agent`, `storage`,
//! `watchdog`). This file only parses and dispatches.

// A binary crate: `pub` marks each module's interface to the rest of the crate; nothing is
// exported, so the workspace's unreachable_pub lint would only add noise here.
#![allow(unreachable_pub)]

mod checks;
mod cli;
mod containment;
mod ctl;
mod experiment;
mod external_agent;
mod fixes;
mod harness;
mod names;
mod plan;
mod roles;
mod scenario;
mod steps;
mod workshop;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ReportArgs, RunArgs, RunSettings, ValidateArgs, WorkshopArgs};
use crate::scenario::Scenario;
use crate::scenario::overrides::Setting;

/// Exit codes: part of the interface, documented in `--help` and the README.
pub(crate) mod exit {
    /// An expectation did not hold.
    pub const EXPECTATION_FAILED: u8 = 1;
    /// Bad input: scenario or flags. Nothing was started.
    pub const BAD_INPUT: u8 = 2;
    /// The harness itself failed.
    pub const HARNESS_FAILED: u8 = 3;
    /// Interrupted by SIGINT or SIGTERM (128 + 2, the shell's convention).
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(&args),
        Command::Report(args) => report(&args),
        Command::Compare(args) => {
            experiment_command(|exe| experiment::compare::command(&args, exe))
        }
        Command::Grid(args) => experiment_command(|exe| experiment::grid::command(&args, exe)),
        Command::Workshop(args) => workshop(args),
        Command::Ctl(args) => ctl::command(&args),
        role => roles::run(role),
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("OUTAGE_LAB_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "info,hickory_server=warn,hickory_proto=warn,hickory_net=warn",
            )
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Reads, parses and validates a scenario with the command line's settings applied.
fn load(path: &std::path::Path, settings: &[Setting]) -> Result<Scenario, String> {
    Scenario::load(path, settings).map_err(|e| e.to_string())
}

/// `--set`, `--fix` and `--servers`, in the order they apply (`--servers` last: it wins).
fn settings(args: &RunSettings) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for arg in &args.set {
        out.push(Setting::parse(arg).map_err(|e| format!("--set {e}"))?);
    }
    for name in &args.fix {
        out.push(Setting::fix(name, fixes::FixName::NAMES).map_err(|e| e.to_string())?);
    }
    out.extend(args.servers.map(Setting::servers));
    Ok(out)
}

fn run(args: RunArgs) -> ExitCode {
    let scenario = match (settings(&args.settings))
        .and_then(|s| load(&args.scenario, &s).map_err(|e| format!("invalid scenario: {e}")))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outage-lab: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let shown = args.scenario.display().to_string();
    match options(&scenario, &shown, &args.settings, args.hosts) {
        Ok(opts) => execute(
            scenario,
            harness::RunOptions {
                token_file: args.token_file,
                ..opts
            },
        ),
        Err(code) => code,
    }
}

/// The 2012 scenario, built in: `workshop` runs it without a checkout.
const SCENARIO_2012: &str = include_str!("../../../fixtures/scenarios/ebs-2012-10-22.yaml");

fn workshop(args: WorkshopArgs) -> ExitCode {
    let loaded = settings(&args.settings).and_then(|s| match &args.scenario {
        Some(path) => load(path, &s),
        None => Scenario::parse_with(SCENARIO_2012, "ebs-2012-10-22.yaml (built in)", &s)
            .map_err(|e| e.to_string()),
    });
    let scenario = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outage-lab: invalid scenario: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let shown = (args.scenario.as_ref())
        .map_or("the 2012 scenario".to_owned(), |p| p.display().to_string());
    match options(&scenario, &shown, &args.settings, None) {
        Ok(mut opts) => {
            opts.workshop = Some(workshop::Options {
                auto: args.auto,
                speed: args.speed,
            });
            execute(scenario, opts)
        }
        Err(code) => code,
    }
}

/// Checks that `scenario` may run here as `settings` ask, and makes the harness's options.
fn options(
    scenario: &Scenario,
    shown: &str,
    settings: &RunSettings,
    hosts: Option<harness::Hosts>,
) -> Result<harness::RunOptions, ExitCode> {
    let refuse = |e: String| {
        eprintln!("outage-lab: refusing to run {shown}: {e}");
        ExitCode::from(exit::BAD_INPUT)
    };
    let memory_limit = match containment::check(scenario, settings.memory_limit) {
        Ok(_) => containment::limit(settings.memory_limit)
            .map(|l| l.bytes)
            .unwrap_or(u64::MAX),
        Err(e) => return Err(refuse(e.to_string())),
    };
    if let Err(e) = external_agent_can_run(scenario, hosts.is_some()) {
        return Err(refuse(e));
    }
    if let Some(addr) = settings
        .serve
        .filter(|a| !a.ip().is_loopback() && hosts.is_none())
    {
        eprintln!(
            "outage-lab: refusing to serve the live view on {addr}: it shows the run to anyone who can reach it; use a loopback address such as 127.0.0.1:8080"
        );
        return Err(ExitCode::from(exit::BAD_INPUT));
    }
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("outage-lab: cannot find my own executable to spawn roles: {e}");
        ExitCode::from(exit::HARNESS_FAILED)
    })?;
    Ok(harness::RunOptions {
        seed: settings.seed,
        memory_limit,
        out: settings.out.clone(),
        exe,
        serve: settings.serve,
        hosts,
        token_file: None,
        workshop: None,
    })
}

/// Runs the harness and turns its outcome into the exit code.
fn execute(scenario: Scenario, opts: harness::RunOptions) -> ExitCode {
    // One thread on purpose: children get PR_SET_PDEATHSIG, which fires when the *thread* that
    // forked them exits; the main thread lives exactly as long as the harness.
    let runtime = match single_threaded_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outage-lab: cannot start a runtime: {e}");
            return ExitCode::from(exit::HARNESS_FAILED);
        }
    };
    let result = runtime.block_on(harness::run(scenario, opts));
    outage_lab_engine::terminal::finish();
    match result {
        Ok(outcome) => {
            println!("\n{}", harness::report::verdict_table(&outcome.report));
            println!("run directory: {}", outcome.run_dir.display());
            if let Some(sig) = outcome.interrupted {
                eprintln!("outage-lab: interrupted by {sig}; every process of the run was stopped");
                ExitCode::from(exit::INTERRUPTED)
            } else if outcome.report.verdict == outage_lab_proto::report::Verdict::Pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::EXPECTATION_FAILED)
            }
        }
        Err(e) => {
            eprintln!("outage-lab: the harness failed: {e}");
            ExitCode::from(exit::HARNESS_FAILED)
        }
    }
}

/// An external agent (`agent.command`) runs here in a mount namespace of its own, which needs
/// privileges; on launcher hosts (`--hosts`) the container's `dns:` does that job.
fn external_agent_can_run(scenario: &Scenario, on_hosts: bool) -> Result<(), String> {
    if scenario.agent.command.is_none() || on_hosts {
        return Ok(());
    }
    external_agent::check_privileges().map_or(Ok(()), Err)
}

/// The runtime every process of outage-lab uses: one thread (see `run` and `roles`). Each
/// caller says what failing to start it means for its command.
fn single_threaded_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs `compare` or `grid` with this binary as every cell's harness.
fn experiment_command(
    run: impl FnOnce(&std::path::Path) -> Result<u8, experiment::ExperimentError>,
) -> ExitCode {
    let ran = std::env::current_exe()
        .map_err(experiment::ExperimentError::OwnExecutable)
        .and_then(|exe| run(&exe));
    match ran {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("outage-lab: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `outage-lab report RUN_DIR`: rebuilds report.html from the run's journal and report.
fn report(args: &ReportArgs) -> ExitCode {
    let dir = &args.run_dir;
    if !dir.is_dir() {
        eprintln!(
            "outage-lab: {} is not a run directory ({}); give the directory `outage-lab run` printed at its end",
            dir.display(),
            if dir.exists() {
                "it is a file"
            } else {
                "no such directory"
            }
        );
        return ExitCode::from(exit::BAD_INPUT);
    }
    match outage_lab_viz::write_report(dir) {
        Ok(path) => {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!("wrote {} ({bytes} bytes)", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outage-lab: cannot build the report: {e}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let mut bad = 0;
    for path in &args.scenarios {
        match load(path, &[]) {
            Ok(s) => println!("{}: ok ({})", path.display(), summary(&s)),
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::BAD_INPUT)
    }
}

/// `ebs-2012-10-22: 12 servers, 3 DNS servers, 4 timeline steps, 12 expectations`, and the
/// fixes that are on. The expectation count is the verdict table's row count.
fn summary(s: &Scenario) -> String {
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let mut text = format!(
        "{}: {}, {}, {}, {}",
        s.name,
        plural(s.servers(), "server"),
        plural(s.dns.servers.len(), "DNS server"),
        plural(s.timeline.len(), "timeline step"),
        plural(checks::plan::planned(s).len(), "expectation"),
    );
    let fixes: Vec<&str> = s.fixes.on().iter().map(|f| f.name()).collect();
    if !fixes.is_empty() {
        text.push_str(&format!("; fixes on: {}", fixes.join(", ")));
    }
    text
}

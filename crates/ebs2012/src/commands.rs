//! The commands the 2012 incident answers (`run`, `workshop`, `validate`, `report`, `compare`,
//! `grid`), from the engine's arguments to an exit code; `incident.rs` hands them to the
//! program.

use std::process::ExitCode;

use outage_lab_engine::args::{ReportArgs, ReportFormat, RunArgs, RunSettings, WorkshopArgs};
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

use crate::containment::ContainmentError;
use crate::scenario::Scenario;
use crate::scenario::overrides::{Setting, SettingError};

use crate::checks;
use crate::containment;
use crate::experiment;
use crate::external_agent;
use crate::harness;
use crate::kinds;
use crate::workshop;
use outage_lab_engine::exit;

/// A `--set` or `--fix` of `run` or `workshop` that cannot be made.
#[derive(Debug, thiserror::Error)]
enum SettingArgError {
    /// A `--set` argument that is not PATH=VALUE.
    #[error("--set {0}")]
    Set(#[source] SettingError),
    /// A `--fix` naming no fix (the message names the flag).
    #[error(transparent)]
    Fix(#[from] SettingError),
}

/// Why `run` or `workshop` did not start, or why its harness failed. [`RunError::exit_code`] is
/// the one place that decides what each means for the exit code.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// `run`: a `--set` or `--fix` that cannot be made.
    #[error(transparent)]
    Setting(#[from] SettingArgError),
    /// `workshop`: a `--set` or `--fix` that cannot be made, which it reports as an invalid
    /// scenario.
    #[error("invalid scenario: {0}")]
    WorkshopSetting(#[source] SettingArgError),
    /// The scenario, with the settings applied, is not valid.
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// The scenario could use more memory than the run may, or the limit is unknown.
    #[error("refusing to run {shown}: {source}")]
    Containment {
        /// The scenario, for people.
        shown: String,
        /// Why.
        source: ContainmentError,
    },
    /// An external agent (`agent.command`) needs privileges this process does not have.
    #[error("refusing to run {shown}: {detail}")]
    ExternalAgent {
        /// The scenario, for people.
        shown: String,
        /// What is missing and what to do (`external_agent::check_privileges`).
        detail: String,
    },
    /// `--serve` on an address others can reach, without launcher hosts.
    #[error(
        "refusing to serve the live view on {addr}: it shows the run to anyone who can reach it; use a loopback address such as 127.0.0.1:8080"
    )]
    PublicLiveView {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// This binary, which every role process runs, cannot be found.
    #[error("cannot find my own executable to spawn roles: {0}")]
    OwnExecutable(#[source] std::io::Error),
    /// The runtime the harness runs on did not start.
    #[error("cannot start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The harness itself failed during the run.
    #[error("the harness failed: {0}")]
    Harness(#[source] HarnessError),
}

impl RunError {
    /// The exit code of a run that failed this way: refused before anything started (2), or
    /// the harness itself failed (3).
    fn exit_code(&self) -> u8 {
        match self {
            Self::Setting(_)
            | Self::WorkshopSetting(_)
            | Self::Scenario(_)
            | Self::Containment { .. }
            | Self::ExternalAgent { .. }
            | Self::PublicLiveView { .. } => exit::BAD_INPUT,
            Self::OwnExecutable(_) | Self::Runtime(_) | Self::Harness(_) => exit::HARNESS_FAILED,
        }
    }
}

/// `outage-lab run`: the exit code of its verdict, or of why it did not run.
pub(crate) fn run_command(args: RunArgs) -> ExitCode {
    finish(run(args))
}

/// `outage-lab workshop`: as `run_command`.
pub(crate) fn workshop_command(args: WorkshopArgs) -> ExitCode {
    finish(workshop(args))
}

/// The exit code of a run that ran (its verdict), or says why it did not and gives that code.
fn finish(result: Result<ExitCode, RunError>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("outage-lab: {e}");
        ExitCode::from(e.exit_code())
    })
}

/// `--set`, `--fix` and `--servers`, in the order they apply (`--servers` last: it wins).
fn settings(args: &RunSettings) -> Result<Vec<Setting>, SettingArgError> {
    let mut out = set_values(&args.set)?;
    for name in &args.fix {
        out.push(Setting::fix(name, kinds::FixName::NAMES)?);
    }
    out.extend(args.servers.map(crate::scenario::overrides::servers));
    Ok(out)
}

/// Each `--set PATH=VALUE`, parsed.
fn set_values(set: &[String]) -> Result<Vec<Setting>, SettingArgError> {
    (set.iter())
        .map(|arg| Setting::parse(arg).map_err(SettingArgError::Set))
        .collect()
}

/// What `outage-lab run` refuses before it starts anything: the message it prints after
/// `outage-lab: ` and the exit code it exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The message, as printed.
    pub message: String,
    /// The exit code: 2, bad input (nothing was started).
    pub exit_code: u8,
}

impl From<RunError> for Refusal {
    fn from(e: RunError) -> Self {
        Self {
            message: e.to_string(),
            exit_code: e.exit_code(),
        }
    }
}

/// Loads a scenario as `outage-lab run FILE --set ...` does, from the file's `bytes` (`shown`
/// names the file) and the `--set` values, and stops there: it starts nothing, and leaves out
/// the checks that depend on this machine (memory limit, privileges). Ok is the line
/// `outage-lab validate` prints for it; Err is the refusal `run` would print. For the fuzz
/// targets (crates/fuzz-targets), which feed it whatever bytes they like.
pub fn load_scenario(bytes: &[u8], shown: &str, set: &[String]) -> Result<String, Refusal> {
    let settings = set_values(set).map_err(RunError::Setting)?;
    let scenario = Scenario::from_bytes(bytes, shown, &settings).map_err(RunError::Scenario)?;
    Ok(format!("{shown}: ok ({})", summary(&scenario)))
}

fn run(args: RunArgs) -> Result<ExitCode, RunError> {
    let scenario = Scenario::load(&args.scenario, &settings(&args.settings)?)?;
    let shown = args.scenario.display().to_string();
    let opts = options(&scenario, &shown, &args.settings, args.hosts)?;
    execute(
        scenario,
        harness::RunOptions {
            token_file: args.token_file,
            ..opts
        },
    )
}

/// The 2012 scenario, built in: `workshop` runs it without a checkout.
const SCENARIO_2012: &str = include_str!("../../../fixtures/scenarios/ebs-2012-10-22.yaml");

fn workshop(args: WorkshopArgs) -> Result<ExitCode, RunError> {
    let settings = settings(&args.settings).map_err(RunError::WorkshopSetting)?;
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path, &settings)?,
        None => Scenario::parse_with(SCENARIO_2012, "ebs-2012-10-22.yaml (built in)", &settings)?,
    };
    let shown = (args.scenario.as_ref())
        .map_or("the 2012 scenario".to_owned(), |p| p.display().to_string());
    let mut opts = options(&scenario, &shown, &args.settings, None)?;
    opts.workshop = Some(workshop::Options {
        auto: args.auto,
        speed: args.speed,
    });
    execute(scenario, opts)
}

/// Checks that `scenario` may run here as `settings` ask, and makes the harness's options.
fn options(
    scenario: &Scenario,
    shown: &str,
    settings: &RunSettings,
    hosts: Option<outage_lab_engine::args::Hosts>,
) -> Result<harness::RunOptions, RunError> {
    let refused = |source| RunError::Containment {
        shown: shown.to_owned(),
        source,
    };
    containment::check(scenario, settings.memory_limit).map_err(refused)?;
    let memory_limit = containment::limit(settings.memory_limit).map_or(u64::MAX, |l| l.bytes);
    // An external agent (`agent.command`) runs here in a mount namespace of its own, which needs
    // privileges; on launcher hosts (`--hosts`) the container's `dns:` does that job.
    if scenario.agent.command.is_some()
        && hosts.is_none()
        && let Some(detail) = external_agent::check_privileges()
    {
        let shown = shown.to_owned();
        return Err(RunError::ExternalAgent { shown, detail });
    }
    if let Some(addr) = settings
        .serve
        .filter(|a| !a.ip().is_loopback() && hosts.is_none())
    {
        return Err(RunError::PublicLiveView { addr });
    }
    let exe = std::env::current_exe().map_err(RunError::OwnExecutable)?;
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

/// Runs the harness; the exit code of its verdict: 0 every expectation held, 1 some did not,
/// 130 interrupted.
fn execute(scenario: Scenario, opts: harness::RunOptions) -> Result<ExitCode, RunError> {
    // One thread on purpose: children get PR_SET_PDEATHSIG, which fires when the *thread* that
    // forked them exits; the main thread lives exactly as long as the harness.
    let runtime = outage_lab_engine::runtime::single_threaded().map_err(RunError::Runtime)?;
    let result = runtime.block_on(harness::run(scenario, opts));
    outage_lab_engine::terminal::finish();
    let outcome = result.map_err(RunError::Harness)?;
    println!("\n{}", harness::report::verdict_table(&outcome.report));
    println!("run directory: {}", outcome.run_dir.display());
    Ok(if let Some(sig) = outcome.interrupted {
        eprintln!("outage-lab: interrupted by {sig}; every process of the run was stopped");
        ExitCode::from(exit::INTERRUPTED)
    } else if outcome.report.verdict == outage_lab_proto::report::Verdict::Pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::EXPECTATION_FAILED)
    })
}

/// Runs `compare` or `grid` with this binary as every cell's harness.
pub(crate) fn experiment_command(
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
pub(crate) fn report(args: &ReportArgs) -> ExitCode {
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
    let done = match args.format {
        ReportFormat::Html => outage_lab_viz::write_report(dir).map(|path| {
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            format!("wrote {} ({bytes} bytes)", path.display())
        }),
        ReportFormat::Markdown => {
            outage_lab_viz::read_report(dir).map(|report| outage_lab_viz::markdown::render(&report))
        }
    };
    match done {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outage-lab: cannot build the report: {e}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

/// `outage-lab validate` of one file: the summary line, or why it is invalid.
pub(crate) fn validate(path: &std::path::Path) -> Result<String, String> {
    match Scenario::load(path, &[]) {
        Ok(s) => Ok(format!("{}: ok ({})", path.display(), summary(&s))),
        Err(e) => Err(e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_run_exits_2_and_a_failed_harness_3() {
        let set = || SettingArgError::Set(SettingError::NoEquals { arg: "x".into() });
        let e = RunError::Setting(set());
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert_eq!(
            e.to_string(),
            r#"--set "x" has no '='; expected PATH=VALUE, e.g. dns.ttl=5s"#
        );
        let e = RunError::WorkshopSetting(set());
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        assert!(
            e.to_string().starts_with(r#"invalid scenario: --set "x""#),
            "{e}"
        );
        let e = RunError::Harness(HarnessError::Start("dns-a".into()));
        assert_eq!(e.exit_code(), exit::HARNESS_FAILED);
        assert_eq!(
            e.to_string(),
            "the harness failed: a process did not start: dns-a"
        );
    }
}

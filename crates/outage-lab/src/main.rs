//! The `outage-lab` program: the command line every incident shares, and the registry of the
//! incidents this build knows. A command about a scenario goes to the incident the scenario
//! names (`incident:`, the first here when it names none), a command about a run directory to
//! the incident of the scenario it kept, and an incident's own commands (its hidden roles) to
//! that incident. The role commands every incident's runs use (the lab's DNS server) are the
//! engine's, added once.

mod cli;

use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use outage_lab_engine::exit;
use outage_lab_engine::incident::{self, Incident};
use outage_lab_engine::roles::EngineRole;

use crate::cli::{Cli, Command};

/// Every incident this build knows, the default first: adding one is one line here.
static INCIDENTS: &[&dyn Incident] = &[
    &outage_lab_ebs2012::EBS_2012,
    &outage_lab_dynamodb2025::DYNAMODB_2025,
];

fn main() -> ExitCode {
    let matches = command_line().get_matches();
    init_logging();
    if let Some(code) = EngineRole::dispatch(&matches) {
        return code;
    }
    if let Some(code) = INCIDENTS.iter().find_map(|i| i.dispatch(&matches)) {
        return code;
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => dispatch(cli.command),
        Err(e) => e.exit(),
    }
}

/// The shared commands, each incident's own beside them, and each incident's names in the
/// help of the flags that take them.
fn command_line() -> clap::Command {
    let mut command = Cli::command();
    for role in EngineRole::commands() {
        command = command.subcommand(role.display_order(100));
    }
    for incident in INCIDENTS {
        for own in incident.commands() {
            if command.find_subcommand(own.get_name()).is_none() {
                // After the shared commands in `--help`.
                command = command.subcommand(own.display_order(100));
            }
        }
    }
    let fixes = names(|i| i.fixes());
    let metrics = names(|i| i.metrics());
    for sub in ["run", "workshop", "compare", "grid"] {
        command = command.mut_subcommand(sub, |c| c.mut_arg("fix", |a| append(a, &fixes)));
    }
    command = command.mut_subcommand("grid", |c| c.mut_arg("metric", |a| append(a, &metrics)));
    command.after_long_help(incidents_known())
}

/// Each incident's names, for a flag's help: `ebs-2012-10-22: a, b, c`.
fn names(of: impl Fn(&dyn Incident) -> Vec<&'static str>) -> String {
    (INCIDENTS.iter())
        .map(|i| format!("{}: {}", i.name(), of(*i).join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn append(arg: clap::Arg, names: &str) -> clap::Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [{names}]"))
}

fn incidents_known() -> String {
    let mut text = String::from("Incidents this build knows (a scenario's `incident:`):");
    for (n, incident) in INCIDENTS.iter().enumerate() {
        let default = if n == 0 { " (the default)" } else { "" };
        text.push_str(&format!(
            "\n  {}{default}: {}",
            incident.name(),
            incident.title()
        ));
    }
    text
}

fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => with_incident(&args.scenario.clone(), |i| i.run(args)),
        Command::Validate(args) => validate(&args.scenarios),
        Command::Report(args) => {
            with_incident(&args.run_dir.join("scenario.yaml"), |i| i.report(&args))
        }
        Command::Compare(args) => with_incident(&args.common.scenario, |i| i.compare(&args)),
        Command::Grid(args) => with_incident(&args.common.scenario, |i| i.grid(&args)),
        Command::Workshop(args) => match args.scenario.clone() {
            Some(scenario) => with_incident(&scenario, |i| i.workshop(args)),
            None => INCIDENTS[0].workshop(args),
        },
    }
}

/// Runs `then` with the incident `scenario` is for; exit 2 when it names none this build knows.
fn with_incident(scenario: &Path, then: impl FnOnce(&dyn Incident) -> ExitCode) -> ExitCode {
    match incident::for_scenario(INCIDENTS, scenario) {
        Ok(incident) => then(incident),
        Err(e) => {
            eprintln!("outage-lab: {e}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

/// `outage-lab validate`: every file, each by its incident; exit 2 if any is invalid.
fn validate(scenarios: &[std::path::PathBuf]) -> ExitCode {
    let mut bad = 0;
    for path in scenarios {
        let checked = incident::for_scenario(INCIDENTS, path)
            .map_err(|e| e.to_string())
            .and_then(|incident| incident.validate(path));
        match checked {
            Ok(line) => println!("{line}"),
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

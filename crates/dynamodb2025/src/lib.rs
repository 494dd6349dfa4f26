//! The AWS us-east-1 outage of 19-20 October 2025 as an outage-lab incident package: a race
//! between DNS enactors empties DynamoDB's endpoint, and the automation cannot repair it.
//!
//! The package holds the incident's scenario ([`scenario`]), its processes' names ([`names`])
//! and hidden role commands ([`roles`]), the run ([`run`]: the lab as processes, the timeline's
//! steps, the journal), its checks ([`checks`]), its report ([`report`] and the page [`page`]), its comparison of fixes ([`compare`]) and its map over settings
//! ([`grid`]). The parts it runs
//! are the role crates' (`dns-automation`, `kv`) and the engine's lab DNS server; the program
//! knows it by one registry line ([`DYNAMODB_2025`]).

pub mod checks;
pub mod compare;
pub mod grid;
pub mod names;
pub mod page;
pub mod report;
pub mod roles;
mod run;
pub mod scenario;

use std::path::Path;
use std::process::ExitCode;

use outage_lab_engine::args::{
    CompareArgs, GridArgs, ReportArgs, ReportFormat, RunArgs, WorkshopArgs,
};
use outage_lab_engine::exit;
use outage_lab_engine::incident::{self, Incident};

use crate::roles::RoleCommand;
pub use crate::scenario::NAME;
use crate::scenario::{FIX_NAMES, Scenario};

/// The AWS us-east-1 outage of 19-20 October 2025.
#[derive(Debug)]
pub struct Dynamodb2025;

/// The one value of [`Dynamodb2025`], for the program's registry.
pub static DYNAMODB_2025: Dynamodb2025 = Dynamodb2025;

impl Incident for Dynamodb2025 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "the AWS us-east-1 outage of 19-20 October 2025: a slowed DNS enactor and another's \
         clean-up race, DynamoDB's endpoint answers no address, and the automation cannot \
         repair it; then EC2's lease manager collapses under its own recovery"
    }

    fn fixes(&self) -> Vec<&'static str> {
        FIX_NAMES.to_vec()
    }

    fn metrics(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn run(&self, args: RunArgs) -> ExitCode {
        run::command(args)
    }

    fn workshop(&self, _: WorkshopArgs) -> ExitCode {
        not_yet("workshop")
    }

    fn validate(&self, path: &Path) -> Result<String, String> {
        let (s, _) = Scenario::load(path).map_err(|e| e.to_string())?;
        let leases = match &s.leases {
            Some(l) => {
                let launching = (l.launches.as_ref()).map_or(String::new(), |c| {
                    format!(" and {} launching customers", c.customers)
                });
                format!(
                    ", a lease manager for {} servers{launching}",
                    l.servers.count
                )
            }
            None => String::new(),
        };
        let mut line = format!(
            "{}: ok ({}: {} DNS servers, {} enactors{leases}, {} timeline steps, {} expectations)",
            path.display(),
            s.name,
            s.dns.servers,
            s.automation.enactors,
            s.timeline.len(),
            checks::planned(&s)
        );
        let fixes = s.fixes.on();
        if !fixes.is_empty() {
            line = format!(
                "{}; fixes on: {})",
                line.trim_end_matches(')'),
                fixes.join(", ")
            );
        }
        Ok(line)
    }

    fn report(&self, args: &ReportArgs) -> ExitCode {
        let done = match args.format {
            ReportFormat::Html => page::rebuild(&args.run_dir).map(|(path, skipped)| {
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                let skipped = match skipped {
                    0 => String::new(),
                    n => format!("; {n} journal lines could not be read and are left out"),
                };
                format!("wrote {} ({bytes} bytes){skipped}", path.display())
            }),
            ReportFormat::Markdown => report::read(&args.run_dir).map(|r| r.markdown()),
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

    fn compare(&self, args: &CompareArgs) -> ExitCode {
        compare::command(args)
    }

    fn grid(&self, args: &GridArgs) -> ExitCode {
        grid::command(args)
    }

    fn commands(&self) -> Vec<clap::Command> {
        incident::own_commands::<RoleCommand>()
    }

    fn dispatch(&self, matches: &clap::ArgMatches) -> Option<ExitCode> {
        incident::dispatch_own(matches, roles::run)
    }
}

/// A command this package does not answer yet: said plainly, exit 2, nothing started.
fn not_yet(command: &str) -> ExitCode {
    eprintln!(
        "outage-lab: `{command}` is not available for {NAME} scenarios yet; `run`, `compare`, `grid`, `validate` and `report` are"
    );
    ExitCode::from(exit::BAD_INPUT)
}

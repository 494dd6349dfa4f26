//! The 2012 incident as the program sees it: each command the engine's `Incident` names, and
//! the commands it adds (`ctl`, the hidden roles and the launcher).

use std::path::Path;
use std::process::ExitCode;

use outage_lab_engine::args::{CompareArgs, GridArgs, ReportArgs, RunArgs, WorkshopArgs};
use outage_lab_engine::incident::{self, Incident};

use crate::cli::Own;
use crate::commands;
use crate::experiment::metrics::Metric;
use crate::kinds::FixName;

/// The AWS EBS outage of 22 October 2012.
#[derive(Debug)]
pub struct Ebs2012;

/// The one value of [`Ebs2012`], for the program's registry.
pub static EBS_2012: Ebs2012 = Ebs2012;

impl Incident for Ebs2012 {
    fn name(&self) -> &'static str {
        "ebs-2012-10-22"
    }

    fn title(&self) -> &'static str {
        "the AWS EBS outage of 22 October 2012: a DNS update that missed some servers, agents \
         that leaked behind them, an alarm that stayed silent, volumes stuck for want of \
         capacity"
    }

    fn fixes(&self) -> Vec<&'static str> {
        FixName::NAMES.to_vec()
    }

    fn metrics(&self) -> Vec<&'static str> {
        Metric::NAMES.to_vec()
    }

    fn run(&self, args: RunArgs) -> ExitCode {
        commands::run_command(args)
    }

    fn workshop(&self, args: WorkshopArgs) -> ExitCode {
        commands::workshop_command(args)
    }

    fn validate(&self, path: &Path) -> Result<String, String> {
        commands::validate(path)
    }

    fn report(&self, args: &ReportArgs) -> ExitCode {
        commands::report(args)
    }

    fn compare(&self, args: &CompareArgs) -> ExitCode {
        commands::experiment_command(|exe| crate::experiment::compare::command(args, exe))
    }

    fn grid(&self, args: &GridArgs) -> ExitCode {
        commands::experiment_command(|exe| crate::experiment::grid::command(args, exe))
    }

    fn commands(&self) -> Vec<clap::Command> {
        incident::own_commands::<Own>()
    }

    fn dispatch(&self, matches: &clap::ArgMatches) -> Option<ExitCode> {
        incident::dispatch_own(matches, |own| match own {
            Own::Ctl(args) => crate::ctl::command(&args),
            Own::Role(role) => crate::roles::run(role),
        })
    }
}

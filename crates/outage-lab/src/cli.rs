//! The command line every incident shares. Doc comments here are the `--help` text; each
//! incident's own names (its fixes, its metrics) and its own commands are added to it when the
//! program starts (`main.rs`).

use clap::{Parser, Subcommand};
use outage_lab_engine::args::{
    CompareArgs, GridArgs, ReportArgs, RunArgs, ValidateArgs, WorkshopArgs,
};

/// Reproduce famous cloud outages with real processes on this machine.
///
/// A run starts an incident's fleet as real processes on loopback addresses (DNS servers,
/// services, clients, monitors), breaks it the way the outage began, lets the failure follow
/// from its mechanism, and judges what happened from what the processes said and what the
/// kernel measured. It ends with a verdict table and a run directory.
///
/// Exit codes: 0 every expectation held; 1 an expectation failed; 2 bad input (scenario or
/// flags), nothing started; 3 the harness itself failed (a process would not start, a fault
/// could not be injected); 130 interrupted (SIGINT/SIGTERM), everything stopped.
#[derive(Debug, Parser)]
#[command(
    name = "outage-lab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands every incident answers.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a scenario: start the fleet, inject the faults, check the expectations.
    ///
    /// Example: outage-lab run fixtures/scenarios/ebs-2012-10-22.yaml --servers 30 --seed 7
    ///
    /// Your own agent in place of the built-in one: `agent: { command: [...] }` in the scenario
    /// (docs/src/ci.md). Each copy then resolves through its lab DNS server via its own
    /// /etc/resolv.conf, in a private mount namespace: that needs root (CAP_SYS_ADMIN and
    /// CAP_NET_BIND_SERVICE); without it the run exits 2 before starting anything.
    ///
    /// Example: outage-lab run fixtures/scenarios/agents/hoarder.yaml   (as root; exits 1)
    Run(RunArgs),
    /// Check scenario files without starting anything (exit 0 valid, 2 invalid).
    ///
    /// Example: outage-lab validate fixtures/scenarios/*.yaml
    Validate(ValidateArgs),
    /// Rebuild report.html of a run from its journal.jsonl and report.json, or print its
    /// summary as Markdown.
    ///
    /// Every run writes report.html at its end; this rebuilds it, e.g. after an upgrade of
    /// outage-lab or for a run that was copied from CI. The page is one self-contained file (inline
    /// SVG plots, no script, nothing fetched): open it in any browser, even offline.
    /// `--format markdown` prints the verdict table as GitHub-flavoured Markdown instead and
    /// writes nothing: append it to a pull request, or to a CI job's summary
    /// (>> "$GITHUB_STEP_SUMMARY").
    ///
    /// Example: outage-lab report runs/ebs-2012-10-22-20261123T234650Z-seed5
    ///
    /// Example: outage-lab report runs/ebs-2012-10-22-20261123T234650Z-seed5 --format markdown
    Report(ReportArgs),
    /// Compare the fixes: the scenario with no fix, each fix alone and all together, each over
    /// several seeds, side by side.
    ///
    /// Every cell is an ordinary run with its own run directory under --out; they run in
    /// parallel as memory and cores allow. Prints a table (median and range over the seeds of
    /// each metric) and one line per fix, and writes compare.html, compare.json and
    /// compare.csv. Exit 0 when every cell ran, 1 when an --expect does not hold, 2 for bad
    /// input (nothing started), 3 when a cell could not run, 130 when interrupted.
    ///
    /// Example: outage-lab compare fixtures/scenarios/ebs-2012-10-22.yaml --seeds 3
    Compare(CompareArgs),
    /// Sweep one or two scenario fields over values and map one metric over the grid.
    ///
    /// Writes grid.html (a heat map), grid.json and grid.csv; each cell is an ordinary run
    /// whose line says how to re-run it alone. Exit codes as for compare.
    ///
    /// Example: outage-lab grid fixtures/scenarios/ebs-2012-10-22.yaml
    ///   --vary volumes.placement_fill=0.375,0.625,0.875 --vary watchdog.aggregate.threshold=0.9,0.95
    Grid(GridArgs),
    /// Step through an outage live, for a room: the run stops at each link of the causal
    /// chain and waits for the facilitator.
    ///
    /// At each stop every process that acts on its own is frozen (SIGSTOP; the lab clock
    /// holds), and the terminal shows what this run shows, what happened in the real outage,
    /// every monitor side by side, the commands to look for yourself (dig, curl) and a
    /// question. Enter, `outage-lab ctl RUN_DIR next` or the live page's Next button goes on.
    /// Participants act with `outage-lab ctl`; the run ends with the room's time to detect and
    /// to mitigate beside the real outage's. docs/src/workshop.md is the facilitator's guide.
    /// Exit codes as for run.
    ///
    /// Example: outage-lab workshop --serve
    ///
    /// Example: outage-lab workshop --auto 20 --speed 0.5   (a hallway screen)
    Workshop(WorkshopArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use outage_lab_engine::args::ReportFormat;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_scenario_and_overrides() {
        let cli = Cli::try_parse_from([
            "outage-lab",
            "run",
            "s.yaml",
            "--seed",
            "7",
            "--servers",
            "30",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.settings.seed, Some(7));
        assert_eq!(args.settings.servers, Some(30));
    }

    #[test]
    fn serve_takes_an_optional_address() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            let Command::Run(args) = cli.command else {
                panic!("not run")
            };
            args.settings.serve
        };
        assert_eq!(parse(&["outage-lab", "run", "s.yaml"]), None);
        assert_eq!(
            parse(&["outage-lab", "run", "s.yaml", "--serve"]),
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        assert_eq!(
            parse(&["outage-lab", "run", "--serve", "127.0.0.2:8080", "s.yaml"]),
            Some("127.0.0.2:8080".parse().expect("addr"))
        );
    }

    #[test]
    fn report_rebuilds_the_html_unless_asked_for_markdown() {
        let format = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Report(args)) => Some(args.format),
            _ => None,
        };
        let html = format(&["outage-lab", "report", "d"]);
        assert_eq!(html, Some(ReportFormat::Html));
        let markdown = format(&["outage-lab", "report", "d", "--format", "markdown"]);
        assert_eq!(markdown, Some(ReportFormat::Markdown));
        assert_eq!(
            format(&["outage-lab", "report", "d", "--format", "pdf"]),
            None
        );
    }

    #[test]
    fn a_fleet_of_zero_servers_is_refused_by_the_parser() {
        let err = Cli::try_parse_from(["outage-lab", "run", "s.yaml", "--servers", "0"])
            .expect_err("refused");
        assert_eq!(err.exit_code(), 2);
    }
}

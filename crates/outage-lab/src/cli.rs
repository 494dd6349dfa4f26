//! The command line. Doc comments here are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Reproduce the AWS EBS outage of 22 October 2012 with real processes on this machine.
///
/// A run starts DNS servers, collectors, storage servers with their reporting agents and a
/// watchdog as real processes on loopback addresses, replaces the collector, lets the DNS update
/// reach only some DNS servers, and watches the agents behind the stale ones leak memory while the
/// 2012-style aggregate alarm stays silent. It ends with a verdict table and a run directory.
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
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// User commands and the hidden role commands the harness spawns.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Step through the 2012 outage live, for a room: the run stops at each link of the causal
    /// chain and waits for the facilitator.
    ///
    /// The links: the collector replaced, DNS updated on some servers, the first failed report,
    /// the first leak alarm, the aggregate alarm silent past its threshold, the first server
    /// that cannot serve I/O, the first stuck volume, the first failover without capacity, the
    /// repair, the recovery. At each stop every process that acts on its own is frozen
    /// (SIGSTOP; the lab clock holds), and the terminal shows what this run shows, what happened
    /// in 2012, every monitor side by side, the commands to look for yourself (dig, curl) and a
    /// question. Enter, `outage-lab ctl RUN_DIR next` or the live page's Next button goes on.
    /// Participants act with `outage-lab ctl` (repair DNS, restart agents); the run ends with the
    /// room's time to detect and to mitigate beside 2012's. docs/src/workshop.md is the
    /// facilitator's guide. Exit codes as for run.
    ///
    /// Example: outage-lab workshop --serve
    ///
    /// Example: outage-lab workshop --auto 20 --speed 0.5   (a hallway screen)
    Workshop(WorkshopArgs),
    /// Act on a live workshop through its control API, with the run's token.
    ///
    /// Exit 0 done; 1 the run refused (the answer says why, e.g. not at a stop); 2 bad input or
    /// no live workshop in RUN_DIR.
    ///
    /// Example: outage-lab ctl runs/ebs-2012-10-22-20261129T120000Z-seed20121022 repair dns-c
    Ctl(CtlArgs),
    /// The hidden role commands the harness spawns, and the launcher.
    #[command(flatten)]
    Role(crate::roles::RoleCommand),
}

/// `outage-lab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML), e.g. fixtures/scenarios/ebs-2012-10-22.yaml.
    pub scenario: PathBuf,
    #[command(flatten)]
    pub settings: RunSettings,
    /// Run the fleet on launcher hosts (`outage-lab host`, one per container) instead of as
    /// child processes here. `dns:PORT`: find them through the engine's DNS (`tasks.<service>`,
    /// else `<service>`) on PORT, as the compose and Swarm deployments do (see
    /// compose/compose.yaml), with the token from --token-file. A directory: the launchers
    /// registered in that state directory, which every container mounts. With it, --serve may
    /// bind a container address (publish it on the machine's loopback only).
    #[arg(long, value_name = "dns:PORT|STATE_DIR")]
    pub hosts: Option<crate::launchers::Hosts>,
    /// The admin token the launchers found by DNS share, from a file (a Docker secret:
    /// /run/secrets/NAME).
    #[arg(long, value_name = "FILE", requires = "hosts")]
    pub token_file: Option<PathBuf>,
}

/// `outage-lab workshop`.
#[derive(Debug, Args)]
pub struct WorkshopArgs {
    /// The scenario file (YAML) [default: the 2012 scenario, built in].
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub settings: RunSettings,
    /// Go on by itself after SECONDS at each stop, without input (a screen in a hallway, a
    /// recording). Enter or Next still go on sooner.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub auto: Option<std::time::Duration>,
    /// Slow motion: 0.25 runs the lab a quarter of the wall time (a second, then a hold of
    /// three, every process frozen in between). At most 1: the processes run in real time and
    /// cannot go faster; for a quick dry run use --auto 0.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
}

/// A flag's value that is not one; clap prints it after the flag and the value, and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// `--auto` that is not a number.
    #[error("expected seconds, e.g. 20 or 2.5; got {text:?}")]
    NotSeconds {
        /// The value as given.
        text: String,
    },
    /// `--auto` outside 0 to 3600 seconds.
    #[error("expected 0 to 3600 seconds, got {secs}")]
    SecondsOutOfRange {
        /// The value.
        secs: f64,
    },
    /// `--speed` that is not a number.
    #[error("expected a number such as 0.25, got {text:?}")]
    NotASpeed {
        /// The value as given.
        text: String,
    },
    /// `--speed` above 1.
    #[error(
        "{speed} is faster than real time: the lab's processes run in real time; for a quick dry run use --auto 0"
    )]
    FasterThanRealTime {
        /// The value.
        speed: f64,
    },
    /// `--speed` below 0.05, or not finite.
    #[error("expected 0.05 to 1, got {speed}")]
    SpeedOutOfRange {
        /// The value.
        speed: f64,
    },
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, ValueError> {
    let secs: f64 = s
        .parse()
        .map_err(|_| ValueError::NotSeconds { text: s.to_owned() })?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(ValueError::SecondsOutOfRange { secs });
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn parse_speed(s: &str) -> Result<f64, ValueError> {
    let speed: f64 = s
        .parse()
        .map_err(|_| ValueError::NotASpeed { text: s.to_owned() })?;
    if speed > 1.0 {
        return Err(ValueError::FasterThanRealTime { speed });
    }
    if speed < 0.05 || !speed.is_finite() {
        return Err(ValueError::SpeedOutOfRange { speed });
    }
    Ok(speed)
}

/// `outage-lab ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The run directory of a live workshop (printed when it starts).
    pub run_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: CtlAction,
    /// Who acts, as the journal records it [default: $USER].
    #[arg(long = "as", value_name = "NAME", global = true)]
    pub who: Option<String>,
}

/// What `ctl` does.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Where the run is: the current stop, the monitors, what was done (JSON with --json).
    Status {
        /// Print the control API's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Go on from the current stop.
    Next,
    /// Point collector.lab.internal at the replacement on these DNS servers (none: all).
    Repair {
        /// DNS server names (dns-a, ...), or all.
        dns: Vec<String>,
    },
    /// Restart these storage servers' agents (frees what they leaked).
    Restart {
        /// Server ids (s003 ...), or all.
        #[arg(required = true)]
        servers: Vec<String>,
    },
}

/// What `run` and `workshop` share.
#[derive(Debug, Args)]
pub struct RunSettings {
    /// Seed for every random choice (overrides the scenario's `seed`); rerun with it to repeat.
    #[arg(long, env = "OUTAGE_LAB_SEED")]
    pub seed: Option<u64>,
    /// Number of storage servers (overrides `fleet.servers`); each is two processes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub servers: Option<u32>,
    /// Override one field of the scenario by its dotted path, checked like the file (repeat
    /// for more). VALUE is YAML: a number, a size or duration with its unit, a list, a mapping.
    /// The run directory's scenario.yaml is the scenario as run, with the settings named.
    /// Examples: --set volumes.placement_fill=0.5  --set dns.ttl=5s
    ///           --set fixes.leak_alarm_action.reaction=1s
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Turn one of the fixes AWS announced on, with its defaults (repeat for more):
    /// leak_alarm_action, agent_memory_limit, dns_verification, agent_bounded_retry,
    /// spare_capacity, cache_aware_aggregate_alarm, per_customer_throttling (scenarios with
    /// customer accounts). Same as --set fixes.NAME={}.
    #[arg(long, value_name = "NAME")]
    pub fix: Vec<String>,
    /// Most memory the run's processes may use; the run is refused (exit 2) if its worst case
    /// is larger, and stopped if the real total crosses it. [default: 75% of MemAvailable]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<outage_lab_proto::ByteSize>,
    /// Run directory for the journal, report, configs and logs
    /// [default: runs/<scenario>-<UTC time>-seed<seed>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve a live view of the run on this loopback address while it runs: the fleet, who is
    /// stale, memory climbing, alarms and stuck volumes, updated as events arrive. The URL is
    /// printed at start. Without ADDR: 127.0.0.1 on a free port. Non-loopback addresses are
    /// refused. Example: --serve 127.0.0.1:8080
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub serve: Option<SocketAddr>,
}

/// What `compare` and `grid` share.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The scenario file (YAML).
    pub scenario: PathBuf,
    /// Seeds per variant or grid point: the scenario's seed, then the next ones.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub seeds: u32,
    /// Most cells at once [default: as many as the memory limit fits; within it, another cell
    /// starts only while the CPU has room, and a cell whose own lag shows the machine
    /// fell behind is run again, never counted].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    /// Where the summaries and every cell's run directory go
    /// [default: runs/<compare|grid>-<scenario>-<UTC time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Memory all cells together may use [default: 75% of MemAvailable].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<outage_lab_proto::ByteSize>,
}

/// `outage-lab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// A fix to compare (repeat for more) [default: every fix that applies to the scenario].
    #[arg(long, value_name = "NAME")]
    pub fix: Vec<String>,
    /// An assertion for CI: 'VARIANT prevents stuck_volumes' (a fix's name, or 'all fixes');
    /// exit 1 when it does not hold on every seed.
    #[arg(long, value_name = "ASSERTION")]
    pub expect: Vec<String>,
}

/// `outage-lab grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// An axis: PATH=VALUES, a list (volumes.placement_fill=0.5,0.75,0.875) or a range with a
    /// count (0.1..0.5:5); once or twice.
    #[arg(long, value_name = "PATH=VALUES", required = true)]
    pub vary: Vec<String>,
    /// The metric to map: stuck_peak, stuck_volume_seconds, error_rate, writes_lost,
    /// first_leak_alarm_s, first_aggregate_alarm_s (the 2012 alarm), first_cache_aware_alarm_s,
    /// leaking_until_s, bystander_api_success.
    #[arg(long, default_value = "stuck_peak")]
    pub metric: String,
    /// Set a field in every cell (as for run; repeat for more).
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Turn a fix on in every cell (as for run).
    #[arg(long, value_name = "NAME")]
    pub fix: Vec<String>,
}

/// `outage-lab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (the one `outage-lab run` printed at its end, or its --out); it must
    /// hold report.json, and journal.jsonl for the html format. report.html is written beside
    /// them.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// What to make of the run.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
}

/// What `outage-lab report` makes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Rebuild report.html in the run directory from its journal and report.
    Html,
    /// Print a GitHub-flavoured Markdown summary of report.json on stdout: the scenario, seed,
    /// verdict and verdict table.
    Markdown,
}

/// `outage-lab validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

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

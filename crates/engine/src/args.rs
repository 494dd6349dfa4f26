//! The arguments of the commands every incident answers (`run`, `validate`, `report`,
//! `compare`, `grid`, `workshop`), as the program parses them and an incident receives them.
//! Doc comments here are the `--help` text; the program adds each incident's own names (its
//! fixes, its metrics) to it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use outage_lab_proto::ByteSize;

pub use crate::supervisor::launcher::Hosts;

/// `outage-lab run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (YAML); its `incident:` names the incident [default: the first this
    /// build knows].
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
    pub hosts: Option<Hosts>,
    /// The admin token the launchers found by DNS share, from a file (a Docker secret:
    /// /run/secrets/NAME).
    #[arg(long, value_name = "FILE", requires = "hosts")]
    pub token_file: Option<PathBuf>,
}

/// `outage-lab workshop`.
#[derive(Debug, Args)]
pub struct WorkshopArgs {
    /// The scenario file (YAML) [default: the first incident's own scenario, built in].
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

/// What `run` and `workshop` share.
#[derive(Debug, Args)]
pub struct RunSettings {
    /// Seed for every random choice (overrides the scenario's `seed`); rerun with it to repeat.
    #[arg(long, env = "OUTAGE_LAB_SEED")]
    pub seed: Option<u64>,
    /// Number of servers in the fleet, for an incident that has a fleet of servers (overrides
    /// `fleet.servers`); an incident without one refuses it (exit 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub servers: Option<u32>,
    /// Override one field of the scenario by its dotted path, checked like the file (repeat
    /// for more). VALUE is YAML: a number, a size or duration with its unit, a list, a mapping.
    /// The run directory's scenario.yaml is the scenario as run, with the settings named.
    /// Examples: --set dns.ttl=5s  --set duration=60s
    #[arg(long, value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Turn one of the incident's fixes on, with its defaults (repeat for more). Same as
    /// --set fixes.NAME={}.
    #[arg(long, value_name = "NAME")]
    pub fix: Vec<String>,
    /// Most memory the run's processes may use; the run is refused (exit 2) if its worst case
    /// is larger, and stopped if the real total crosses it. [default: 75% of MemAvailable]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<ByteSize>,
    /// Run directory for the journal, report, configs and logs
    /// [default: runs/<scenario>-<UTC time>-seed<seed>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve a live view of the run on this loopback address while it runs: the fleet and what
    /// the incident watches, updated as events arrive. The URL is
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
    /// Most cells at once [default: the incident's: as many as the memory limit fits, or a
    /// fixed few for runs that take no memory limit; within it, another cell starts only while
    /// the CPU has room, and a cell whose own lag shows the machine fell behind is run again,
    /// never counted].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    /// Where the summaries and every cell's run directory go
    /// [default: runs/<compare|grid>-<scenario>-<UTC time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Memory all cells together may use, for incidents whose runs take a memory limit
    /// [default: 75% of MemAvailable].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<ByteSize>,
}

/// `outage-lab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// A fix to compare (repeat for more) [default: every fix that applies to the scenario].
    #[arg(long, value_name = "NAME")]
    pub fix: Vec<String>,
    /// An assertion for CI: 'VARIANT prevents EXPECTATION' (a fix's name, or 'all fixes');
    /// exit 1 when it does not hold on every seed.
    #[arg(long, value_name = "ASSERTION")]
    pub expect: Vec<String>,
}

/// `outage-lab grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// An axis: PATH=VALUES, a list (dns.ttl=1s,5s,30s) or a range with a count
    /// (0.1..0.5:5); once or twice.
    #[arg(long, value_name = "PATH=VALUES", required = true)]
    pub vary: Vec<String>,
    /// The metric to map, one of the incident's [default: its first].
    #[arg(long)]
    pub metric: Option<String>,
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

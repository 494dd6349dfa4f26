//! Experiments: many ordinary runs of one scenario, compared. `compare` runs the fixes side by
//! side ([`compare`]); `grid` sweeps one or two fields over values ([`grid`]). Every cell is an
//! `outage-lab run` of its own ([`runner`]) with its own address block and run directory under
//! the experiment's, and each can be re-run alone with the command its line prints.
//!
//! How many cells run at once: the memory containment's worst case of one cell decides how many
//! fit under the memory limit (`--jobs` caps it further), and within that the engine's
//! admission measures rather than guesses: another cell starts while the CPU is under its bound,
//! and every cell measures its own lag, so one whose timing suffered comes back *disturbed*, is
//! kept as evidence, run again, and never counted.

pub mod compare;
pub mod grid;
pub mod metrics;
pub mod page;
pub mod runner;

use std::path::{Path, PathBuf};

use outage_lab_engine::located::ScenarioError;
use outage_lab_proto::ByteSize;

use outage_lab_engine::experiment::grid::GridError;
pub use outage_lab_engine::experiment::summary::{self, exit_code, not_counted, pace_line};

use self::runner::{Cell, Results};
use crate::containment::{self, ContainmentError};
use crate::scenario::Scenario;
use crate::scenario::overrides::{Setting, SettingError};

/// Why an experiment did not run, or why one of its cells could not. [`Self::exit_code`] is the
/// one place that decides what each means for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A `--set` argument that is not a setting.
    #[error("--set {0}")]
    Set(#[source] SettingError),
    /// A `--fix` naming no fix, or a grid point that is not a setting.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// A grid's `--vary` or `--metric` that is wrong, or its summaries not written.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// An `--expect` that is not `VARIANT prevents stuck_volumes`.
    #[error(
        "--expect {text:?}: expected 'VARIANT prevents stuck_volumes', e.g. 'dns_verification prevents stuck_volumes'"
    )]
    Expect {
        /// The assertion as given.
        text: String,
    },
    /// The scenario, or a cell's settings applied to it, is not valid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The memory limit is unknown.
    #[error(transparent)]
    Containment(#[from] ContainmentError),
    /// Not even one cell fits under the memory limit.
    #[error(
        "one cell's worst case ({worst}) is over the memory limit ({}, {}); lower the fleet or raise --memory-limit knowingly",
        ByteSize(.limit.bytes),
        .limit.from
    )]
    CellOverLimit {
        /// The largest worst case of a cell.
        worst: ByteSize,
        /// The experiment's limit.
        limit: containment::Limit,
    },
    /// This binary, which runs the cells, cannot be found.
    #[error("cannot find my own executable to run the cells: {0}")]
    OwnExecutable(#[source] std::io::Error),
    /// The runtime the cells run on did not start.
    #[error("cannot start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A directory or file could not be created (the experiment's, a cell's log).
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        /// What was to be created.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A summary could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The summary's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A summary could not be made into JSON.
    #[error("{0}")]
    Encode(#[source] serde_json::Error),
    /// A finished cell's report could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    ReadReport {
        /// Its report.json.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A finished cell's report is not one.
    #[error("{} is not a report: {source}", .path.display())]
    NotAReport {
        /// Its report.json.
        path: PathBuf,
        /// What the JSON reader found.
        source: serde_json::Error,
    },
    /// A finished cell's journal could not be read.
    #[error("cannot read journal.jsonl: {source}")]
    ReadJournal {
        /// The OS error.
        source: std::io::Error,
    },
}

impl ExperimentError {
    /// The exit code of an experiment that failed this way: bad input refused before anything
    /// started (2), or the harness itself failed (3). Cells that could not run end an experiment
    /// that did run with 3 too (see [`exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Set(_)
            | Self::Setting(_)
            | Self::Expect { .. }
            | Self::Scenario(_)
            | Self::Containment(_)
            | Self::CellOverLimit { .. } => crate::exit::BAD_INPUT,
            Self::Grid(e) if e.is_bad_input() => crate::exit::BAD_INPUT,
            Self::Grid(_)
            | Self::OwnExecutable(_)
            | Self::Runtime(_)
            | Self::Create { .. }
            | Self::Write { .. }
            | Self::Encode(_)
            | Self::ReadReport { .. }
            | Self::NotAReport { .. }
            | Self::ReadJournal { .. } => crate::exit::HARNESS_FAILED,
        }
    }
}

/// What every experiment shares: the scenario, where it writes, the seeds, and the pace.
#[derive(Debug)]
pub struct Experiment {
    /// The scenario file every cell runs.
    pub scenario: PathBuf,
    /// Where everything goes: `cells/` (one run directory per cell) and the summaries.
    pub out: PathBuf,
    /// The seeds each variant or grid point runs with.
    pub seeds: Vec<u64>,
    /// Cells at once.
    pub jobs: usize,
    /// Each cell's `--memory-limit`.
    pub memory_limit_each: u64,
}

impl Experiment {
    /// Checks every cell's settings against the scenario (bad input is refused before anything
    /// starts) and decides how many cells run at once.
    pub fn plan(
        scenario: PathBuf,
        out: Option<PathBuf>,
        kind: &str,
        seeds: u32,
        jobs: Option<usize>,
        memory_limit: Option<ByteSize>,
        cell_settings: &[Vec<Setting>],
    ) -> Result<Self, ExperimentError> {
        let mut worst = 0;
        let mut base = None;
        for settings in cell_settings {
            let s = Scenario::load(&scenario, settings)?;
            worst = worst.max(containment::worst_case(&s).total());
            base.get_or_insert(s.seed);
        }
        let limit = containment::limit(memory_limit)?;
        let fit = usize::try_from(limit.bytes / worst.max(1)).unwrap_or(usize::MAX);
        if fit == 0 {
            return Err(ExperimentError::CellOverLimit {
                worst: ByteSize(worst),
                limit,
            });
        }
        let limit = limit.bytes;
        let jobs = jobs.unwrap_or(fit).min(fit).max(1);
        let base = base.unwrap_or(1);
        let out = out.unwrap_or_else(|| summary::default_out(kind, &scenario));
        Ok(Self {
            scenario,
            out,
            seeds: summary::seeds(base, seeds),
            jobs,
            memory_limit_each: limit / jobs as u64,
        })
    }

    /// Writes `name` into the experiment's directory; returns its path.
    pub fn write(&self, name: &str, body: &str) -> Result<PathBuf, ExperimentError> {
        std::fs::create_dir_all(&self.out).map_err(|source| ExperimentError::Create {
            path: self.out.clone(),
            source,
        })?;
        let path = self.out.join(name);
        match std::fs::write(&path, body) {
            Ok(()) => Ok(path),
            Err(source) => Err(ExperimentError::Write { path, source }),
        }
    }

    /// The engine's runner for this experiment's cells, after one line on how they will run.
    fn runner<'a>(&'a self, exe: &'a Path) -> runner::Runner<'a> {
        eprintln!(
            "{} seeds each, at most {} cells at once (fewer while the CPU is busy), each under --memory-limit {:.1}GiB; results in {}",
            self.seeds.len(),
            self.jobs,
            self.memory_limit_each as f64 / f64::from(1u32 << 30),
            self.out.display()
        );
        runner::Runner {
            exe,
            scenario: &self.scenario,
            jobs: self.jobs,
            memory_limit_each: Some(self.memory_limit_each),
        }
    }
}

/// One row per cell: its group, seed, status, every metric, and the command that re-runs it.
pub fn csv(exp: &Experiment, cells: &[Cell], results: &Results) -> String {
    outage_lab_engine::experiment::grid::csv::<metrics::Metric>(&exp.scenario, cells, results)
}

/// Runs the cells as planned, on the engine's runner.
pub fn run_blocking(
    exp: &Experiment,
    exe: &Path,
    cells: &[Cell],
) -> Result<Results, ExperimentError> {
    exp.runner(exe)
        .run_blocking(cells)
        .map_err(ExperimentError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_exits_2_and_a_failure_of_the_harness_3() {
        let bad = ExperimentError::from(GridError::TooManyAxes { count: 3 });
        assert_eq!(bad.exit_code(), crate::exit::BAD_INPUT);
        assert_eq!(bad.to_string(), "3 --vary axes; a grid has one or two");
        let failed = ExperimentError::Runtime(std::io::Error::other("no threads"));
        assert_eq!(failed.exit_code(), crate::exit::HARNESS_FAILED);
        assert_eq!(failed.to_string(), "cannot start a runtime: no threads");
    }
}

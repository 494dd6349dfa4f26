//! Runs the cells of an experiment (`compare`, `grid`): each an ordinary `outage-lab run` of its
//! own (own address block, own run directory), as a child of this process, several at once.
//! What a finished cell came to is read by the incident's [`CellMetrics`]; the runner knows no
//! metric.
//!
//! The children die with this process (`PR_SET_PDEATHSIG`), and SIGINT or SIGTERM stops them
//! the way a person would stop one run (SIGTERM: each harness stops its fleet and exits), waits
//! for them, and keeps what the finished cells found. On a terminal a bar shows the cells done
//! and an ETA; in a pipe each finished cell is one plain line.

pub mod admission;
pub mod grid;
pub mod summary;

pub use admission::Admission;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// What an incident reads from a finished cell's run directory: the numbers an experiment
/// compares.
pub trait CellMetrics: Clone + Serialize + Sized {
    /// Reads a finished run's directory.
    fn read(run_dir: &Path) -> Result<Self, String>;

    /// What the cell came to in a few words, for its progress line.
    fn headline(&self) -> String;
}

/// A cell that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A directory or file could not be created (a cell's directory or log).
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        /// What was to be created.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A cell's log could not be shared between its stdout and stderr.
    #[error("{0}")]
    LogHandle(#[source] std::io::Error),
    /// A cell's harness could not be started.
    #[error("cannot start {}: {source}", .exe.display())]
    Spawn {
        /// This binary.
        exe: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How long a cell's harness may take to stop its fleet after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// One run of an experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The variant or grid point it belongs to (`baseline`, `dns_verification`, `0.5 x 0.75`).
    pub group: String,
    /// Its seed.
    pub seed: u64,
    /// `--set` and `--fix` arguments, as given to `outage-lab run`.
    pub args: Vec<String>,
    /// Its run directory.
    pub dir: PathBuf,
}

impl Cell {
    /// The command that runs this cell alone.
    pub fn command(&self, scenario: &Path) -> String {
        let mut words = vec![
            "outage-lab".to_owned(),
            "run".into(),
            scenario.display().to_string(),
        ];
        words.extend(self.args.iter().map(|a| shell_word(a)));
        words.push("--seed".into());
        words.push(self.seed.to_string());
        words.join(" ")
    }
}

/// A word as a shell reads it back.
fn shell_word(w: &str) -> String {
    let plain = w
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.=/:,".contains(c));
    if plain {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome<M> {
    /// It ran to the end (whatever its verdict): its numbers.
    Ran {
        /// The run's exit code: 0 every expectation held, 1 some did not.
        exit: i32,
        /// What it came to.
        metrics: M,
        /// Wall time, seconds.
        wall_s: f64,
        /// How many times it came back disturbed and was run again first.
        #[serde(skip_serializing_if = "is_zero")]
        reruns: u32,
    },
    /// Its own lag went over its tolerance on every try: its timing is not evidence, so it is
    /// never counted as a result.
    Disturbed {
        /// How late its scheduled work fired (its `kept_pace` row).
        reason: String,
    },
    /// It could not run: never counted as a result.
    Failed {
        /// Why.
        reason: String,
    },
    /// It was stopped by Ctrl-C or SIGTERM before it finished.
    Interrupted,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What running a list of cells came to.
#[derive(Debug)]
pub struct Results<M> {
    /// Each cell's outcome, in the order given.
    pub outcomes: Vec<Outcome<M>>,
    /// Set when SIGINT or SIGTERM cut the experiment short.
    pub interrupted: Option<&'static str>,
    /// Wall time of the whole experiment.
    pub wall: Duration,
    /// The most cells that ran at once.
    pub most_at_once: usize,
}

/// How to run the cells.
#[derive(Debug)]
pub struct Runner<'a> {
    /// This binary.
    pub exe: &'a Path,
    /// The scenario file every cell runs.
    pub scenario: &'a Path,
    /// The most cells at once (`--jobs`, or what the memory limit fits); fewer run while the
    /// CPU is busy ([`Admission`]).
    pub jobs: usize,
    /// `--memory-limit` of each cell: the experiment's limit shared by the cells at once
    /// (`None`: the incident's runs bound their own memory and take no such flag).
    pub memory_limit_each: Option<u64>,
}

struct Running {
    index: usize,
    child: Child,
    started: Instant,
    /// The most other cells that ran beside it at any time.
    most_beside: usize,
}

/// How many times a cell that came back disturbed is run again before it counts as disturbed.
pub const RERUNS: u32 = 2;

/// The runner's state while it runs: what is queued, running and done.
struct Pool<'c, M> {
    cells: &'c [Cell],
    queue: VecDeque<usize>,
    running: Vec<Running>,
    outcomes: Vec<Option<Outcome<M>>>,
    reruns: Vec<u32>,
    admission: Admission,
    progress: Progress,
}

impl Runner<'_> {
    /// Runs every cell, as many at once as [`Admission`] allows, until all are done or a signal
    /// stops them; what each finished cell came to is read as `M`. A cell that comes back
    /// disturbed is kept as evidence and run again, at most [`RERUNS`] times.
    pub async fn run<M: CellMetrics>(&self, cells: &[Cell]) -> Results<M> {
        let started = Instant::now();
        let mut pool = Pool {
            cells,
            queue: (0..cells.len()).collect(),
            running: Vec::new(),
            outcomes: vec![None; cells.len()],
            reruns: vec![0; cells.len()],
            admission: Admission::new(self.jobs),
            progress: Progress::new(cells.len(), self.scenario),
        };
        let (mut sigint, mut sigterm) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            _ => {
                let reason = "cannot listen for SIGINT and SIGTERM".to_owned();
                let all = vec![Outcome::Failed { reason }; cells.len()];
                return Results {
                    outcomes: all,
                    interrupted: None,
                    wall: started.elapsed(),
                    most_at_once: 0,
                };
            }
        };
        let mut interrupted = None;
        let mut most_at_once = 0;
        loop {
            self.start_what_may(&mut pool);
            let now = pool.running.len();
            most_at_once = most_at_once.max(now);
            for r in &mut pool.running {
                r.most_beside = r.most_beside.max(now - 1);
            }
            if pool.running.is_empty() && pool.queue.is_empty() {
                break;
            }
            tokio::select! {
                done = tokio::time::timeout(admission::POLL, wait_any(&mut pool.running)) => {
                    if let Ok((i, status)) = done {
                        pool.finish(i, status);
                    }
                }
                _ = sigint.recv() => { interrupted = Some("SIGINT"); break; }
                _ = sigterm.recv() => { interrupted = Some("SIGTERM"); break; }
            }
        }
        if interrupted.is_some() {
            stop_all(&mut pool.running).await;
            for r in &pool.running {
                pool.outcomes[r.index] = Some(Outcome::Interrupted);
            }
        }
        pool.progress.finish();
        let outcomes = (pool.outcomes.into_iter())
            .map(|o| o.unwrap_or(Outcome::Interrupted))
            .collect();
        Results {
            outcomes,
            interrupted,
            wall: started.elapsed(),
            most_at_once,
        }
    }

    /// [`Self::run`] on the one-thread runtime every outage-lab process uses (children get
    /// `PR_SET_PDEATHSIG`, tied to the thread that forks them).
    pub fn run_blocking<M: CellMetrics>(&self, cells: &[Cell]) -> std::io::Result<Results<M>> {
        Ok(crate::runtime::single_threaded()?.block_on(self.run(cells)))
    }

    /// Starts queued cells while the admission allows; a cell an earlier run of the experiment
    /// finished is taken as it is.
    fn start_what_may<M: CellMetrics>(&self, pool: &mut Pool<'_, M>) {
        while let Some(&next) = pool.queue.front() {
            let cell = &pool.cells[next];
            if pool.reruns[next] == 0
                && let Some(done) = finished(cell)
            {
                pool.progress.done(cell, &done);
                pool.outcomes[next] = Some(done);
                pool.queue.pop_front();
                continue;
            }
            if !pool.admission.may_start(pool.running.len()) {
                return;
            }
            pool.queue.pop_front();
            match self.spawn(cell) {
                Ok(child) => {
                    pool.admission.started();
                    pool.running.push(Running {
                        index: next,
                        child,
                        started: Instant::now(),
                        most_beside: 0,
                    });
                }
                Err(e) => {
                    let reason = e.to_string();
                    pool.outcomes[next] = Some(Outcome::Failed { reason });
                }
            }
        }
    }

    fn spawn(&self, cell: &Cell) -> Result<Child, RunnerError> {
        if let Some(parent) = cell.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| RunnerError::Create {
                path: parent.to_owned(),
                source,
            })?;
        }
        let log_path = cell.dir.with_extension("log");
        let log = match std::fs::File::create(&log_path) {
            Ok(log) => log,
            Err(source) => {
                let path = log_path;
                return Err(RunnerError::Create { path, source });
            }
        };
        let err = log.try_clone().map_err(RunnerError::LogHandle)?;
        let mut cmd = Command::new(self.exe);
        cmd.arg("run")
            .arg(self.scenario)
            .args(&cell.args)
            .arg("--seed")
            .arg(cell.seed.to_string())
            .arg("--out")
            .arg(&cell.dir);
        if let Some(each) = self.memory_limit_each {
            cmd.arg("--memory-limit").arg(format!("{each}B"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            // No live bar in a cell's log; plain lines only.
            .env("TERM", "dumb")
            .kill_on_drop(true);
        outage_lab_host::die_with_parent(&mut cmd);
        cmd.spawn().map_err(|source| RunnerError::Spawn {
            exe: self.exe.to_owned(),
            source,
        })
    }
}

impl<M: CellMetrics> Pool<'_, M> {
    /// The `i`th running cell exited: its outcome, or, disturbed with reruns left, back to the
    /// front of the queue with the cap lowered below the most that ran at once beside it.
    fn finish(&mut self, i: usize, status: std::io::Result<std::process::ExitStatus>) {
        let done = self.running.swap_remove(i);
        let cell = &self.cells[done.index];
        let mut outcome = outcome(cell, status, done.started.elapsed());
        if let Outcome::Ran { reruns, .. } = &mut outcome {
            *reruns = self.reruns[done.index];
        }
        if let Outcome::Disturbed { reason, .. } = &outcome
            && self.reruns[done.index] < RERUNS
        {
            self.reruns[done.index] += 1;
            self.admission.disturbed(done.most_beside);
            let kept = keep_disturbed(cell, self.reruns[done.index]);
            self.progress.rerun(cell, reason, &kept, self.admission.cap);
            self.queue.push_front(done.index);
            return;
        }
        self.progress.done(cell, &outcome);
        self.outcomes[done.index] = Some(outcome);
    }
}

/// Moves a disturbed cell's run directory and log aside (`<dir>.disturbed-<n>`), as evidence,
/// so that it runs again in its own directory; returns where it went.
fn keep_disturbed(cell: &Cell, n: u32) -> PathBuf {
    let aside = cell.dir.with_extension(format!("disturbed-{n}"));
    let _ = std::fs::remove_dir_all(&aside);
    let _ = std::fs::rename(&cell.dir, &aside);
    let log = cell.dir.with_extension("log");
    let _ = std::fs::rename(&log, aside.with_extension(format!("disturbed-{n}.log")));
    aside
}

/// A cell an earlier run of the same experiment (same `--out`) finished: same seed, same
/// settings. It is not run again, so an interrupted experiment continues where it stopped.
fn finished<M: CellMetrics>(cell: &Cell) -> Option<Outcome<M>> {
    let report = RunRecord::read(&cell.dir)?;
    let text = std::fs::read_to_string(cell.dir.join("scenario.yaml")).ok()?;
    // The run wrote its settings at the top of its scenario.yaml (none: the file as it is).
    let written = crate::run_dir::settings_of(&text);
    let wanted: Vec<String> = (cell.args.chunks(2)).map(|pair| pair.join(" ")).collect();
    let disturbed = report.lag.as_ref().is_some_and(|l| l.disturbed);
    if report.seed != cell.seed || written != wanted || disturbed {
        return None;
    }
    let exit = if report.verdict == "pass" { 0 } else { 1 };
    Some(Outcome::Ran {
        exit,
        metrics: M::read(&cell.dir).ok()?,
        wall_s: report.wall_ms as f64 / 1000.0,
        reruns: 0,
    })
}

/// Waits until one of `running` exits; returns its index and how it ended. Polls: cells take
/// tens of seconds, a fifth of a second of lag is nothing, and the wait stays cancel-safe.
async fn wait_any(running: &mut [Running]) -> (usize, std::io::Result<std::process::ExitStatus>) {
    loop {
        for (i, r) in running.iter_mut().enumerate() {
            match r.child.try_wait() {
                Ok(Some(status)) => return (i, Ok(status)),
                Ok(None) => {}
                Err(e) => return (i, Err(e)),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to every running cell's harness, then wait (SIGKILL past the grace).
async fn stop_all(running: &mut [Running]) {
    for r in running.iter() {
        if let Some(pid) = r.child.id() {
            outage_lab_host::send_signal(pid, libc::SIGTERM);
        }
    }
    for r in running.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, r.child.wait())
            .await
            .is_err()
        {
            let _ = r.child.kill().await;
        }
    }
}

/// A cell's outcome from how its harness exited.
fn outcome<M: CellMetrics>(
    cell: &Cell,
    status: std::io::Result<std::process::ExitStatus>,
    wall: Duration,
) -> Outcome<M> {
    let log = cell.dir.with_extension("log");
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failed {
                reason: format!("could not wait for it: {e}"),
            };
        }
    };
    match status.code() {
        Some(exit @ (0 | 1)) => {
            if let Some(reason) = disturbance(&cell.dir) {
                return Outcome::Disturbed { reason };
            }
            match M::read(&cell.dir) {
                Ok(metrics) => Outcome::Ran {
                    exit,
                    metrics,
                    wall_s: wall.as_secs_f64(),
                    reruns: 0,
                },
                Err(reason) => Outcome::Failed { reason },
            }
        }
        _ => Outcome::Failed {
            reason: format!(
                "{}; the end of {}:\n{}",
                outage_lab_host::describe_status(status),
                log.display(),
                crate::logs::tail(&log, 5)
            ),
        },
    }
}

/// Why a finished cell's run is disturbed, from its report.json (`None`: it kept its pace, or
/// it says nothing of it).
fn disturbance(dir: &Path) -> Option<String> {
    crate::lag::disturbance(RunRecord::read(dir)?.lag.as_ref()?)
}

/// What every incident's report.json says at its top level and the runner reads: the seed,
/// the verdict (`pass` or `fail`), the wall time and how late the run's scheduled work fired.
#[derive(Debug, serde::Deserialize)]
struct RunRecord {
    seed: u64,
    verdict: String,
    wall_ms: u64,
    lag: Option<outage_lab_proto::report::LagReport>,
}

impl RunRecord {
    /// A finished run's record, from `<dir>/report.json`; `None` when there is none to read.
    fn read(dir: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).ok()?).ok()
    }
}

/// The bar on a terminal, plain lines elsewhere.
struct Progress {
    /// The scenario, for each cell's re-run command.
    scenario: PathBuf,
    bar: Option<ProgressBar>,
    total: usize,
    done: std::cell::Cell<usize>,
}

impl Progress {
    fn new(total: usize, scenario: &Path) -> Self {
        use std::io::IsTerminal;
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let bar = (std::io::stderr().is_terminal() && !dumb).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} cells, {elapsed} elapsed, ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self {
            scenario: scenario.to_owned(),
            bar,
            total,
            done: std::cell::Cell::new(0),
        }
    }

    fn done<M: CellMetrics>(&self, cell: &Cell, outcome: &Outcome<M>) {
        self.done.set(self.done.get() + 1);
        let what = match outcome {
            Outcome::Ran {
                exit,
                metrics,
                wall_s,
                reruns,
            } => {
                let again = match reruns {
                    0 => String::new(),
                    n => format!(" (after {n} disturbed)"),
                };
                format!("{}, exit {exit}, {wall_s:.1}s{again}", metrics.headline())
            }
            Outcome::Disturbed { reason } => {
                format!("DISTURBED on every try, not counted: {reason}")
            }
            Outcome::Failed { reason } => {
                format!(
                    "COULD NOT RUN: {}",
                    reason.lines().next().unwrap_or_default()
                )
            }
            Outcome::Interrupted => "interrupted".into(),
        };
        let line = format!(
            "cell {}/{} {} seed {}: {what}; alone: {}",
            self.done.get(),
            self.total,
            cell.group,
            cell.seed,
            cell.command(&self.scenario)
        );
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("{} seed {}", cell.group, cell.seed));
                bar.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn rerun(&self, cell: &Cell, reason: &str, kept: &Path, cap: usize) {
        self.say(format!(
            "cell {} seed {} came back disturbed ({reason}); kept in {}, running it again, at most {cap} at once from now",
            cell.group,
            cell.seed,
            kept.display()
        ));
    }

    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

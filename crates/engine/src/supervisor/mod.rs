//! The supervisor: starts every process of a run, hears what they say, and stops them all.
//!
//! Ownership rules, because a harness that leaves processes behind is worse than none:
//!
//! * Every child is started with `PR_SET_PDEATHSIG = SIGKILL`, set between fork and exec, so the
//!   kernel kills it if the harness dies by any means, `SIGKILL` included. The harness runs on a
//!   single-threaded runtime: the death signal is tied to the thread that forked, and the main
//!   thread lives exactly as long as the process.
//! * [`Supervisor::stop_all`] sends `SIGTERM`, waits a bounded time, then sends `SIGKILL` and
//!   reaps. Signals go only to PIDs this supervisor started and has not yet reaped, so a recycled
//!   PID can never be hit.
//! * A child's stdout is its event stream (JSON lines of the incident's event enum, made by
//!   `outage_lab_proto::with_engine_events!`); its stderr goes to `logs/<name>.log` in the run
//!   directory.
//!
//! The supervisor knows processes only by the incident's [`ProcessKey`]: a typed name that
//! says how the journal records its start and where it stands at a freeze.
//!
//! - [`process`]: one supervised process, its signals and its stop;
//! - [`teller`]: hears a process's stdout and exit;
//! - [`program`]: a program the engine did not write, started here ([`Isolate`]);
//! - [`launcher`]: a process started by a launcher host (`run --hosts`);
//! - [`freeze`]: stopping and continuing what acts on its own (a workshop stop);
//! - [`isolation`]: a program's own `/etc/resolv.conf` and `/etc/hosts`.

mod freeze;
pub mod isolation;
pub mod launcher;
mod process;
mod program;
mod teller;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outage_lab_proto::wire::LauncherReader;
use outage_lab_proto::{EngineEvent, Vocabulary};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::LabClock;
use crate::error::HarnessError;
pub use crate::logs::tail;
pub use launcher::{LOST_WITH_HOST, Launchers};
use launcher::{RemoteSignal, spawn_remote};
use process::{Proc, Watch, stop_procs};
pub use program::{Isolate, Program};
use program::{bind_to_harness, open_log, spawn_program_here};
use teller::Teller;

/// A process of a run, as the incident names it: ordered, printable (`logs/<name>.log`, the
/// journal's `source`), and knowing the journal event that records its start.
pub trait ProcessKey: Clone + Ord + fmt::Display + Send + Sync + 'static {
    /// The incident's events, which its processes tell and its journal holds.
    type Event: Vocabulary;

    /// The journal event that says this process started as `pid`.
    fn started(&self, pid: u32) -> EngineEvent;

    /// Where it stands at a freeze (a workshop stop): `None` for a process that only answers
    /// questions and keeps running; else its rank, lowest (the clients) stopped first and
    /// continued last.
    fn freeze_rank(&self) -> Option<u8>;
}

/// One message into the run loop: an event, who told it, and when the harness heard it.
#[derive(Debug, Clone)]
pub struct Inbound<E> {
    /// Milliseconds since the run started.
    pub t_ms: u64,
    /// Process name, or `harness`.
    pub source: String,
    /// The teller's pid (`None` for the harness itself).
    pub pid: Option<u32>,
    /// What happened.
    pub event: E,
}

/// A process that was started and has announced itself ready.
#[derive(Debug, Clone)]
pub struct Started {
    /// Its pid.
    pub pid: u32,
    /// The addresses from its readiness line, by purpose.
    pub addrs: BTreeMap<String, SocketAddr>,
}

/// A spawned process whose readiness line has not been seen yet.
#[derive(Debug)]
pub struct Pending {
    name: String,
    pid: u32,
    ready: oneshot::Receiver<BTreeMap<String, SocketAddr>>,
    log: PathBuf,
}

/// Starts, watches and stops the processes of one run.
pub struct Supervisor<K: ProcessKey> {
    exe: PathBuf,
    log_dir: PathBuf,
    clock: LabClock,
    tx: mpsc::UnboundedSender<Inbound<K::Event>>,
    procs: Mutex<BTreeMap<K, Proc>>,
    /// Every process started, on disk, for a later run to reap if this one crashes (local
    /// runs only: a remote pid means nothing to this machine's next run).
    ledger: Mutex<Option<crate::ledger::Ledger>>,
    /// Set when the fleet runs on launcher hosts (`run --hosts`).
    remote: Option<Launchers<K>>,
}

impl<K: ProcessKey> fmt::Debug for Supervisor<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("exe", &self.exe)
            .finish_non_exhaustive()
    }
}

impl<K: ProcessKey> Supervisor<K> {
    /// A supervisor that spawns `exe` (the outage-lab binary itself) and sends everything it
    /// hears into `tx`.
    pub fn new(
        exe: PathBuf,
        run_dir: &Path,
        clock: LabClock,
        tx: mpsc::UnboundedSender<Inbound<K::Event>>,
        ledger: Option<crate::ledger::Ledger>,
        remote: Option<Launchers<K>>,
    ) -> Self {
        Self {
            exe,
            log_dir: run_dir.join("logs"),
            clock,
            tx,
            procs: Mutex::new(BTreeMap::new()),
            ledger: Mutex::new(ledger),
            remote,
        }
    }

    /// Lists a control group directory this run made in the ledger, so that a later run removes
    /// it should this one die first.
    pub fn record_cgroup(&self, dir: &Path) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Err(e)) = ledger.as_mut().map(|l| l.record_cgroup(dir)) {
            tracing::warn!("could not record {} in the ledger: {e}", dir.display());
        }
    }

    /// Removes the ledger: call only once every process has been reaped.
    pub fn close_ledger(&self) {
        if let Some(ledger) = self.ledger.lock().unwrap_or_else(|p| p.into_inner()).take() {
            ledger.close();
        }
    }

    /// Whether the fleet runs on launcher hosts (`run --hosts`).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Who reads `process`'s memory for the watchdog: the launcher that runs it, when one does
    /// (the watchdog shares no PID namespace with it); `None`: the watchdog reads `/proc` here.
    pub fn memory_reader(&self, process: &K) -> Option<LauncherReader> {
        let host = self.remote.as_ref()?.host_of(process).ok()?;
        Some(LauncherReader {
            url: format!("http://{host}"),
            name: process.to_string(),
        })
    }

    /// Lab milliseconds since the run started (frozen time left out).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The run's lab clock.
    pub fn clock(&self) -> &LabClock {
        &self.clock
    }

    /// Records an event of the harness's own.
    pub fn emit(&self, event: impl Into<K::Event>) {
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: "harness".into(),
            pid: None,
            event: event.into(),
        });
    }

    /// Starts `outage-lab <args>` as process `name`, here or on its launcher host. Returns once
    /// it is running; wait for its readiness with [`Pending::ready`].
    pub async fn spawn(&self, process: &K, args: &[String]) -> Result<Pending, HarnessError> {
        self.spawn_limited(process, args, None).await
    }

    /// [`Supervisor::spawn`], with `RLIMIT_DATA` set to `data_limit` bytes in the child before
    /// exec (local children only: a launcher host starts its own).
    pub async fn spawn_limited(
        &self,
        process: &K,
        args: &[String],
        data_limit: Option<u64>,
    ) -> Result<Pending, HarnessError> {
        let name = process.to_string();
        let name = name.as_str();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (log, teller, watch) = self.prepare(name, false, Some(ready_tx))?;
        let (pid, remote) = match &self.remote {
            None => (
                self.spawn_local(name, args, &log, teller, data_limit)?,
                None,
            ),
            Some(remote) => {
                let host = remote.host_of(process)?;
                let pid = spawn_remote(remote, host, (name, args, &log, None), teller).await?;
                (pid, Some(RemoteSignal::new(remote, host, name)))
            }
        };
        Ok(self.register(process, (pid, remote, false), watch, ready_rx, log))
    }

    /// What every spawn starts with: the log's path (its directory created), the [`Teller`]
    /// that will hear the process, and the flags the supervisor keeps on it. `expected`: an
    /// exit on its own is no crash.
    fn prepare(
        &self,
        name: &str,
        expected: bool,
        ready: Option<oneshot::Sender<BTreeMap<String, SocketAddr>>>,
    ) -> Result<(PathBuf, Teller<K::Event>, Watch), HarnessError> {
        std::fs::create_dir_all(&self.log_dir)
            .map_err(|e| HarnessError::io(format!("create {}", self.log_dir.display()), e))?;
        let stopping = Arc::new(AtomicBool::new(expected));
        let (exited_tx, exited_rx) = watch::channel(false);
        let teller = Teller {
            tx: self.tx.clone(),
            source: name.to_owned(),
            pid: 0,
            clock: self.clock.clone(),
            ready,
            expected: Arc::clone(&stopping),
            exited: exited_tx,
        };
        let log = self.log_dir.join(format!("{name}.log"));
        Ok((log, teller, (stopping, exited_rx)))
    }

    /// Records a started process (its pid, where its signals go, whether it leads a process
    /// group): in the ledger, in the map, in the journal. Returns its [`Pending`].
    fn register(
        &self,
        process: &K,
        (pid, remote, group): (u32, Option<RemoteSignal>, bool),
        (stopping, exited): Watch,
        ready: oneshot::Receiver<BTreeMap<String, SocketAddr>>,
        log: PathBuf,
    ) -> Pending {
        let name = process.to_string();
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Err(e)) = ledger.as_mut().map(|l| l.record(pid, &name, group)) {
            tracing::warn!("could not record {name} (pid {pid}) in the ledger: {e}");
        }
        drop(ledger);
        let proc = Proc {
            pid,
            stopping,
            exited,
            remote,
            group,
        };
        self.lock().insert(process.clone(), proc);
        self.emit(process.started(pid));
        Pending {
            name,
            pid,
            ready,
            log,
        }
    }

    /// Starts a program the lab did not write as process `name` (an external agent), here:
    /// in its own process group and the mount namespace `isolation` sets up, in `workdir`,
    /// with only `env` and the inherited variables, its stdout and stderr appended to
    /// `logs/<name>.log`. It has no readiness line: the returned [`Pending`] is ready at once.
    /// Its whole group is signalled, and killed once it exits.
    pub async fn spawn_program(
        &self,
        process: &K,
        program: &Program<'_>,
        data_limit: Option<u64>,
    ) -> Result<Pending, HarnessError> {
        let name = process.to_string();
        let (log, teller, watch) = self.prepare(&name, program.may_exit, None)?;
        let (pid, remote, group) = match &self.remote {
            None => (
                spawn_program_here(&name, program, &log, teller, data_limit)?,
                None,
                true,
            ),
            Some(remote) => {
                let host = remote.host_of(process)?;
                let request = outage_lab_host::ProgramRequest {
                    argv: program.argv.to_vec(),
                    env: program.env.clone(),
                    workdir: program.workdir.to_owned(),
                };
                let spawn = (name.as_str(), &[][..], log.as_path(), Some(request));
                let pid = spawn_remote(remote, host, spawn, teller).await?;
                (pid, Some(RemoteSignal::new(remote, host, &name)), false)
            }
        };
        // No readiness line to wait for: it is ready once it runs.
        let (ready_tx, ready_rx) = oneshot::channel();
        let _ = ready_tx.send(BTreeMap::new());
        Ok(self.register(process, (pid, remote, group), watch, ready_rx, log))
    }

    /// Forks `outage-lab <args>` here; its stdout and its exit go to `teller`.
    fn spawn_local(
        &self,
        name: &str,
        args: &[String],
        log: &Path,
        mut teller: Teller<K::Event>,
        data_limit: Option<u64>,
    ) -> Result<u32, HarnessError> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(open_log(log)?))
            .env("OUTAGE_LAB_PROCESS", name);
        bind_to_harness(&mut cmd, data_limit);
        let mut child = cmd.spawn().map_err(|e| {
            HarnessError::Start(format!(
                "{name}: could not spawn {}: {e}",
                self.exe.display()
            ))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| HarnessError::Start(format!("{name}: exited at once")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::Start(format!("{name}: no stdout")))?;
        teller.pid = pid;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                teller.hear(&line);
            }
            let status = match child.wait().await {
                Ok(status) => outage_lab_host::describe_status(status),
                Err(e) => format!("wait failed: {e}"),
            };
            teller.exited(status);
        });
        Ok(pid)
    }

    /// Spawns and waits for readiness.
    pub async fn start(
        &self,
        name: &K,
        args: &[String],
        timeout: Duration,
    ) -> Result<Started, HarnessError> {
        self.spawn(name, args).await?.ready(timeout).await
    }

    /// Stops the named processes at once: SIGTERM, up to `grace` to exit, then SIGKILL (a zero
    /// grace is SIGKILL at once, a crash). Waits until all are reaped. Returns the pids of those
    /// that were running; a name that is not running is skipped.
    pub async fn stop_many(&self, names: &[K], grace: Duration) -> Vec<(K, u32)> {
        let targets: Vec<(K, Proc)> = {
            let mut procs = self.lock();
            (names.iter())
                .filter_map(|n| procs.remove(n).map(|p| (n.clone(), p)))
                .collect()
        };
        let stopped = (targets.iter())
            .filter(|(_, p)| !*p.exited.borrow())
            .map(|(n, p)| (n.clone(), p.pid))
            .collect();
        stop_procs(targets.into_iter().map(|(_, p)| p).collect(), grace).await;
        stopped
    }

    /// Stops every process still running, all at once, and waits until all are reaped.
    pub async fn stop_all(&self, grace: Duration) {
        let all: Vec<Proc> = std::mem::take(&mut *self.lock()).into_values().collect();
        stop_procs(all, grace).await;
    }

    /// Sends `sig` to every running process of this machine whose name `pick` accepts (a
    /// program's whole group); returns how many.
    fn signal_local(&self, pick: impl Fn(&K) -> bool, sig: libc::c_int) -> usize {
        let procs = self.lock();
        let mut sent = 0;
        for (_, p) in procs.iter().filter(|(n, p)| pick(n) && p.remote.is_none()) {
            if !*p.exited.borrow() {
                p.signal_here(sig);
                sent += 1;
            }
        }
        sent
    }

    /// Processes still running, as `name (pid)`.
    pub fn running(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, p)| !*p.exited.borrow())
            .map(|(n, p)| format!("{n} (pid {})", p.pid))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<K, Proc>> {
        // A poisoned lock only means another task panicked while holding it; the map itself is
        // always consistent (single inserts and removes), so keep using it.
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pending {
    /// The pid of the spawned process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process's readiness line. Fails if it exits first or takes longer than
    /// `timeout`; the error quotes the end of the process's log.
    pub async fn ready(self, timeout: Duration) -> Result<Started, HarnessError> {
        match tokio::time::timeout(timeout, self.ready).await {
            Ok(Ok(addrs)) => Ok(Started {
                pid: self.pid,
                addrs,
            }),
            Ok(Err(_)) => Err(HarnessError::Start(format!(
                "{} (pid {}) exited before it was ready; the end of {}:\n{}",
                self.name,
                self.pid,
                self.log.display(),
                tail(&self.log, 15)
            ))),
            Err(_) => Err(HarnessError::Start(format!(
                "{} (pid {}) was not ready within {:?}; the end of {}:\n{}",
                self.name,
                self.pid,
                timeout,
                self.log.display(),
                tail(&self.log, 15)
            ))),
        }
    }
}

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
//! * A child's stdout is its event stream (JSON lines, see `outage_lab_proto::Event`); its stderr
//!   goes to `logs/<name>.log` in the run directory.
//!
//! A process may also run on a launcher host ([`remote`]: the launcher client, and where the
//! launchers are found).

pub mod remote;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outage_lab_engine::clock::LabClock;

use outage_lab_proto::Event;
use outage_lab_proto::wire::LauncherReader;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::names::ProcessName;
use outage_lab_engine::error::HarnessError;

/// One message into the run loop: an event, who told it, and when the harness heard it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Milliseconds since the run started.
    pub t_ms: u64,
    /// Process name, or `harness`.
    pub source: String,
    /// The teller's pid (`None` for the harness itself).
    pub pid: Option<u32>,
    /// What happened.
    pub event: Event,
}

/// A process that was started and has announced itself ready.
#[derive(Debug, Clone)]
pub struct Started {
    /// Its pid.
    pub pid: u32,
    /// The addresses from its readiness line, by purpose.
    pub addrs: BTreeMap<String, SocketAddr>,
}

struct Proc {
    pid: u32,
    /// Set before the harness signals it, so its exit is reported as expected.
    stopping: Arc<AtomicBool>,
    /// Becomes true when the child has been reaped.
    exited: watch::Receiver<bool>,
    /// For a process on a launcher host: where to send its signals. `None`: our own child.
    remote: Option<RemoteSignal>,
    /// A program in its own process group: signals go to the whole group.
    group: bool,
}

/// A program the lab did not write, ready to start ([`Supervisor::spawn_program`]).
#[derive(Debug)]
pub struct Program<'a> {
    /// The program and its arguments; not empty.
    pub argv: &'a [String],
    /// Its environment besides the inherited variables
    /// ([`outage_lab_host::AGENT_INHERITED_ENV`], from wherever it runs).
    pub env: &'a BTreeMap<String, String>,
    /// Its working directory.
    pub workdir: &'a Path,
    /// Its view of `/etc/resolv.conf` and `/etc/hosts` when it runs here; on a launcher host
    /// the container's own (compose's `dns:`) does that job.
    pub isolation: Option<&'a crate::external_agent::Isolation>,
    /// Whether its exit on its own is expected (else the journal records a crash).
    pub may_exit: bool,
}

/// Sends `sig` to the process group `pgid` (a program started by [`Supervisor::spawn_program`]).
fn signal_group(pgid: u32, sig: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// The launcher route that signals one remote process.
#[derive(Clone)]
struct RemoteSignal {
    client: reqwest::Client,
    url: String,
}

impl RemoteSignal {
    /// The route of process `name` on the launcher at `host`.
    fn new(remote: &remote::Remote, host: SocketAddr, name: &str) -> Self {
        Self {
            client: remote.client.clone(),
            url: format!("http://{host}/processes/{name}/signal"),
        }
    }
}

/// What the supervisor keeps to stop a process: the flag saying its exit is expected, and
/// whether it has been reaped.
type Watch = (Arc<AtomicBool>, watch::Receiver<bool>);

impl Proc {
    /// Sends `sig` to our own child (a program's whole group).
    fn signal_here(&self, sig: libc::c_int) {
        if self.group {
            signal_group(self.pid, sig);
        } else {
            outage_lab_host::send_signal(self.pid, sig);
        }
    }

    /// Sends `sig`: to our own child directly, to a remote one through its launcher (which only
    /// signals a child it has not reaped). A launcher that cannot be reached is logged; the
    /// caller's SIGKILL fallback and timeouts still bound the stop.
    async fn signal(&self, sig: libc::c_int) {
        match &self.remote {
            None => self.signal_here(sig),
            Some(remote) => {
                let signal = if sig == libc::SIGKILL {
                    outage_lab_host::Signal::Kill
                } else {
                    outage_lab_host::Signal::Term
                };
                let sent = remote
                    .client
                    .post(&remote.url)
                    .timeout(Duration::from_secs(2))
                    .json(&outage_lab_host::SignalRequest { signal })
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() || r.status() == 404 => {}
                    Ok(r) => {
                        tracing::warn!(url = %remote.url, status = %r.status(), "launcher refused a signal")
                    }
                    Err(e) => {
                        tracing::warn!(url = %remote.url, "could not reach the launcher: {e}")
                    }
                }
            }
        }
    }
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
pub struct Supervisor {
    exe: PathBuf,
    log_dir: PathBuf,
    clock: LabClock,
    tx: mpsc::UnboundedSender<Inbound>,
    procs: Mutex<BTreeMap<ProcessName, Proc>>,
    /// Every process started, on disk, for a later run to reap if this one crashes (local
    /// runs only: a remote pid means nothing to this machine's next run).
    ledger: Mutex<Option<outage_lab_engine::ledger::Ledger>>,
    /// Set when the fleet runs on launcher hosts (`run --hosts`).
    remote: Option<remote::Remote>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("exe", &self.exe)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor that spawns `exe` (the outage-lab binary itself) and sends everything it
    /// hears into `tx`.
    pub fn new(
        exe: PathBuf,
        run_dir: &Path,
        clock: LabClock,
        tx: mpsc::UnboundedSender<Inbound>,
        ledger: Option<outage_lab_engine::ledger::Ledger>,
        remote: Option<remote::Remote>,
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
    pub fn memory_reader(&self, process: &ProcessName) -> Option<LauncherReader> {
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
    pub fn emit(&self, event: Event) {
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: "harness".into(),
            pid: None,
            event,
        });
    }

    /// Starts `outage-lab <args>` as process `name`, here or on its launcher host. Returns once
    /// it is running; wait for its readiness with [`Pending::ready`].
    pub async fn spawn(
        &self,
        process: &ProcessName,
        args: &[String],
    ) -> Result<Pending, HarnessError> {
        self.spawn_limited(process, args, None).await
    }

    /// [`Supervisor::spawn`], with `RLIMIT_DATA` set to `data_limit` bytes in the child before
    /// exec (local children only: a launcher host starts its own).
    pub async fn spawn_limited(
        &self,
        process: &ProcessName,
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
    ) -> Result<(PathBuf, Teller, Watch), HarnessError> {
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
        process: &ProcessName,
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
        self.emit(Event::ProcessStarted {
            name: name.clone(),
            role: process.role(),
            server: process.server().map(str::to_owned),
            pid,
        });
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
        process: &ProcessName,
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
        mut teller: Teller,
        data_limit: Option<u64>,
    ) -> Result<u32, HarnessError> {
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env("OUTAGE_LAB_PROCESS", name)
            .kill_on_drop(true);
        outage_lab_host::die_with_parent(&mut cmd);
        if let Some(limit) = data_limit {
            limit_data(&mut cmd, limit);
        }
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
        name: &ProcessName,
        args: &[String],
        timeout: Duration,
    ) -> Result<Started, HarnessError> {
        self.spawn(name, args).await?.ready(timeout).await
    }

    /// Stops the named processes at once: SIGTERM, up to `grace` to exit, then SIGKILL (a zero
    /// grace is SIGKILL at once, a crash). Waits until all are reaped. Returns the pids of those
    /// that were running; a name that is not running is skipped.
    pub async fn stop_many(
        &self,
        names: &[ProcessName],
        grace: Duration,
    ) -> Vec<(ProcessName, u32)> {
        let targets: Vec<(ProcessName, Proc)> = {
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
    pub(super) fn signal_local(
        &self,
        pick: impl Fn(&ProcessName) -> bool,
        sig: libc::c_int,
    ) -> usize {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ProcessName, Proc>> {
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

async fn stop_procs(procs: Vec<Proc>, grace: Duration) {
    let mut waits = tokio::task::JoinSet::new();
    for proc in procs {
        waits.spawn(stop_proc(proc, grace));
    }
    while waits.join_next().await.is_some() {}
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; a zero grace is SIGKILL at once (a crash).
async fn stop_proc(mut proc: Proc, grace: Duration) {
    if *proc.exited.borrow() {
        return;
    }
    proc.stopping.store(true, Ordering::SeqCst);
    let exited = if grace.is_zero() {
        Err(())
    } else {
        proc.signal(libc::SIGTERM).await;
        if proc.remote.is_none() {
            // A frozen process (a workshop stop) acts on SIGTERM only once continued.
            proc.signal(libc::SIGCONT).await;
        }
        tokio::time::timeout(grace, proc.exited.wait_for(|done| *done))
            .await
            .map(|_| ())
            .map_err(|_| ())
    };
    if exited.is_err() {
        if !grace.is_zero() {
            tracing::warn!(
                pid = proc.pid,
                "did not stop within {grace:?} of SIGTERM; sending SIGKILL"
            );
        }
        proc.signal(libc::SIGKILL).await;
        let _ =
            tokio::time::timeout(Duration::from_secs(5), proc.exited.wait_for(|done| *done)).await;
    }
}

/// Starts an external agent here: its own process group and mount namespace, its whole
/// environment the inherited variables and `program.env`, its output appended to `log`.
fn spawn_program_here(
    name: &str,
    program: &Program<'_>,
    log: &Path,
    mut teller: Teller,
    data_limit: Option<u64>,
) -> Result<u32, HarnessError> {
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))
    };
    let isolation = program.isolation.ok_or_else(|| {
        HarnessError::Start(format!(
            "{name}: an external agent here needs its own resolv.conf"
        ))
    })?;
    let inherited = (outage_lab_host::AGENT_INHERITED_ENV.iter())
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)));
    let mut cmd = Command::new(program.argv[0].as_str());
    cmd.args(&program.argv[1..])
        .current_dir(program.workdir)
        .env_clear()
        .envs(inherited)
        .envs(program.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(open_log()?))
        .stderr(Stdio::from(open_log()?))
        .kill_on_drop(true);
    outage_lab_host::die_with_parent(&mut cmd);
    isolation.apply(&mut cmd);
    if let Some(limit) = data_limit {
        limit_data(&mut cmd, limit);
    }
    let mut child = cmd.spawn().map_err(|e| {
        HarnessError::Start(format!(
            "{name}: could not start {:?} (in {}): {e}",
            program.argv[0],
            program.workdir.display()
        ))
    })?;
    let pid = (child.id()).ok_or_else(|| HarnessError::Start(format!("{name}: exited at once")))?;
    teller.pid = pid;
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => outage_lab_host::describe_status(status),
            Err(e) => format!("wait failed: {e}"),
        };
        // What it forked dies with it. The group's id is not reused while any member lives,
        // so this reaches only the program's own processes.
        signal_group(pid, libc::SIGKILL);
        teller.exited(status);
    });
    Ok(pid)
}

/// Sets `RLIMIT_DATA` in the child before exec: its heap cannot grow past `limit` bytes.
fn limit_data(cmd: &mut Command, limit: u64) {
    let rlim = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which
    // is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_DATA, &rlim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub use outage_lab_engine::logs::tail;

/// Hears one process: turns its stdout lines into journal events (the first `ready` also answers
/// [`Pending::ready`]) and reports its exit once.
struct Teller {
    tx: mpsc::UnboundedSender<Inbound>,
    source: String,
    pid: u32,
    clock: LabClock,
    ready: Option<oneshot::Sender<BTreeMap<String, SocketAddr>>>,
    /// Set when the harness stopped it on purpose.
    expected: Arc<AtomicBool>,
    exited: watch::Sender<bool>,
}

impl Teller {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn hear(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            tracing::debug!(process = %self.source, %line, "ignoring a stdout line that is not an event");
            return;
        };
        if let (Event::Ready { addrs, .. }, Some(ready)) = (&event, self.ready.take()) {
            let _ = ready.send(addrs.clone());
        }
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: self.source.clone(),
            pid: Some(self.pid),
            event,
        });
    }

    fn exited(self, status: String) {
        let _ = self.exited.send(true);
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: self.source.clone(),
            pid: Some(self.pid),
            event: Event::ProcessExited {
                name: self.source,
                pid: self.pid,
                status,
                expected: self.expected.load(Ordering::SeqCst),
            },
        });
    }
}

/// How a process ended whose launcher went away before saying: its machine or container is
/// gone, and the process with it.
pub const LOST_WITH_HOST: &str = "lost with its launcher host";

/// What to start on a launcher: name, outage-lab arguments, log, or an external program.
type RemoteSpawn<'a> = (
    &'a str,
    &'a [String],
    &'a Path,
    Option<outage_lab_host::ProgramRequest>,
);

/// The request for a launcher: an external program writes its own log where the launcher can
/// (the run directory's volume); a role's config travels in the request, named in `args`
/// relative to the directory the launcher gives it, so the launcher may be on another machine.
fn spawn_request(
    name: &str,
    args: &[String],
    log: &Path,
    program: Option<outage_lab_host::ProgramRequest>,
) -> Result<outage_lab_host::SpawnRequest, HarnessError> {
    let mut request = outage_lab_host::SpawnRequest {
        name: name.to_owned(),
        args: args.to_vec(),
        files: BTreeMap::new(),
        log: program.is_some().then(|| log.to_owned()),
        program,
    };
    let config_at = (request.args.iter())
        .position(|a| a == "--config")
        .map(|i| i + 1);
    if let Some(arg) = config_at.and_then(|i| request.args.get_mut(i)) {
        let path = PathBuf::from(&*arg);
        let file = (path.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        request.files.insert(file.clone(), text);
        *arg = file;
    }
    Ok(request)
}

/// Asks `name`'s launcher host (at `host`) to start it; the response body is the child's stdout followed by
/// its exit status, read by a task that feeds `teller`. A stream that ends without the status
/// means the launcher (or its container) went away, and the process with it.
async fn spawn_remote(
    remote: &remote::Remote,
    host: SocketAddr,
    (name, args, log, program): RemoteSpawn<'_>,
    mut teller: Teller,
) -> Result<u32, HarnessError> {
    let url = format!("http://{host}/processes");
    let request = spawn_request(name, args, log, program)?;
    // A role's stderr comes back in the body; it lands in the run directory's log as it would
    // locally.
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))?;
    let mut response = remote
        .client
        .post(&url)
        .json(&request)
        .send()
        .await
        .map_err(|e| {
            HarnessError::Start(format!(
                "{name}: could not reach its launcher at {url}: {e}"
            ))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(HarnessError::Start(format!(
            "{name}: the launcher at {url} answered {status}: {}",
            body.trim()
        )));
    }
    let pid = response
        .headers()
        .get(outage_lab_host::PID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            HarnessError::Start(format!(
                "{name}: the launcher at {url} did not say the pid ({})",
                outage_lab_host::PID_HEADER
            ))
        })?;
    teller.pid = pid;
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut status = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line[..end]);
                        if let Ok(exit) = serde_json::from_str::<outage_lab_host::ExitLine>(&line) {
                            status = Some(exit.host_exit);
                        } else if let Ok(said) =
                            serde_json::from_str::<outage_lab_host::StderrLine>(&line)
                        {
                            use std::io::Write;
                            let _ = writeln!(log_file, "{}", said.host_stderr);
                        } else {
                            teller.hear(&line);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(process = %teller.source, "lost the stream from its launcher: {e}");
                    break;
                }
            }
        }
        teller.exited(status.unwrap_or_else(|| LOST_WITH_HOST.to_owned()));
    });
    Ok(pid)
}

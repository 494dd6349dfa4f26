//! The launcher: one per container in the compose deployment, starting role processes there on
//! the harness's request.
//!
//! Locally the harness forks every role process itself. Across containers it cannot: a storage
//! server must run in its own container, with its own address, in that container's memory
//! accounting. So each container runs `outage-lab host`, and the harness asks it over HTTP to
//! start `outage-lab <role> ...`. Everything else stays as it is locally: the child's stdout is
//! still its event stream (now carried back as the body of the HTTP response that started it),
//! its stderr still ends in `logs/<name>.log` in the harness's run directory (carried back in
//! the same body as [`StderrLine`]s), and the harness still decides when it stops. Nothing is
//! shared but the network: a role's config travels in the request ([`SpawnRequest::files`]) and
//! is written into a directory of its own here, so a launcher may run on another machine.
//!
//! Routes (every one but `/health` under the shared admin rule, [`outage_lab_proto::access`]):
//!
//! | route | answer |
//! |---|---|
//! | `POST /processes` | JSON [`SpawnRequest`]; `200` with the pid in the [`PID_HEADER`] header and a body that streams the child's stdout lines and its stderr as [`StderrLine`]s, then one [`ExitLine`] once it has exited and been reaped. `409` if a process of that name runs here. |
//! | `POST /processes/{name}/signal` | JSON [`SignalRequest`]; `204` once sent, `404` if no such process runs here. |
//! | `GET /processes` | JSON map of running process names to pids |
//! | `GET /memory` | JSON map of running process names to [`ProcessMemory`]: the kernel's RSS of each child, read here where it lives (an external agent's whole process tree), for the watchdog |
//! | `GET /identity` | JSON [`Registration`]: the launcher's service, host name and address, for a harness that found it through the engine's DNS |
//! | `GET /health` | `ok` |
//!
//! Ownership: a child lives no longer than the response that started it. If the harness goes away
//! (its connection closes), the launcher kills the child; if the launcher dies, the kernel kills
//! its children (`PR_SET_PDEATHSIG`, see [`die_with_parent`]). On SIGTERM the launcher sends its
//! children SIGTERM, gives them [`STOP_GRACE`], and returns.

mod discovery;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use outage_lab_proto::wire::ProcessMemory;
use outage_lab_proto::{EngineEvent, EventSink, access};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use discovery::{
    Registration, TOKEN_FILE, advertised_ipv4, load_or_create_token, parse_hosts_file,
    read_token_file, register, registrations,
};

/// The response header that carries the spawned child's pid.
pub const PID_HEADER: &str = "x-outage-lab-pid";

/// How long children get between SIGTERM and the launcher returning when it is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Largest request body accepted: a spawn request is a name, a few arguments and a path.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest process name accepted; names become file names (`logs/<name>.log`, the process's
/// directory here).
const MAX_NAME_LEN: usize = 64;

/// Configuration of one launcher.
#[derive(Debug, Clone)]
pub struct Config {
    /// The program every child runs: the outage-lab binary itself, so the launcher starts
    /// nothing but outage-lab roles.
    pub exe: PathBuf,
    /// Bearer token every request but `/health` must carry; `None` admits loopback peers only.
    pub admin_token: Option<String>,
    /// Environment set on every child besides what it inherits (the admin token, so the roles'
    /// own admin APIs accept the harness).
    pub child_env: Vec<(String, String)>,
    /// The address to announce in the readiness line; the bound address when `None`.
    pub advertise: Option<SocketAddr>,
    /// The one program besides outage-lab this launcher may start: an external agent, named as
    /// the scenario's `agent.command` names it (`prometheus`, `/agent/bin/my-agent`). `None`:
    /// outage-lab roles only.
    pub agent: Option<String>,
    /// What the launcher tells a harness that found it by DNS (`GET /identity`): its service,
    /// host name and address. `None`: it answers 404 (a launcher started by hand).
    pub identity: Option<Registration>,
    /// Where each role gets a directory of its own (`<work_dir>/<name>`) holding the files its
    /// request carried; it is the role's working directory. While a child runs, its pid is in
    /// `<work_dir>/<name>.pid`, so a role finds its neighbour here (a storage server its agent:
    /// `../agent-s03.pid` from its own directory).
    pub work_dir: PathBuf,
}

/// The harness's environment variables an external agent inherits (here: the launcher's);
/// the spawn request sets the rest.
pub const AGENT_INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// The socket the launcher serves on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP listener for the routes above.
    pub http: TcpListener,
}

/// Why the launcher stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's local address could not be read.
    #[error("failed to read the HTTP listener's address")]
    LocalAddr(#[source] std::io::Error),
    /// The HTTP server stopped with an I/O error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// What the harness asks for: run `<exe> <args>` as `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// The process's name in the run (`storage-s03`): letters, digits, `-` and `_`.
    pub name: String,
    /// Arguments after the program, e.g. `["storage", "--config", "storage-s03.json"]`.
    pub args: Vec<String>,
    /// Files the role reads (its config), by file name: written into the role's own directory
    /// on the launcher, its working directory, so `args` name them relative to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// For an external program only: where its stdout and stderr are appended (created if
    /// missing; its directory must exist here). A role's stderr is streamed back instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Instead of an outage-lab role: the external agent to run (`args` is then ignored). The
    /// launcher must have been started with `--agent` naming `argv[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramRequest>,
}

/// An external agent to start: its stdout and stderr both go to the log; the response streams
/// only its exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramRequest {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its environment, besides [`AGENT_INHERITED_ENV`].
    pub env: std::collections::BTreeMap<String, String>,
    /// Its working directory (shared with the harness: the run directory's volume).
    pub workdir: PathBuf,
}

/// A signal the harness may send to a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// SIGINT.
    Int,
    /// SIGTERM: stop gracefully.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

impl Signal {
    /// The signal's number.
    pub fn number(self) -> libc::c_int {
        match self {
            Self::Int => libc::SIGINT,
            Self::Term => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

/// Body of `POST /processes/{name}/signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// Which signal to send.
    pub signal: Signal,
}

/// A line a role wrote to its stderr, in a spawn response's body, for the harness's log of it.
/// It cannot be mistaken for an event (events are tagged objects without this key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StderrLine {
    /// The line, without its newline.
    pub host_stderr: String,
}

/// The last line of a spawn response's body: how the child ended. It cannot be mistaken for an
/// event (events are tagged objects without this key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitLine {
    /// `exit code N` or `killed by signal N`.
    pub host_exit: String,
}

/// Makes `cmd`'s child die with this process: `PR_SET_PDEATHSIG = SIGKILL`, set between fork and
/// exec. The signal is tied to the thread that forks, so callers run on a single-threaded
/// runtime whose thread lives as long as the process. If the parent is already gone by the time
/// the child gets there, exec is refused, so no child outlives a dead parent.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls async-signal-safe
    // functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}

/// How a reaped child ended, as the journal words it.
pub fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Sends `sig` to `pid`; only called for children that have not been reaped (a zombie keeps its
/// pid until reaped, so the pid is still ours).
pub fn send_signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

struct Host {
    config: Config,
    /// Children that run and have not been reaped, by name.
    running: Mutex<BTreeMap<String, u32>>,
}

impl Host {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u32>> {
        // Every critical section is one insert, remove or clone: the map is consistent even if
        // a holder panicked.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves the launcher until `shutdown` is cancelled, then stops its children (SIGTERM, up to
/// [`STOP_GRACE`]) and returns. Emits one `EngineEvent::Ready` with `role: "host"` and
/// `addrs: {"http": addr}` once serving.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink<EngineEvent>,
) -> Result<(), Error> {
    let bound = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let addr = config.advertise.unwrap_or(bound);
    let host = Arc::new(Host {
        config,
        running: Mutex::new(BTreeMap::new()),
    });
    let app = router(Arc::clone(&host));
    let serve = axum::serve(
        listeners.http,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .into_future();
    tracing::info!(%bound, "host launcher listening on http://{addr}");
    events.emit(EngineEvent::Ready {
        role: "host".into(),
        addrs: BTreeMap::from([("http".to_owned(), addr)]),
    });

    let mut serve = std::pin::pin!(serve);
    tokio::select! {
        result = &mut serve => result.map_err(Error::Serve)?,
        () = shutdown.cancelled() => {}
    }
    stop_children(&host).await;
    // Open spawn responses end once their children are reaped; give the server a moment to
    // send those last lines, then stop waiting.
    let _ = tokio::time::timeout(Duration::from_millis(500), serve).await;
    tracing::info!("host launcher stopped");
    Ok(())
}

/// SIGTERM to every child, then wait until all are reaped or [`STOP_GRACE`] passes; whatever is
/// left dies with the launcher (kill on drop, and the parent-death signal).
async fn stop_children(host: &Host) {
    let pids: Vec<u32> = host.running().values().copied().collect();
    for pid in &pids {
        signal_whole(*pid, libc::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while !host.running().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn router(host: Arc<Host>) -> Router {
    let guarded = Router::new()
        .route("/processes", post(spawn).get(list))
        .route("/processes/{name}/signal", post(signal))
        .route("/memory", get(memory))
        .route("/identity", get(identity))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&host),
            require_access,
        ));
    Router::new()
        .merge(guarded)
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(host)
}

async fn require_access(
    State(host): State<Arc<Host>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match access::check(host.config.admin_token.as_deref(), peer.ip(), authorization) {
        Ok(()) => next.run(request).await,
        Err(access::Denied::NotLoopback) => reject(
            StatusCode::FORBIDDEN,
            format!(
                "{peer} is not a loopback client; start the launcher with a token to allow remote clients"
            ),
        ),
        Err(access::Denied::BadToken) => {
            let mut response = reject(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

fn reject(status: StatusCode, message: String) -> Response {
    (status, message + "\n").into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /processes`.
async fn list(State(host): State<Arc<Host>>) -> Json<BTreeMap<String, u32>> {
    Json(host.running().clone())
}

/// `GET /identity`.
async fn identity(State(host): State<Arc<Host>>) -> Response {
    match &host.config.identity {
        Some(reg) => Json(reg.clone()).into_response(),
        None => reject(
            StatusCode::NOT_FOUND,
            "this launcher was started without --service".into(),
        ),
    }
}

/// `GET /memory`: each running child's resident memory, read from `/proc` now. A child that
/// leads a process group of its own (an external agent) is read as its whole tree; a zombie or
/// a child gone since the map was read is left out, which the watchdog takes as gone.
async fn memory(State(host): State<Arc<Host>>) -> Json<BTreeMap<String, ProcessMemory>> {
    let running = host.running().clone();
    let read = tokio::task::spawn_blocking(move || {
        (running.into_iter())
            .filter_map(|(name, pid)| Some((name, read_memory(pid)?)))
            .collect()
    });
    Json(read.await.unwrap_or_default())
}

fn read_memory(pid: u32) -> Option<ProcessMemory> {
    use outage_lab_proto::procfs;
    // SAFETY: sysconf has no preconditions.
    let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start_time = procfs::parse_start_time(&stat)?;
    let rss_bytes = if procfs::parse_group(&stat) == Some(pid) {
        procfs::tree_resident_bytes(pid, page_size)?
    } else {
        procfs::resident_bytes(&format!("/proc/{pid}/statm"), page_size)?
    };
    (rss_bytes > 0).then_some(ProcessMemory {
        rss_bytes,
        start_time,
    })
}

/// `POST /processes/{name}/signal`.
async fn signal(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    Json(req): Json<SignalRequest>,
) -> Response {
    // Looked up and signalled under the lock: an entry leaves the map only when its child has
    // been reaped, so the pid cannot have been recycled.
    let running = host.running();
    match running.get(&name) {
        Some(&pid) => {
            signal_whole(pid, req.signal.number());
            StatusCode::NO_CONTENT.into_response()
        }
        None => reject(
            StatusCode::NOT_FOUND,
            format!("no process named {name:?} runs on this host"),
        ),
    }
}

/// `POST /processes`.
async fn spawn(State(host): State<Arc<Host>>, Json(req): Json<SpawnRequest>) -> Response {
    if !valid_name(&req.name) {
        return reject(
            StatusCode::BAD_REQUEST,
            format!(
                "process name {:?}: expected 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'",
                req.name
            ),
        );
    }
    if let Some(pid) = host.running().get(&req.name) {
        return reject(
            StatusCode::CONFLICT,
            format!("{} already runs here as pid {pid}", req.name),
        );
    }
    let mut cmd = match command(&host.config, &req) {
        Ok(cmd) => cmd,
        Err(refusal) => return refusal,
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let program = (req.program.as_ref()).map_or(host.config.exe.clone(), |p| {
                PathBuf::from(p.argv.first().cloned().unwrap_or_default())
            });
            return reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not start {}: {e}", program.display()),
            );
        }
    };
    let Some(pid) = child.id() else {
        return reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} exited at once", req.name),
        );
    };
    host.running().insert(req.name.clone(), pid);
    let pid_file = host.config.work_dir.join(format!("{}.pid", req.name));
    if let Err(e) = std::fs::create_dir_all(&host.config.work_dir)
        .and_then(|()| std::fs::write(&pid_file, format!("{pid}\n")))
    {
        tracing::warn!(name = %req.name, "cannot write {}: {e}", pid_file.display());
    }
    tracing::info!(name = %req.name, pid, "started");
    let stdout = child.stdout.take();
    let stream = Streaming {
        lines: stdout.map(|out| BufReader::new(out).lines()),
        stderr: child.stderr.take().map(stderr_lines),
        group: req.program.is_some(),
        child,
        entry: Entry {
            host,
            name: req.name,
            pid,
        },
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(stream, Streaming::next));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .headers_mut()
        .insert(PID_HEADER, HeaderValue::from(pid));
    response
}

/// The command for `req`: an outage-lab role (stdout and stderr piped: its events and its log
/// lines, in its own directory holding the request's files), or the one external agent this
/// launcher may run (stdout and stderr to the log, its own environment and directory).
#[allow(clippy::result_large_err)]
fn command(config: &Config, req: &SpawnRequest) -> Result<Command, Response> {
    let mut cmd = match &req.program {
        Some(program) => program_command(config, req, program)?,
        None => {
            let dir = role_dir(config, req)?;
            let mut cmd = Command::new(&config.exe);
            cmd.args(&req.args)
                .current_dir(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .env("OUTAGE_LAB_PROCESS", &req.name)
                .envs(config.child_env.iter().map(|(k, v)| (k, v)));
            cmd
        }
    };
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    die_with_parent(&mut cmd);
    Ok(cmd)
}

/// A fresh `<work_dir>/<name>` holding the request's files. A restarted role gets its
/// directory anew, with the files its new request carries.
#[allow(clippy::result_large_err)]
fn role_dir(config: &Config, req: &SpawnRequest) -> Result<PathBuf, Response> {
    let dir = config.work_dir.join(&req.name);
    let unwritable = |what: &str, e: std::io::Error| {
        reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "cannot write {what} for {} in {}: {e}",
                req.name,
                dir.display()
            ),
        )
    };
    if let Some(bad) = req.files.keys().find(|f| !valid_file_name(f)) {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            format!(
                "file name {bad:?}: expected 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not starting with '.'"
            ),
        ));
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unwritable("its directory", e)),
    }
    std::fs::create_dir_all(&dir).map_err(|e| unwritable("its directory", e))?;
    for (file, text) in &req.files {
        std::fs::write(dir.join(file), text).map_err(|e| unwritable(file, e))?;
    }
    Ok(dir)
}

fn valid_file_name(name: &str) -> bool {
    !name.starts_with('.') && valid_name(&name.replace('.', "_"))
}

/// The external agent's command, if it is the one this launcher may run.
#[allow(clippy::result_large_err)]
fn program_command(
    config: &Config,
    req: &SpawnRequest,
    program: &ProgramRequest,
) -> Result<Command, Response> {
    let first = program.argv.first().map(String::as_str);
    if first.is_none() || first != config.agent.as_deref() {
        return Err(reject(
            StatusCode::FORBIDDEN,
            format!(
                "this launcher runs outage-lab roles{}; it was asked for {first:?} (start it with --agent naming that program)",
                config
                    .agent
                    .as_ref()
                    .map(|a| format!(" and {a:?}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let Some(path) = &req.log else {
        return Err(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an external program needs `log`: where its output goes".into(),
        ));
    };
    let log = (std::fs::OpenOptions::new().create(true).append(true))
        .open(path)
        .and_then(|log| Ok((log.try_clone()?, log)))
        .map_err(|e| {
            reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot open the log {}: {e}", path.display()),
            )
        })?;
    let mut cmd = Command::new(&program.argv[0]);
    let inherited =
        (AGENT_INHERITED_ENV.iter()).filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)));
    // Its own process group: a forking agent is signalled whole.
    cmd.process_group(0)
        .args(&program.argv[1..])
        .current_dir(&program.workdir)
        .env_clear()
        .envs(inherited)
        .envs(&program.env)
        .stdout(Stdio::from(log.0))
        .stderr(Stdio::from(log.1));
    Ok(cmd)
}

/// A role's stderr as lines on a channel, read by a task of its own so that a chatty stderr
/// never blocks its stdout; the channel closes when the role closes its stderr.
fn stderr_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// A child's entry in the running map; dropping it removes the entry. It is dropped when the
/// child has been reaped, or when the response is dropped (the harness went away) together with
/// the child, which `kill_on_drop` then kills.
struct Entry {
    host: Arc<Host>,
    name: String,
    pid: u32,
}

impl Entry {
    /// Removes the entry if it is still this child's: a new process of the same name (an agent
    /// restarted after this one exited) keeps its own.
    fn release(&self) {
        let mut running = self.host.running();
        if running.get(&self.name) == Some(&self.pid) {
            running.remove(&self.name);
            let pid_file = (self.host.config.work_dir).join(format!("{}.pid", self.name));
            let _ = std::fs::remove_file(pid_file);
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.release();
    }
}

/// The state behind one spawn response's body.
struct Streaming {
    /// An outage-lab role's stdout; `None` for an external agent, whose output is in its log.
    lines: Option<Lines<BufReader<ChildStdout>>>,
    /// A role's stderr lines, until it closes its stderr.
    stderr: Option<mpsc::Receiver<String>>,
    /// An external agent, leading a process group of its own.
    group: bool,
    child: Child,
    entry: Entry,
    done: bool,
}

/// What the child said next.
enum Said {
    Out(Option<String>),
    Err(Option<String>),
}

impl Streaming {
    /// The next line for the body: a stdout line as it is, a stderr line as a [`StderrLine`];
    /// `None` once both have ended (a stderr left open past stdout's end is given up after a
    /// moment).
    async fn next_line(&mut self) -> Option<String> {
        loop {
            let (lines, stderr) = (&mut self.lines, &mut self.stderr);
            let said = match (lines.as_mut(), stderr.as_mut()) {
                (None, None) => return None,
                (Some(out), None) => Said::Out(out.next_line().await.ok().flatten()),
                (None, Some(err)) => {
                    let line = tokio::time::timeout(STOP_GRACE, err.recv()).await;
                    Said::Err(line.ok().flatten())
                }
                (Some(out), Some(err)) => tokio::select! {
                    line = out.next_line() => Said::Out(line.ok().flatten()),
                    line = err.recv() => Said::Err(line),
                },
            };
            match said {
                Said::Out(Some(line)) => return Some(line),
                Said::Err(Some(line)) => {
                    let line = StderrLine { host_stderr: line };
                    return serde_json::to_string(&line).ok();
                }
                Said::Out(None) => self.stdout_done(),
                Said::Err(None) => self.stderr = None,
            }
        }
    }

    fn stdout_done(&mut self) {
        self.lines = None;
    }

    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        match self.next_line().await {
            Some(mut line) => {
                line.push('\n');
                Some((Ok(Bytes::from(line)), self))
            }
            // End of stdout (or an unreadable pipe) and of stderr: the child is exiting. Reap
            // it, drop its entry in the same step (no await in between, so no signal can hit a
            // recycled pid), and tell how it ended.
            None => {
                let status = match self.child.wait().await {
                    Ok(status) => describe_status(status),
                    Err(e) => format!("wait failed: {e}"),
                };
                if self.group {
                    // An external agent: what it forked dies with it. Its group's id is not
                    // reused while any member lives, so this reaches only its own processes.
                    if let Ok(pgid) = libc::pid_t::try_from(self.entry.pid) {
                        // SAFETY: kill(2) has no memory-safety preconditions.
                        unsafe {
                            libc::kill(-pgid, libc::SIGKILL);
                        }
                    }
                }
                self.entry.release();
                tracing::info!(name = %self.entry.name, %status, "exited");
                self.done = true;
                let mut line = serde_json::to_string(&ExitLine { host_exit: status })
                    .unwrap_or_else(|_| String::from("{}"));
                line.push('\n');
                Some((Ok(Bytes::from(line)), self))
            }
        }
    }
}

/// Sends `sig` to a child: to its whole process group when it leads one (an external agent,
/// started in a group of its own), else to the child alone (a role shares the launcher's).
fn signal_whole(pid: u32, sig: libc::c_int) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let leads = outage_lab_proto::procfs::parse_group(&stat) == Some(pid);
    match libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the caller holds the child unreaped.
        Ok(pgid) if leads => unsafe {
            libc::kill(-pgid, sig);
        },
        _ => send_signal(pid, sig),
    }
}

/// Whether `ip` may be announced to other containers (not loopback, not unspecified).
pub fn routable(ip: IpAddr) -> bool {
    !ip.is_loopback() && !ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_are_short_file_safe_words() {
        assert!(valid_name("storage-s03"));
        assert!(valid_name("dns_a"));
        assert!(!valid_name(""));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn an_exit_line_is_never_read_as_an_event() {
        let line = serde_json::to_string(&ExitLine {
            host_exit: "exit code 0".into(),
        })
        .expect("encode");
        assert!(serde_json::from_str::<EngineEvent>(&line).is_err());
    }
}

//! The launcher: one per container in the compose deployment, starting role processes there on
//! the harness's request.
//!
//! Locally the harness forks every role process itself. Across containers it cannot: a storage
//! server must run in its own container, with its own address, in that container's memory
//! accounting. So each container runs `outage-lab host`, and the harness asks it over HTTP to
//! start `outage-lab <role> ...`. Everything else stays as it is locally: the child's stdout is
//! still its event stream (now carried back as the body of the HTTP response that started it),
//! its stderr still goes to `logs/<name>.log` in the run directory (a volume every container
//! mounts at the same path), and the harness still decides when it stops.
//!
//! Routes (every one but `/health` under the shared admin rule, [`outage_lab_proto::access`]):
//!
//! | route | answer |
//! |---|---|
//! | `POST /processes` | JSON [`SpawnRequest`]; `200` with the pid in the [`PID_HEADER`] header and a body that streams the child's stdout lines, then one [`ExitLine`] once it has exited and been reaped. `409` if a process of that name runs here. |
//! | `POST /processes/{name}/signal` | JSON [`SignalRequest`]; `204` once sent, `404` if no such process runs here. |
//! | `GET /processes` | JSON map of running process names to pids |
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
use outage_lab_proto::{Event, EventSink, access};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

pub use discovery::{
    Registration, TOKEN_FILE, advertised_ipv4, load_or_create_token, parse_hosts_file, register,
    registrations,
};

/// The response header that carries the spawned child's pid.
pub const PID_HEADER: &str = "x-outage-lab-pid";

/// How long children get between SIGTERM and the launcher returning when it is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Largest request body accepted: a spawn request is a name, a few arguments and a path.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest process name accepted; names become file names (`logs/<name>.log`).
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
    /// Arguments after the program, e.g. `["storage", "--config", "/runs/x/config/storage-s03.json"]`.
    pub args: Vec<String>,
    /// Where the child's stderr is appended (created if missing); its directory must exist.
    pub log: PathBuf,
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
/// [`STOP_GRACE`]) and returns. Emits one `Event::Ready` with `role: "host"` and
/// `addrs: {"http": addr}` once serving.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
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
    events.emit(Event::Ready {
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
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&req.log)
    {
        Ok(file) => file,
        Err(e) => {
            return reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot open the log {}: {e}", req.log.display()),
            );
        }
    };
    let mut cmd = match command(&host.config, &req, log) {
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
    tracing::info!(name = %req.name, pid, "started");
    let stdout = child.stdout.take();
    let stream = Streaming {
        lines: stdout.map(|out| BufReader::new(out).lines()),
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

/// The command for `req`: an outage-lab role (stdout piped: its events), or the one external
/// agent this launcher may run (stdout and stderr to the log, its own environment and
/// directory).
#[allow(clippy::result_large_err)]
fn command(config: &Config, req: &SpawnRequest, log: std::fs::File) -> Result<Command, Response> {
    let mut cmd;
    if let Some(program) = &req.program {
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
        let stdout = log.try_clone().map_err(|e| {
            reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot share the log: {e}"),
            )
        })?;
        cmd = Command::new(&program.argv[0]);
        let inherited = (AGENT_INHERITED_ENV.iter())
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)));
        // Its own process group: a forking agent is signalled whole.
        cmd.process_group(0)
            .args(&program.argv[1..])
            .current_dir(&program.workdir)
            .env_clear()
            .envs(inherited)
            .envs(&program.env)
            .stdout(Stdio::from(stdout));
    } else {
        cmd = Command::new(&config.exe);
        cmd.args(&req.args)
            .stdout(Stdio::piped())
            .env("OUTAGE_LAB_PROCESS", &req.name)
            .envs(config.child_env.iter().map(|(k, v)| (k, v)));
    }
    cmd.stdin(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    Ok(cmd)
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
    child: Child,
    entry: Entry,
    done: bool,
}

impl Streaming {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done {
            return None;
        }
        let line = match &mut self.lines {
            Some(lines) => lines.next_line().await,
            None => Ok(None),
        };
        match line {
            Ok(Some(mut line)) => {
                line.push('\n');
                Some((Ok(Bytes::from(line)), self))
            }
            // End of stdout (or an unreadable pipe): the child is exiting. Reap it, drop its
            // entry in the same step (no await in between, so no signal can hit a recycled pid),
            // and tell how it ended.
            Ok(None) | Err(_) => {
                let status = match self.child.wait().await {
                    Ok(status) => describe_status(status),
                    Err(e) => format!("wait failed: {e}"),
                };
                if self.lines.is_none() {
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
        assert!(serde_json::from_str::<Event>(&line).is_err());
    }
}

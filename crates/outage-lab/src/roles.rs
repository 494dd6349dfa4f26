//! The hidden role commands (their arguments too: `cli::Command` flattens [`RoleCommand`] in):
//! bind what the role needs, load its config, run it until SIGINT or SIGTERM. Each role runs on a single-threaded runtime: they are small, I/O-bound processes and
//! a fleet has hundreds of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use outage_lab_proto::EventSink;
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::exit;

/// The hidden role commands the harness spawns, and the launcher (`outage-lab host`); part of
/// the command line (`cli::Command` flattens them in).
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Role: an authoritative DNS server for lab.internal (spawned by the harness).
    #[command(hide = true)]
    Dns(DnsArgs),
    /// Role: a data-collection server (spawned by the harness).
    #[command(hide = true)]
    Collector(ListenArgs),
    /// Role: a storage server's reporting agent (spawned by the harness).
    #[command(hide = true)]
    Agent(AgentArgs),
    /// Role: a storage server (spawned by the harness).
    #[command(hide = true)]
    Storage(ListenArgs),
    /// Role: the memory watchdog (spawned by the harness).
    #[command(hide = true)]
    Watchdog(ListenArgs),
    /// Role: the EBS control plane (spawned by the harness).
    #[command(hide = true)]
    Control(ListenArgs),
    /// Launcher for one container of the compose deployment: starts role processes there when
    /// the harness (`run --hosts`) asks.
    ///
    /// It registers itself in the state directory every container mounts, creates or reads the
    /// admin token there, and refuses every request without it. It starts nothing but
    /// outage-lab roles, and they die with it.
    ///
    /// Example (compose/compose.yaml does this): outage-lab host --service storage --state /lab
    Host(HostArgs),
}

/// The agent role's arguments.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's JSON config, as the harness writes it in <run>/config/.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Serve `GET /metrics` on this address (port 0: the kernel chooses, the real one is
    /// announced). Without it the agent listens on nothing.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// A role with one listening address.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The role's JSON config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to serve on; port 0 lets the kernel choose (the real one is announced).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
}

/// The launcher's arguments.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Address for the launcher's HTTP API. Off loopback it needs the admin token (from
    /// --state, --token-file or OUTAGE_LAB_ADMIN_TOKEN).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7070")]
    pub listen: SocketAddr,
    /// The compose service this launcher belongs to: dns, collector-old, collector-new,
    /// watchdog, control or storage; or a DNS server's name (dns-a) to run only that one, or
    /// storage-<dns server> (storage-dns-c) for storage servers behind that DNS server. The
    /// launcher registers under it (--state) and tells it to a harness that finds it by DNS
    /// (`GET /identity`).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// State directory shared by every container (one machine): the launcher registers there
    /// and takes the admin token from there (creating it if it is the first).
    #[arg(
        long,
        value_name = "DIR",
        requires = "service",
        conflicts_with = "token_file"
    )]
    pub state: Option<PathBuf>,
    /// The admin token, from a file: a Docker secret (/run/secrets/NAME) when the launchers are
    /// found by DNS (`run --hosts dns:PORT`) and share no volume.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where each role started here gets a directory of its own, holding its config (default:
    /// a fresh directory under the system's temporary directory, removed on exit).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The address to announce (default: this container's address in /etc/hosts when
    /// listening on 0.0.0.0, else the listening address).
    #[arg(long, value_name = "IP")]
    pub advertise: Option<std::net::IpAddr>,
    /// An external agent this launcher may start besides outage-lab roles, named as the
    /// scenario's agent.command names it (e.g. prometheus). Without it, a request for any other
    /// program is refused.
    #[arg(long, value_name = "PROGRAM")]
    pub agent: Option<String>,
}

/// The DNS role's addresses.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The role's JSON config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address for DNS over UDP and TCP (one port for both); port 0 lets the kernel choose.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the admin HTTP API that changes records.
    #[arg(long, value_name = "ADDR")]
    pub admin: SocketAddr,
    /// A second address for the same zone, e.g. port 53 for programs that resolve through
    /// /etc/resolv.conf.
    #[arg(long, value_name = "ADDR")]
    pub also: Option<SocketAddr>,
}

/// Runs a role command to completion and returns its exit code: 0 after a clean stop, 2 for a bad
/// config file, 3 when the role failed (could not bind, crashed).
pub fn run(command: RoleCommand) -> ExitCode {
    let ran = crate::single_threaded_runtime()
        .context("cannot start a runtime")
        .map_err(RoleError::Failed)
        .and_then(|runtime| runtime.block_on(run_async(command)));
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(RoleError::Config(e)) => {
            eprintln!("outage-lab: {e:#}");
            ExitCode::from(exit::BAD_INPUT)
        }
        Err(RoleError::Failed(e)) => {
            eprintln!("outage-lab: {e:#}");
            ExitCode::from(exit::HARNESS_FAILED)
        }
    }
}

enum RoleError {
    Config(anyhow::Error),
    Failed(anyhow::Error),
}

/// Installs the signal handlers and the freeze support every role needs, then runs the role
/// `command` names until it stops.
async fn run_async(command: RoleCommand) -> Result<(), RoleError> {
    let shutdown = CancellationToken::new();
    stop_on_signals(shutdown.clone()).map_err(RoleError::Failed)?;
    // `outage-lab workshop` stops and continues the whole run: each role must tell an outcome
    // that spanned the freeze from a real one.
    outage_lab_proto::freeze::install();
    let events = EventSink::stdout();
    match command {
        RoleCommand::Dns(args) => dns(args, shutdown, events).await,
        RoleCommand::Collector(args) => collector(args, shutdown, events).await,
        RoleCommand::Agent(args) => agent(args, shutdown, events).await,
        RoleCommand::Storage(args) => storage(args, shutdown, events).await,
        RoleCommand::Watchdog(args) => watchdog(args, shutdown, events).await,
        RoleCommand::Control(args) => control(args, shutdown, events).await,
        RoleCommand::Host(args) => host(args, shutdown, events).await,
    }
}

/// A DNS server: its config and admin token, its DNS sockets (and the second pair, if asked
/// for) and its admin listener, then serve.
async fn dns(
    args: DnsArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let mut config: outage_lab_dns::Config = load(&args.config)?;
    config.admin_token = admin_token(config.admin_token, args.admin)?;
    let (udp, tcp) = bind_dns(args.listen).await.map_err(RoleError::Failed)?;
    let admin = bind(args.admin).await?;
    let also = match args.also {
        Some(addr) => Some(bind_dns(addr).await.map_err(RoleError::Failed)?),
        None => None,
    };
    let listeners = outage_lab_dns::Listeners {
        udp,
        tcp,
        admin,
        also,
    };
    outage_lab_dns::run(config, listeners, shutdown, events)
        .await
        .context("dns failed")
        .map_err(RoleError::Failed)
}

/// The collector: its config and listener, then serve.
async fn collector(
    args: ListenArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let config: outage_lab_collector::Config = load(&args.config)?;
    let listeners = outage_lab_collector::Listeners {
        http: bind(args.listen).await?,
    };
    outage_lab_collector::run(config, listeners, shutdown, events)
        .await
        .context("collector failed")
        .map_err(RoleError::Failed)
}

/// An agent: its config and, if asked for, its metrics listener, then run.
async fn agent(
    args: AgentArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let config: outage_lab_agent::Config = load(&args.config)?;
    let metrics = match args.metrics {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    outage_lab_agent::run_with_metrics(config, metrics, shutdown, events)
        .await
        .context("agent failed")
        .map_err(RoleError::Failed)
}

/// A storage server: its config and listener, then serve.
async fn storage(
    args: ListenArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let config: outage_lab_storage::Config = load(&args.config)?;
    let listeners = outage_lab_storage::Listeners {
        http: bind(args.listen).await?,
    };
    outage_lab_storage::run(config, listeners, shutdown, events)
        .await
        .context("storage failed")
        .map_err(RoleError::Failed)
}

/// The watchdog: its config and admin token, its listener, then serve.
async fn watchdog(
    args: ListenArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let mut config: outage_lab_watchdog::Config = load(&args.config)?;
    config.admin_token = admin_token(config.admin_token, args.listen)?;
    let listeners = outage_lab_watchdog::Listeners {
        admin: bind(args.listen).await?,
    };
    outage_lab_watchdog::run(config, listeners, shutdown, events)
        .await
        .context("watchdog failed")
        .map_err(RoleError::Failed)
}

/// The control plane: its config and admin token, its listener, then serve.
async fn control(
    args: ListenArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let mut config: outage_lab_control::Config = load(&args.config)?;
    config.admin_token = admin_token(config.admin_token, args.listen)?;
    let listeners = outage_lab_control::Listeners {
        http: bind(args.listen).await?,
    };
    outage_lab_control::run(config, listeners, shutdown, events)
        .await
        .context("control failed")
        .map_err(RoleError::Failed)
}

/// The launcher: its token (state directory, secret file or environment), its registration
/// when it has a state directory, then serve.
async fn host(
    args: HostArgs,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let token = admin_token(host_token(&args)?, args.listen)?;
    let http = bind(args.listen).await?;
    let bound = http
        .local_addr()
        .context("failed to read the listening address")
        .map_err(RoleError::Failed)?;
    let ip = match args.advertise {
        Some(ip) => ip,
        None if bound.ip().is_unspecified() => outage_lab_host::advertised_ipv4()
            .context("failed to find this container's address")
            .map_err(RoleError::Failed)?
            .into(),
        None => bound.ip(),
    };
    let advertise = std::net::SocketAddr::new(ip, bound.port());
    let identity = args.service.as_ref().map(|service| {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| advertise.to_string());
        outage_lab_host::Registration {
            service: service.clone(),
            host: hostname,
            addr: advertise,
        }
    });
    if let (Some(state), Some(reg)) = (&args.state, &identity) {
        let path = outage_lab_host::register(state, reg)
            .with_context(|| format!("failed to register in {}", state.display()))
            .map_err(RoleError::Failed)?;
        tracing::info!(service = reg.service, "registered in {}", path.display());
    }
    let exe = std::env::current_exe()
        .context("cannot find my own executable to start roles")
        .map_err(RoleError::Failed)?;
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("outage-lab-host.{}", std::process::id())),
    };
    let config = outage_lab_host::Config {
        exe,
        child_env: token
            .iter()
            .map(|t| (ADMIN_TOKEN_ENV.to_owned(), t.clone()))
            .collect(),
        admin_token: token,
        advertise: Some(advertise),
        agent: args.agent.clone(),
        identity,
        work_dir: work_dir.clone(),
    };
    let served = outage_lab_host::run(
        config,
        outage_lab_host::Listeners { http },
        shutdown,
        events,
    )
    .await;
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    served
        .context("host launcher failed")
        .map_err(RoleError::Failed)
}

/// The launcher's admin token as configured: from the state directory (created by the first
/// launcher there) or a file (a Docker secret); `None` leaves it to the environment.
fn host_token(args: &HostArgs) -> Result<Option<String>, RoleError> {
    if let Some(state) = &args.state {
        return outage_lab_host::load_or_create_token(state)
            .with_context(|| {
                format!(
                    "failed to read or create the admin token in {}",
                    state.display()
                )
            })
            .map(Some)
            .map_err(RoleError::Failed);
    }
    let Some(file) = &args.token_file else {
        return Ok(None);
    };
    outage_lab_host::read_token_file(file)
        .with_context(|| format!("failed to read the admin token file {}", file.display()))
        .map(Some)
        .map_err(RoleError::Config)
}

/// The environment variable that carries the admin token (it wins over a config file's).
pub const ADMIN_TOKEN_ENV: &str = "OUTAGE_LAB_ADMIN_TOKEN";

/// The admin token to use for an API bound to `addr`: `$OUTAGE_LAB_ADMIN_TOKEN`, else the
/// config's. An admin API that can change DNS or what is watched must not be reachable from
/// another machine without one, so binding it off loopback without a token is refused.
fn admin_token(
    configured: Option<String>,
    addr: std::net::SocketAddr,
) -> Result<Option<String>, RoleError> {
    let token = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or(configured);
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(RoleError::Config(anyhow::anyhow!(
            "refusing to serve the admin API on {addr} without a token: set {ADMIN_TOKEN_ENV} (or admin_token in the config), or bind a loopback address"
        )));
    }
    Ok(token)
}

/// Reads a role's JSON config; unknown fields are errors.
fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RoleError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config {}", path.display()))
        .map_err(RoleError::Config)?;
    serde_json::from_str(&text)
        .with_context(|| format!("invalid config {}", path.display()))
        .map_err(RoleError::Config)
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, RoleError> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
        .map_err(RoleError::Failed)
}

/// DNS serves UDP and TCP on one port. With port 0, UDP picks the port and TCP must get the same
/// one; on the rare collision, try again with a fresh UDP port.
async fn bind_dns(addr: std::net::SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("failed to bind UDP {addr}"))?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() != 0 => {
                return Err(e).with_context(|| format!("failed to listen on TCP {local}"));
            }
            Err(_) => continue,
        }
    }
    bail!(
        "could not find one port free for both UDP and TCP on {}",
        addr.ip()
    )
}

/// Cancels `token` on the first SIGINT or SIGTERM.
fn stop_on_signals(token: CancellationToken) -> Result<()> {
    let mut int = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        }
        token.cancel();
    });
    Ok(())
}

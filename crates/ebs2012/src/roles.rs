//! The 2012 incident's hidden role commands (their arguments too: `cli::Command` flattens
//! [`RoleCommand`] in): bind what the role needs, load its config, run it until SIGINT or
//! SIGTERM, through the engine's role plumbing (`outage_lab_engine::roles`). The DNS servers'
//! role is the engine's (`dns`): every incident's runs use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use outage_lab_ebs_events::EventSink;
use outage_lab_engine::roles::{self, RoleError, admin_token, bind, load};
use tokio_util::sync::CancellationToken;

pub use outage_lab_engine::roles::ADMIN_TOKEN_ENV;

/// The hidden role commands the harness spawns, and the launcher (`outage-lab host`); part of
/// the command line (`cli::Command` flattens them in).
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
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

/// Runs a role command to completion and returns its exit code: 0 after a clean stop, 2 for a bad
/// config file, 3 when the role failed (could not bind, crashed).
pub fn run(command: RoleCommand) -> ExitCode {
    roles::run(|shutdown| async move {
        let events = EventSink::stdout();
        match command {
            RoleCommand::Collector(args) => collector(args, shutdown, events).await,
            RoleCommand::Agent(args) => agent(args, shutdown, events).await,
            RoleCommand::Storage(args) => storage(args, shutdown, events).await,
            RoleCommand::Watchdog(args) => watchdog(args, shutdown, events).await,
            RoleCommand::Control(args) => control(args, shutdown, events).await,
            RoleCommand::Host(args) => host(args, shutdown, events.narrowed()).await,
        }
    })
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
    events: outage_lab_proto::EventSink<outage_lab_proto::EngineEvent>,
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
        None => {
            let temp = std::env::temp_dir();
            reap_stale_work_dirs(&temp);
            temp.join(format!("{WORK_DIR_PREFIX}{}", std::process::id()))
        }
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

/// A launcher's own work directory in the temporary directory: this, then its pid.
const WORK_DIR_PREFIX: &str = "outage-lab-host.";

/// Removes the work directories of launchers that are gone: a launcher killed outright (its
/// container stopped, SIGKILL) leaves its directory behind. A pid that is alive again is left
/// alone, whoever it is now.
fn reap_stale_work_dirs(temp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = (name.to_str())
            .and_then(|n| n.strip_prefix(WORK_DIR_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_launchers_work_directory_is_reaped_and_a_live_ones_is_kept() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mine = temp
            .path()
            .join(format!("{WORK_DIR_PREFIX}{}", std::process::id()));
        let gone = temp
            .path()
            .join(format!("{WORK_DIR_PREFIX}{}", u32::MAX - 1));
        let other = temp.path().join("outage-lab-host.not-a-pid");
        for dir in [&mine, &gone, &other] {
            std::fs::create_dir(dir).expect("created");
        }
        reap_stale_work_dirs(temp.path());
        assert!(mine.exists(), "a live launcher's directory was removed");
        assert!(!gone.exists(), "a gone launcher's directory was left");
        assert!(
            other.exists(),
            "a directory that is no launcher's was removed"
        );
    }
}

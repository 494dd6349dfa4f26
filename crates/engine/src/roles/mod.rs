//! Role commands: what every hidden role command of every incident needs (a runtime, the
//! signals that stop it, its JSON config, its listeners, its admin token, its exit code), and the
//! role commands every incident's runs use ([`EngineRole`]: the lab's DNS server).
//!
//! An incident's own role commands are its package's (`Incident::commands`); the program adds
//! [`EngineRole`]'s beside them, once.

mod dns;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use outage_lab_proto::{EngineEvent, EventSink};
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

pub use dns::DnsArgs;

use crate::exit;

/// The role commands every incident's runs use; hidden, the harness spawns them.
#[derive(Debug, Subcommand)]
pub enum EngineRole {
    /// Role: an authoritative DNS server for lab.internal (spawned by the harness).
    #[command(hide = true)]
    Dns(DnsArgs),
}

impl EngineRole {
    /// Its commands, to add to the program's.
    pub fn commands() -> Vec<clap::Command> {
        crate::incident::own_commands::<Self>()
    }

    /// Runs the command `matches` names, if it is one of these.
    pub fn dispatch(matches: &clap::ArgMatches) -> Option<ExitCode> {
        crate::incident::dispatch_own(matches, |role| match role {
            EngineRole::Dns(args) => run(|shutdown| dns::dns(args, shutdown, sink())),
        })
    }
}

/// The engine's events on stdout, where the harness hears them (every incident's vocabulary
/// holds them).
fn sink() -> EventSink<EngineEvent> {
    EventSink::stdout()
}

/// Why a role command stopped: its input (exit 2) or the role itself (exit 3).
#[derive(Debug)]
pub enum RoleError {
    /// A bad config file, or a refused setting.
    Config(anyhow::Error),
    /// The role could not bind, or failed while it ran.
    Failed(anyhow::Error),
}

/// Runs one role to completion on a single-threaded runtime (roles are small, I/O-bound
/// processes and a fleet has hundreds): SIGINT or SIGTERM cancels the token `role` gets, and the
/// workshop's freeze is understood. Exit code 0 after a clean stop, 2 for a bad config, 3 when
/// the role failed.
pub fn run<F>(role: impl FnOnce(CancellationToken) -> F) -> ExitCode
where
    F: Future<Output = Result<(), RoleError>>,
{
    let ran = crate::runtime::single_threaded()
        .context("cannot start a runtime")
        .map_err(RoleError::Failed)
        .and_then(|runtime| {
            runtime.block_on(async {
                let shutdown = CancellationToken::new();
                stop_on_signals(shutdown.clone()).map_err(RoleError::Failed)?;
                // `outage-lab workshop` stops and continues the whole run: each role must tell
                // an outcome that spanned the freeze from a real one.
                outage_lab_proto::freeze::install();
                role(shutdown).await
            })
        });
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

/// The environment variable that carries the admin token (it wins over a config file's).
pub const ADMIN_TOKEN_ENV: &str = "OUTAGE_LAB_ADMIN_TOKEN";

/// The admin token to use for an API bound to `addr`: `$OUTAGE_LAB_ADMIN_TOKEN`, else the
/// config's. An admin API that can change DNS or what is watched must not be reachable from
/// another machine without one, so binding it off loopback without a token is refused.
pub fn admin_token(
    configured: Option<String>,
    addr: SocketAddr,
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
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RoleError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config {}", path.display()))
        .map_err(RoleError::Config)?;
    serde_json::from_str(&text)
        .with_context(|| format!("invalid config {}", path.display()))
        .map_err(RoleError::Config)
}

/// A TCP listener on `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RoleError> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
        .map_err(RoleError::Failed)
}

/// DNS serves UDP and TCP on one port. With port 0, UDP picks the port and TCP must get the same
/// one; on the rare collision, try again with a fresh UDP port.
pub async fn bind_dns(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
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

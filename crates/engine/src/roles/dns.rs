//! The `dns` role command: a lab DNS server (`outage_lab_dns`), its config and admin token, its
//! DNS sockets (and a second pair, if asked for) and its admin listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use outage_lab_proto::{EngineEvent, EventSink};
use tokio_util::sync::CancellationToken;

use super::{RoleError, admin_token, bind, bind_dns, load};

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

/// A DNS server, until `shutdown`.
pub(super) async fn dns(
    args: DnsArgs,
    shutdown: CancellationToken,
    events: EventSink<EngineEvent>,
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

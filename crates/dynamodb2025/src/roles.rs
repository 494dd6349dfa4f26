//! The 2025 incident's hidden role commands: the plan store, the planner, an enactor, an
//! instance of the service, a client, the lease manager and its servers. Each loads its JSON config, binds what it serves, and
//! runs until SIGINT or SIGTERM through the engine's role plumbing; the lab's DNS servers are the
//! engine's `dns` role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use outage_lab_dns_automation::roles as automation;
use outage_lab_dynamodb_events::EventSink;
use outage_lab_engine::roles::{self, RoleError, bind, load};
use outage_lab_kv::roles as kv;
use outage_lab_lease_manager::roles as leases;
use outage_lab_proto::server::Listeners;

/// The hidden role commands the harness spawns.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Role: the DNS automation's plan store (spawned by the harness).
    #[command(hide = true)]
    PlanStore(ServeArgs),
    /// Role: the DNS automation's planner (spawned by the harness).
    #[command(hide = true)]
    Planner(AutomationArgs),
    /// Role: one of the DNS automation's enactors (spawned by the harness).
    #[command(hide = true)]
    Enactor(AutomationArgs),
    /// Role: one instance of the key-value service (spawned by the harness).
    #[command(hide = true)]
    Kv(ServeArgs),
    /// Role: a client of the key-value service (spawned by the harness).
    #[command(hide = true)]
    KvClient(ConfigArgs),
    /// Role: EC2's lease manager (spawned by the harness).
    #[command(hide = true)]
    LeaseManager(ConfiguredServeArgs),
    /// Role: the servers holding leases (spawned by the harness).
    #[command(hide = true)]
    LeaseServers(ConfigArgs),
    /// Role: the customers launching instances (spawned by the harness).
    #[command(hide = true)]
    Launchers(ConfigArgs),
}

/// A role that serves HTTP and needs no config.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve on; port 0 lets the kernel choose (the real one is announced).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
}

/// The planner's and an enactor's arguments.
#[derive(Debug, Args)]
pub struct AutomationArgs {
    /// The role's JSON config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The plan store's address.
    #[arg(long, value_name = "ADDR")]
    pub store: SocketAddr,
    /// Address of its admin API (`/control`); port 0 lets the kernel choose.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
}

/// A role with a config that serves HTTP.
#[derive(Debug, Args)]
pub struct ConfiguredServeArgs {
    /// The role's JSON config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to serve on; port 0 lets the kernel choose (the real one is announced).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
}

/// A role with a config and nothing to serve.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The role's JSON config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs one role command to its end; its exit code.
pub fn run(role: RoleCommand) -> ExitCode {
    roles::run(|shutdown| async move {
        let events = EventSink::stdout();
        match role {
            RoleCommand::PlanStore(args) => {
                let http = bind(args.listen).await?;
                automation::plan_store(Listeners { http }, shutdown, events)
                    .await
                    .map_err(failed)
            }
            RoleCommand::Planner(args) => {
                let config = load(&args.config)?;
                let http = bind(args.listen).await?;
                automation::planner(config, args.store, Listeners { http }, shutdown, events)
                    .await
                    .map_err(failed)
            }
            RoleCommand::Enactor(args) => {
                let config = load(&args.config)?;
                let http = bind(args.listen).await?;
                automation::enactor(config, args.store, Listeners { http }, shutdown, events)
                    .await
                    .map_err(failed)
            }
            RoleCommand::Kv(args) => {
                let http = bind(args.listen).await?;
                (kv::service(Listeners { http }, shutdown, events).await).map_err(failed)
            }
            RoleCommand::KvClient(args) => {
                let config = load(&args.config)?;
                (kv::client(config, shutdown, events).await).map_err(failed)
            }
            RoleCommand::LeaseManager(args) => {
                let config = load(&args.config)?;
                let http = bind(args.listen).await?;
                (leases::manager(config, Listeners { http }, shutdown, events).await)
                    .map_err(failed)
            }
            RoleCommand::LeaseServers(args) => {
                let config = load(&args.config)?;
                leases::servers(config, shutdown, events).await;
                Ok(())
            }
            RoleCommand::Launchers(args) => {
                let config = load(&args.config)?;
                leases::launchers(config, shutdown, events).await;
                Ok(())
            }
        }
    })
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> RoleError {
    RoleError::Failed(anyhow!(e))
}

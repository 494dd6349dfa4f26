//! The lease manager and its servers as roles, in the shape of every role of the lab: the caller
//! binds the sockets, the role tells one `ready` event with its real addresses, works until
//! `shutdown`, and fails if it cannot.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use outage_lab_dynamodb_events::{Event, EventSink};
use outage_lab_kv::client::{self as kv, Endpoint};
use outage_lab_proto::HumanDuration;
pub use outage_lab_proto::server::Listeners;
use outage_lab_proto::server::serve_role;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ledger::{Leases, Ledger};
use crate::manager::{self, Manager};
use crate::{launches, servers};

/// Where the manager's state checks read: the key-value service, through a lab DNS server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateService {
    /// The lab DNS server the manager resolves through.
    pub dns_server: SocketAddr,
    /// The service's name, fully qualified.
    pub endpoint: String,
    /// The service's port.
    pub port: u16,
    /// Bound on one state check, and on one lookup.
    pub timeout: HumanDuration,
}

/// The lease manager role's config: the manager's behaviour, and where it checks state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// Its workers, queue and leases.
    pub manager: manager::Config,
    /// Where its state checks read.
    pub state: StateService,
}

/// Why a role of the lease manager stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Its HTTP server failed.
    #[error(transparent)]
    Serve(#[from] outage_lab_proto::server::RoleError),
    /// Its ledger cannot be read or opened for appending.
    #[error("the lease manager's ledger {path}: {source}")]
    Ledger {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It cannot reach the state service at all (no resolver, or no HTTP client).
    #[error("the lease manager cannot check state at {endpoint}: {source}")]
    State {
        /// The service's name.
        endpoint: String,
        /// Why.
        #[source]
        source: kv::Error,
    },
}

/// The lease manager, until `shutdown`.
pub async fn manager(
    config: ManagerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let state = &config.state;
    let failed = |source| RoleError::State {
        endpoint: state.endpoint.clone(),
        source,
    };
    let timeout = state.timeout.into();
    let endpoint = Endpoint::new(
        state.dns_server,
        &state.endpoint,
        state.port,
        timeout,
        false,
    )
    .map_err(failed)?;
    // Its workers build pools as they go; one that cannot be built now never will be.
    endpoint.pool().map_err(failed)?;
    let (ledger, leases) = match &config.manager.ledger {
        Some(path) => Ledger::open(path).map_err(|source| RoleError::Ledger {
            path: path.clone(),
            source,
        })?,
        None => (Ledger::default(), Leases::new()),
    };
    let manager = Manager::with_ledger(config.manager, endpoint, ledger, leases);
    let router = manager.router();
    let work = manager.run(shutdown.clone(), events.clone());
    serve_role(
        "lease_manager",
        router,
        listeners,
        shutdown,
        &events.narrowed(),
        work,
    )
    .await?;
    Ok(())
}

/// The servers holding leases, until `shutdown`. They listen on nothing: they are ready at
/// once, and then they renew.
pub async fn servers(config: servers::Config, shutdown: CancellationToken, events: EventSink) {
    events.emit(Event::Ready {
        role: "lease_servers".to_owned(),
        addrs: BTreeMap::new(),
    });
    servers::run(config, shutdown).await;
}

/// The customers launching instances, until `shutdown`. They listen on nothing: they are
/// ready at once, and then they launch.
pub async fn launchers(config: launches::Config, shutdown: CancellationToken, events: EventSink) {
    events.emit(Event::Ready {
        role: "launchers".to_owned(),
        addrs: BTreeMap::new(),
    });
    launches::run(config, shutdown, events).await;
}

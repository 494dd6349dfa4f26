//! The service and its clients as roles, in the shape of every role of the lab: the caller
//! binds the sockets, the role tells one `ready` event with its real addresses, works until
//! `shutdown`, and fails if it cannot.

use std::collections::BTreeMap;

use outage_lab_dynamodb_events::{Event, EventSink};
pub use outage_lab_proto::server::Listeners;
use outage_lab_proto::server::serve_role;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client};
use crate::service;

/// Why a role of the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Its HTTP server failed.
    #[error(transparent)]
    Serve(#[from] outage_lab_proto::server::RoleError),
    /// A client could not start.
    #[error("the client cannot start: {0}")]
    Client(#[from] client::Error),
}

/// One instance of the service, until `shutdown`.
pub async fn service(
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let idle = shutdown.clone().cancelled_owned();
    let router = service::router();
    serve_role("kv", router, listeners, shutdown, &events.narrowed(), idle).await?;
    Ok(())
}

/// One client, until `shutdown`. It listens on nothing: it is ready once its resolver is
/// built, and then it asks.
pub async fn client(
    config: client::Config,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let client = Client::new(config)?;
    events.emit(Event::Ready {
        role: "kv_client".to_owned(),
        addrs: BTreeMap::new(),
    });
    client.run(shutdown, events).await?;
    Ok(())
}

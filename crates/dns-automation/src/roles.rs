//! The automation's parts as roles: what each process of a run runs, in the shape of every
//! role of the lab (`run(config, listeners, shutdown, events)`): the caller binds the sockets,
//! the role serves its API on them, tells one `ready` event with its real addresses, works until
//! `shutdown`, and fails if its server stops unasked.

use std::net::SocketAddr;

use outage_lab_dynamodb_events::EventSink;
pub use outage_lab_proto::server::Listeners;
pub use outage_lab_proto::server::RoleError;
use outage_lab_proto::server::serve_role;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::PlanStore;
use crate::control::{self, Control};
use crate::enactor::{self, Enactor};
use crate::{planner, store};

/// The plan store, until `shutdown`.
pub async fn plan_store(
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let idle = shutdown.clone().cancelled_owned();
    serve_role(
        "plan_store",
        store::router(),
        listeners,
        shutdown,
        &events.narrowed(),
        idle,
    )
    .await
}

/// The planner, storing its plans in the store at `store`, until `shutdown`; its admin API
/// ([`control`]) turns it off and on.
pub async fn planner(
    config: planner::Config,
    store: SocketAddr,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let (control, controlled) = watch::channel(Control::default());
    let store = PlanStore::new(reqwest::Client::new(), store);
    let work = planner::run(config, store, controlled, shutdown.clone(), events.clone());
    serve_role(
        "planner",
        control::router(control),
        listeners,
        shutdown,
        &events.narrowed(),
        work,
    )
    .await
}

/// An enactor working from the store at `store`, until `shutdown`; its admin API ([`control`])
/// turns it off and on and slows it.
pub async fn enactor(
    config: enactor::Config,
    store: SocketAddr,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), RoleError> {
    let (control, controlled) = watch::channel(Control::default());
    let http = reqwest::Client::new();
    let enactor = Enactor {
        config,
        store: PlanStore::new(http.clone(), store),
        http,
        events: events.clone(),
    };
    let work = enactor.run(controlled, shutdown.clone());
    serve_role(
        "enactor",
        control::router(control),
        listeners,
        shutdown,
        &events.narrowed(),
        work,
    )
    .await
}

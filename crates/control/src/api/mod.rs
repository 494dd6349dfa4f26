//! The control plane's API, the one customers' recovery automation calls: describe their
//! volumes, create a replacement, attach it.
//!
//! It has a finite capacity, for real: `workers` calls are served at once and each holds its
//! worker for `service_time`, so at most `workers / service_time` calls complete per second.
//! Up to `queue` more wait for a worker; beyond that a call is refused at once (503), so an
//! overload costs a bounded amount of memory. Before any of that, the throttling policy
//! ([`gate`]) may refuse a call (429, with `Retry-After`). A create really places a volume on
//! two healthy servers with free slots, through the control loop ([`Command`]), so recovery
//! competes with failover for the same capacity.

mod commands;
pub mod gate;
mod routes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use outage_lab_proto::spread::splitmix64;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

pub use gate::{Policy, ThrottleConfig};
pub use outage_lab_proto::report::{ApiCalls, CallOutcome};
pub(crate) use routes::router;

/// Largest request body the API reads.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Configuration of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Customer accounts; the volumes placed at start are shared among them (seeded).
    #[serde(default)]
    pub customers: Vec<String>,
    /// Calls served at once.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// How long one call holds its worker.
    #[serde(default = "default_service_time")]
    pub service_time: HumanDuration,
    /// Calls that may wait for a worker; more are refused (503).
    #[serde(default = "default_queue")]
    pub queue: u32,
    /// The throttling policy.
    #[serde(default)]
    pub throttle: ThrottleConfig,
}

fn default_workers() -> u32 {
    4
}
fn default_service_time() -> HumanDuration {
    HumanDuration::millis(20)
}
fn default_queue() -> u32 {
    64
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            customers: Vec::new(),
            workers: default_workers(),
            service_time: default_service_time(),
            queue: default_queue(),
            throttle: ThrottleConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Calls per second the API completes at most.
    pub fn capacity(&self) -> f64 {
        f64::from(self.workers) / self.service_time.get().as_secs_f64().max(1e-6)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.workers) {
            return Err(format!(
                "api.workers must be in 1..=1024, got {}",
                self.workers
            ));
        }
        if self.queue > 100_000 {
            return Err(format!(
                "api.queue must be at most 100000, got {}",
                self.queue
            ));
        }
        if let Some(dup) = self
            .customers
            .iter()
            .enumerate()
            .find(|(i, c)| self.customers[..*i].contains(c))
        {
            return Err(format!("api.customers names {:?} twice", dup.1));
        }
        self.throttle.validate()
    }

    /// The customer who owns the volume placed at start with index `i`, if there are customers.
    pub fn owner_at_start(&self, i: usize, seed: u64) -> Option<String> {
        let n = self.customers.len() as u64;
        (n > 0).then(|| {
            let pick = splitmix64(seed ^ splitmix64(i as u64)) % n;
            self.customers[pick as usize].clone()
        })
    }
}

/// What the control loop does for the API: the calls that change the volume map.
#[derive(Debug)]
pub(crate) enum Command {
    /// Place a new volume for `customer` on two healthy servers with free slots.
    Create {
        customer: String,
        reply: oneshot::Sender<Result<VolumeView, CallError>>,
    },
    /// Attach `volume` to `customer`'s `instance`.
    Attach {
        customer: String,
        volume: String,
        instance: String,
        reply: oneshot::Sender<Result<VolumeView, CallError>>,
    },
}

/// One volume as its customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeView {
    /// Volume id.
    pub volume: String,
    /// Owning customer.
    pub customer: String,
    /// `healthy`, `degraded` or `stuck`.
    pub state: String,
    /// Servers holding it, primary first.
    pub replicas: Vec<String>,
    /// The instance it is attached to, if any.
    pub attached_to: Option<String>,
}

/// Why a call that reached a worker was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    /// No such volume.
    #[error("no volume {0}")]
    UnknownVolume(String),
    /// The volume belongs to someone else.
    #[error("volume {volume} belongs to another customer, not {customer}")]
    NotOwner { volume: String, customer: String },
    /// The volume cannot serve I/O, so it cannot be attached.
    #[error("volume {0} is stuck (its I/O is refused); create a replacement instead")]
    Stuck(String),
    /// No two healthy servers have a free slot.
    #[error("no capacity: fewer than two healthy servers have a free replica slot")]
    NoCapacity,
    /// Placing a replica failed.
    #[error("placing the new volume failed: {0}")]
    Place(String),
    /// The control loop is gone (shutting down).
    #[error("control is shutting down")]
    Stopping,
}

/// What the API's handlers share.
pub(crate) struct Api {
    config: ApiConfig,
    start: Instant,
    gate: Mutex<gate::Gate>,
    calls: Mutex<BTreeMap<String, ApiCalls>>,
    /// Calls waiting for a worker or being served.
    in_system: AtomicUsize,
    workers: Semaphore,
    commands: mpsc::Sender<Command>,
    /// The volumes as customers see them, published by the control loop.
    views: Mutex<Vec<VolumeView>>,
    /// What `PUT /admin/throttle` requires.
    admin_token: Option<String>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("config", &self.config)
            .field("in_system", &self.in_system.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API's shared state and the receiving end of its commands, for the control loop.
    pub(crate) fn new(
        config: ApiConfig,
        admin_token: Option<String>,
    ) -> (Arc<Self>, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(config.workers as usize);
        let start = Instant::now();
        let api = Self {
            gate: Mutex::new(gate::Gate::new(
                config.throttle,
                config.customers.len(),
                Duration::ZERO,
            )),
            calls: Mutex::new(BTreeMap::new()),
            in_system: AtomicUsize::new(0),
            workers: Semaphore::new(config.workers as usize),
            commands: tx,
            views: Mutex::new(Vec::new()),
            admin_token,
            start,
            config,
        };
        (Arc::new(api), rx)
    }

    /// Replaces the published volume views.
    pub(crate) fn publish(&self, views: Vec<VolumeView>) {
        *self.views.lock().unwrap_or_else(PoisonError::into_inner) = views;
    }

    /// Each customer's calls so far, by outcome.
    pub(crate) fn calls(&self) -> BTreeMap<String, ApiCalls> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The throttling policy in force.
    pub(crate) fn policy(&self) -> Policy {
        self.gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .config()
            .policy
    }

    fn count(&self, customer: &str, outcome: CallOutcome) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.entry(customer.to_owned()).or_default().count(outcome);
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

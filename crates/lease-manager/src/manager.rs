//! The lease manager: servers ask it to renew their leases (`POST /renew/{server}`, with how
//! long they will wait in `x-budget-ms`); each request is queued and answered when a worker has
//! done it. Doing one is a state check that reads the key-value service through the lab DNS,
//! and `work` of the worker's time; a failed check goes back in the queue to be tried again. A
//! lease is renewed only if the work finishes before the requester's deadline. Work finished later was done for nothing, and its requester has
//! already asked again: that is how the queue can fill faster than the workers empty it, and
//! stay full after whatever filled it has gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use outage_lab_dynamodb_events::{Event, EventSink};
use outage_lab_kv::client::Endpoint;
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ledger::{Leases, Ledger};
use crate::queue::{Admission, Pending, WorkQueue};
use crate::runbook::Runbook;
use crate::throttle::Throttle;

/// The header in which a server says how long it will wait, in milliseconds.
pub const BUDGET_HEADER: &str = "x-budget-ms";

/// Behaviour of the lease manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Workers doing renewals at once.
    pub workers: usize,
    /// A worker's time per renewal, after its state check.
    pub work: HumanDuration,
    /// How long a renewed lease lasts.
    pub lease_ttl: HumanDuration,
    /// A worker's connections to the service are dropped once this old: after that its next
    /// state check opens a new connection, and so looks the service's name up.
    pub connection_max_age: HumanDuration,
    /// Fix `admission_control`: the queue holds at most this many renewals, drops those whose
    /// requester gave up, and serves the newest first. `None`: as it was.
    #[serde(default)]
    pub admission_control: Option<usize>,
    /// The file it keeps its leases in ([`crate::ledger`]), so that a restart loses its queue
    /// but not its leases. `None`: in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<std::path::PathBuf>,
    /// Fix `recovery_runbook` ([`crate::runbook`]): when its checks come back after failing,
    /// the manager drops its backlog and admits this many renewals a second until the leases
    /// are back. `None`: as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_runbook: Option<u32>,
}

/// How long a renewal refused by the throttle is told to wait (`429`, `Retry-After`), as an API
/// throttle tells its callers to back off: refused at once and asked again at once, the
/// refusals alone would take the workers' CPU.
pub const THROTTLED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What operators set on a running lease manager (`GET`/`PUT /control`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Renewals admitted per second; the rest are refused at once. `None`: all admitted.
    #[serde(default)]
    pub throttle: Option<u32>,
}

/// What a renewal came to, for its requester.
type Reply = Result<(), String>;

#[derive(Debug, Default)]
struct Counts {
    received: AtomicU64,
    processed: AtomicU64,
    completed: AtomicU64,
    timed_out: AtomicU64,
    failed_checks: AtomicU64,
    dropped: AtomicU64,
    throttled: AtomicU64,
}

/// The lease manager's state, shared by its API and its workers.
#[derive(Debug)]
pub struct Manager {
    config: Config,
    queue: Mutex<WorkQueue<(String, oneshot::Sender<Reply>)>>,
    ready: Notify,
    leases: Mutex<Leases>,
    throttle: Mutex<(Control, Option<Throttle>)>,
    counts: Counts,
    service: Endpoint,
    ledger: Ledger,
    runbook: Option<Runbook>,
    /// Where the next launch looks first among the servers with a valid lease.
    placed: AtomicU64,
}

fn bump(counter: &AtomicU64, by: usize) {
    counter.fetch_add(by as u64, Ordering::Relaxed);
}

impl Manager {
    /// A manager checking state through `service`, its leases in memory only.
    pub fn new(config: Config, service: Endpoint) -> Arc<Manager> {
        Manager::with_ledger(config, service, Ledger::default(), Leases::new())
    }

    /// A manager checking state through `service`, holding `leases` (read from `ledger`) and
    /// writing each renewal down there.
    pub fn with_ledger(
        config: Config,
        service: Endpoint,
        ledger: Ledger,
        leases: Leases,
    ) -> Arc<Manager> {
        let admission = match config.admission_control {
            Some(capacity) => Admission::Bounded { capacity },
            None => Admission::Fifo,
        };
        let runbook = config.recovery_runbook.map(Runbook::new);
        Arc::new(Manager {
            config,
            queue: Mutex::new(WorkQueue::new(admission)),
            ready: Notify::new(),
            leases: Mutex::new(leases),
            throttle: Mutex::new((Control::default(), None)),
            counts: Counts::default(),
            service,
            ledger,
            runbook,
            placed: AtomicU64::new(0),
        })
    }

    /// Its API.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/renew/{server}", post(renew))
            .route("/launch/{customer}", post(launch))
            .route("/control", get(control).put(set_control))
            .with_state(Arc::clone(self))
    }

    /// Counts a renewal received, and whether the throttle lets it in now.
    fn admit(&self) -> bool {
        bump(&self.counts.received, 1);
        let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = match &mut throttle.1 {
            Some(bucket) => bucket.admit(Instant::now()),
            None => true,
        };
        if !admitted {
            bump(&self.counts.throttled, 1);
        }
        admitted
    }

    /// Queues a renewal for `server`, due by `deadline`; the answer comes when it is done or
    /// dropped.
    fn enqueue(&self, server: String, deadline: Instant) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let dropped = self.lock_queue().push(Pending {
            deadline,
            item: (server, tx),
        });
        self.drop_all(dropped);
        self.ready.notify_one();
        rx
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, WorkQueue<(String, oneshot::Sender<Reply>)>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drop_all(&self, dropped: Vec<(String, oneshot::Sender<Reply>)>) {
        bump(&self.counts.dropped, dropped.len());
        for (server, tx) in dropped {
            let _ = tx.send(Err(format!("renewal for {server} dropped")));
        }
    }

    /// One worker, until `shutdown`.
    pub async fn work(self: Arc<Self>, shutdown: CancellationToken) {
        let max_age = Duration::from(self.config.connection_max_age);
        let (mut pool, mut built) = (self.service.pool().ok(), Instant::now());
        loop {
            if built.elapsed() >= max_age {
                (pool, built) = (self.service.pool().ok(), Instant::now());
            }
            let (next, dropped) = self.lock_queue().pop(Instant::now());
            self.drop_all(dropped);
            let Some(Pending {
                deadline,
                item: (server, tx),
            }) = next
            else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.ready.notified() => continue,
                    () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            };
            let done = self.renew(pool.as_ref(), &server, deadline).await;
            bump(&self.counts.processed, 1);
            match done {
                Some(reply) => {
                    let _ = tx.send(reply);
                }
                None => {
                    let again = Pending {
                        deadline,
                        item: (server, tx),
                    };
                    let dropped = self.lock_queue().push(again);
                    self.drop_all(dropped);
                }
            }
        }
    }

    /// One attempt at `server`'s renewal: its state check, then the work. A failed check costs
    /// the worker its time too (the service is slow to refuse) and leaves the renewal to be
    /// tried again: `None`.
    async fn renew(
        &self,
        pool: Option<&reqwest::Client>,
        server: &str,
        deadline: Instant,
    ) -> Option<Reply> {
        let url = self.service.url(&format!("lease-{server}"));
        let checked = match pool {
            Some(pool) => pool.get(url).send().await.is_ok(),
            None => false,
        };
        tokio::time::sleep(self.config.work.into()).await;
        if !checked {
            bump(&self.counts.failed_checks, 1);
            if let Some(runbook) = &self.runbook {
                runbook.check_failed();
            }
            return None;
        }
        if let Some(per_second) = self.runbook.as_ref().and_then(Runbook::check_succeeded) {
            tracing::info!("recovery runbook: backlog dropped, {per_second} renewals a second");
            self.drop_all(self.lock_queue().clear());
            self.set_control(Control {
                throttle: Some(per_second),
            });
        }
        let now = Instant::now();
        if now > deadline {
            bump(&self.counts.timed_out, 1);
            return Some(Err(format!(
                "renewal for {server} finished after its requester gave up"
            )));
        }
        bump(&self.counts.completed, 1);
        let until = now + Duration::from(self.config.lease_ttl);
        (self.leases.lock().unwrap_or_else(|p| p.into_inner())).insert(server.to_owned(), until);
        self.ledger.record(server, until);
        Some(Ok(()))
    }

    /// A server whose lease is valid now, for a launch, taking them in turn; `None` when no
    /// server holds one.
    fn place(&self) -> Option<String> {
        let now = Instant::now();
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let valid: Vec<&String> = (leases.iter())
            .filter(|(_, until)| **until > now)
            .map(|(server, _)| server)
            .collect();
        let turn = self.placed.fetch_add(1, Ordering::Relaxed) as usize;
        (!valid.is_empty()).then(|| valid[turn % valid.len()].clone())
    }

    /// The last second's counts, taken.
    pub fn stats(&self) -> Event {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let now = Instant::now();
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        Event::LeaseStats {
            queued: self.lock_queue().len() as u64,
            received: take(&self.counts.received),
            processed: take(&self.counts.processed),
            completed: take(&self.counts.completed),
            timed_out: take(&self.counts.timed_out),
            failed_checks: take(&self.counts.failed_checks),
            dropped: take(&self.counts.dropped),
            throttled: take(&self.counts.throttled),
            leases_valid: leases.values().filter(|until| **until > now).count() as u64,
            servers: leases.len() as u64,
        }
    }

    /// Runs `workers` workers and tells the stats every second, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, events: EventSink) {
        for _ in 0..self.config.workers.max(1) {
            tokio::spawn(Arc::clone(&self).work(shutdown.clone()));
        }
        crate::every_second(shutdown, || {
            let stats = self.stats();
            self.runbook_second(&stats);
            events.emit(stats);
        })
        .await;
    }

    /// Sets what operators set (`PUT /control`).
    fn set_control(&self, new: Control) {
        let bucket = new.throttle.map(|rate| Throttle::new(rate, Instant::now()));
        *self.throttle.lock().unwrap_or_else(|p| p.into_inner()) = (new, bucket);
    }

    /// Fix `recovery_runbook`: lifts its bound once a second's `stats` show the leases back.
    fn runbook_second(&self, stats: &Event) {
        let (
            Some(runbook),
            Event::LeaseStats {
                leases_valid,
                servers,
                ..
            },
        ) = (&self.runbook, stats)
        else {
            return;
        };
        if runbook.leases(*leases_valid, *servers) {
            tracing::info!("recovery runbook: leases back, renewals no longer bounded");
            self.set_control(Control::default());
        }
    }
}

async fn control(State(manager): State<Arc<Manager>>) -> Json<Control> {
    Json(manager.throttle.lock().unwrap_or_else(|p| p.into_inner()).0)
}

async fn set_control(
    State(manager): State<Arc<Manager>>,
    Json(new): Json<Control>,
) -> Json<Control> {
    manager.set_control(new);
    Json(new)
}

/// `POST /launch/{customer}`: the server it was placed on, or 503 "insufficient capacity".
async fn launch(State(manager): State<Arc<Manager>>, Path(customer): Path<String>) -> Response {
    match manager.place() {
        Some(server) => (StatusCode::OK, server).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{}: no server holds a valid lease for {customer}'s launch",
                crate::launches::INSUFFICIENT_CAPACITY
            ),
        )
            .into_response(),
    }
}

async fn renew(
    State(manager): State<Arc<Manager>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    let budget = (headers.get(BUDGET_HEADER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(budget) = budget else {
        let why = format!("a renewal needs {BUDGET_HEADER}: how long its requester waits, in ms");
        return (StatusCode::BAD_REQUEST, why).into_response();
    };
    if !manager.admit() {
        let retry_after = THROTTLED_RETRY_AFTER.as_secs().to_string();
        let headers = [(header::RETRY_AFTER, retry_after)];
        return (
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            "request limit exceeded",
        )
            .into_response();
    }
    let deadline = Instant::now() + Duration::from_millis(budget);
    match manager.enqueue(server, deadline).await {
        Ok(Ok(())) => (StatusCode::OK, "renewed").into_response(),
        Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the lease manager stopped").into_response(),
    }
}

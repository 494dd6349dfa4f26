//! Customers launching instances: a launch needs a server whose lease is valid. The lease
//! manager places it on one (`POST /launch/{customer}`) or answers 503 "insufficient capacity"
//! when no server holds a valid lease, as EC2 answered its customers while its leases were
//! gone. Each customer launches every `every`, whatever the last answer was, counts what came
//! back and tells it every second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outage_lab_dynamodb_events::{Event, EventSink};
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The start of the manager's answer to a launch it cannot place.
pub const INSUFFICIENT_CAPACITY: &str = "insufficient capacity";

/// The customers who launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many customers.
    pub customers: usize,
    /// The lease manager's API.
    pub manager: SocketAddr,
    /// How often each customer launches.
    pub every: HumanDuration,
    /// How long a customer waits for a launch's answer.
    pub timeout: HumanDuration,
    /// When the first launches go out: once the servers have renewed their leases a first
    /// time (a fleet that has just started holds none, and would refuse them all).
    pub start_after: HumanDuration,
}

/// What one launch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Placed on a server with a valid lease.
    Launched,
    /// Refused: no server held a valid lease.
    InsufficientCapacity,
    /// No answer in time, or another error.
    Failed,
}

/// One customer's counts since it last told them.
#[derive(Debug, Default)]
struct Counts {
    launched: AtomicU64,
    insufficient_capacity: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn count(&self, launch: Launch) {
        let counter = match launch {
            Launch::Launched => &self.launched,
            Launch::InsufficientCapacity => &self.insufficient_capacity,
            Launch::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self, customer: String) -> Event {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        Event::LaunchStats {
            customer,
            launched: take(&self.launched),
            insufficient_capacity: take(&self.insufficient_capacity),
            failed: take(&self.failed),
        }
    }
}

/// The `n`th customer's name.
pub fn customer_name(n: usize) -> String {
    format!("customer-{}", n + 1)
}

/// Runs every customer until `shutdown`, telling each one's counts every second.
pub async fn run(config: Config, shutdown: CancellationToken, events: EventSink) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(config.timeout.into())
        .build()
        .unwrap_or_default();
    let counts: Arc<Vec<Counts>> =
        Arc::new((0..config.customers).map(|_| Counts::default()).collect());
    for n in 0..config.customers {
        let (http, counts, shutdown) = (http.clone(), Arc::clone(&counts), shutdown.clone());
        let url = format!("http://{}/launch/{}", config.manager, customer_name(n));
        let every: Duration = config.every.into();
        tokio::spawn(async move {
            // Customers spread over one period, so their launches do not arrive together.
            let spread = every.mul_f64(n as f64 / config.customers.max(1) as f64);
            let start = Duration::from(config.start_after) + spread;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + start, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => counts[n].count(launch(&http, &url).await),
                }
            }
        });
    }
    crate::every_second(shutdown, || {
        for (n, c) in counts.iter().enumerate() {
            events.emit(c.take(customer_name(n)));
        }
    })
    .await;
}

/// One launch, as its answer reads.
async fn launch(http: &reqwest::Client, url: &str) -> Launch {
    let Ok(answer) = http.post(url).send().await else {
        return Launch::Failed;
    };
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    match status {
        s if s.is_success() => Launch::Launched,
        reqwest::StatusCode::SERVICE_UNAVAILABLE if body.starts_with(INSUFFICIENT_CAPACITY) => {
            Launch::InsufficientCapacity
        }
        _ => Launch::Failed,
    }
}

//! The servers that hold leases ("droplets"): each renews its lease every `renew_every`, waits
//! at most `budget` for the answer, and asks again after `retry_after` when the answer is a
//! failure or does not come in time, like any client with a timeout and a retry; a refusal that
//! says `Retry-After` (the throttle's) is asked again no sooner than that.

use std::net::SocketAddr;
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::manager::BUDGET_HEADER;

/// Behaviour of a fleet of servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many servers.
    pub count: usize,
    /// Their lease manager's API.
    pub manager: SocketAddr,
    /// How often a server with a lease renews it.
    pub renew_every: HumanDuration,
    /// How long a server waits for a renewal's answer.
    pub budget: HumanDuration,
    /// How long a server waits before asking again after a failure.
    pub retry_after: HumanDuration,
}

/// Runs every server until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..config.count {
        let name = format!("d{i:04}");
        // Each server's place in the fleet, in [0, 1): it spreads their starts evenly over one
        // renewal period, as a fleet that has run for a while, and their waits after a refusal
        // over one more `Retry-After`, as clients' jitter does.
        let place = i as f64 / config.count as f64;
        tasks.spawn(server(
            name,
            place,
            config.clone(),
            http.clone(),
            shutdown.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn server(
    name: String,
    place: f64,
    config: Config,
    http: reqwest::Client,
    shutdown: CancellationToken,
) {
    let start = Duration::from(config.renew_every).mul_f64(place);
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = tokio::time::sleep(start) => {}
    }
    let url = format!("http://{}/renew/{name}", config.manager);
    let budget = Duration::from(config.budget);
    loop {
        let asked = http
            .post(&url)
            .header(BUDGET_HEADER, budget.as_millis().to_string())
            .timeout(budget)
            .send()
            .await;
        let wait = match asked {
            Ok(answer) if answer.status().is_success() => config.renew_every.into(),
            Ok(answer) => {
                let told = told_to_wait(&answer).mul_f64(1.0 + place);
                told.max(config.retry_after.into())
            }
            Err(_) => config.retry_after.into(),
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The wait a refusal asks for in `Retry-After` (whole seconds), at most a minute; none if it
/// asks for none.
fn told_to_wait(answer: &reqwest::Response) -> Duration {
    (answer.headers().get(reqwest::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, |secs| Duration::from_secs(secs.min(60)))
}

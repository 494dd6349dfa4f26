//! The customers' own automation against the control plane's API: every account describes its
//! volumes now and then (its API traffic in calm times), and when one of its volumes has failed
//! I/O for `recover_after`, creates a replacement and attaches it, retrying with its policy.
//! `aggressive` retries at once whatever the answer (the 2012 storm); `backoff` waits a jittered,
//! doubling delay and honours `Retry-After`.
//!
//! Every call's outcome is counted per customer, and every stuck episode is timed from the
//! moment the customer first saw the volume stuck to the moment it had a working volume again
//! (a replacement attached, or the volume healthy on its own).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outage_lab_control::api::VolumeView;
use outage_lab_ebs_events::Event;
use outage_lab_proto::report::{
    ApiCalls, CallOutcome, CallsInSecond, CustomerReport, CustomersReport, RecoveryEpisode,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::scenario::{CustomerSettings, RecoveryRetry};
use outage_lab_engine::clock::LabClock;

/// The delay between an aggressive customer's attempts: no backoff, just the time to loop.
const AGGRESSIVE_PAUSE: Duration = Duration::from_millis(10);
/// The backoff's first and largest delay.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// How long a customer waits for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How one API call ended, as the customer saw it: from its HTTP status (none: a timeout or a
/// failed connection). 4xx on content and 409 (no capacity) are failures like any other.
fn outcome_of(status: Option<reqwest::StatusCode>) -> CallOutcome {
    match status.map(|s| s.as_u16()) {
        Some(200..=299) => CallOutcome::Ok,
        Some(429) => CallOutcome::Throttled,
        Some(503) => CallOutcome::Overloaded,
        _ => CallOutcome::Failed,
    }
}

/// What one customer did and saw so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerRecord {
    /// Every API call, by outcome.
    pub calls: ApiCalls,
    /// Calls per second of the run, by outcome.
    pub per_second: BTreeMap<u64, ApiCalls>,
    /// Stuck episodes, in order.
    pub episodes: Vec<RecoveryEpisode>,
}

impl CustomerRecord {
    fn count(&mut self, outcome: CallOutcome, second: u64) {
        self.calls.count(outcome);
        self.per_second.entry(second).or_default().count(outcome);
    }

    /// The report of account `name`.
    pub fn report(&self, name: &str) -> CustomerReport {
        CustomerReport {
            name: name.to_owned(),
            affected: !self.episodes.is_empty(),
            calls: self.calls,
            api_success: self.calls.success(),
            calls_per_second: (self.per_second.iter())
                .map(|(&second, &calls)| CallsInSecond { second, calls })
                .collect(),
            episodes: self.episodes.clone(),
            // Filled from the block load's ledger by the driver.
            io_requests: 0,
            io_errors: 0,
        }
    }
}

/// The accounts' report: every account of `settings`, called or not.
pub fn report(
    settings: &CustomerSettings,
    policy: &str,
    ledger: &CustomerLedger,
) -> CustomersReport {
    let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
    let empty = CustomerRecord::default();
    CustomersReport {
        throttle_policy: policy.to_owned(),
        accounts: (settings.account_names().iter())
            .map(|name| ledger.get(name).unwrap_or(&empty).report(name))
            .collect(),
    }
}

/// Ends every open episode at the first time control saw its volume serve again after it
/// stuck (`unstuck_at_ms`, per volume): the customer may not have looked in time.
pub fn close_unseen(report: &mut CustomersReport, unstuck_at_ms: &BTreeMap<String, Vec<u64>>) {
    for account in &mut report.accounts {
        for e in &mut account.episodes {
            if e.recovered_ms.is_none() {
                e.recovered_ms = (unstuck_at_ms.get(&e.volume))
                    .and_then(|times| times.iter().copied().find(|&t| t >= e.stuck_ms));
            }
        }
    }
}

/// One `customer_stats` event per account that called since the last window: its calls since
/// then, by outcome. `last` holds each account's totals at the last window.
pub fn window(ledger: &CustomerLedger, last: &mut BTreeMap<String, ApiCalls>) -> Vec<Event> {
    let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = Vec::new();
    for (name, record) in ledger.iter() {
        let before = last.insert(name.clone(), record.calls).unwrap_or_default();
        let now = record.calls;
        if now == before {
            continue;
        }
        out.push(Event::CustomerStats {
            customer: name.clone(),
            affected: !record.episodes.is_empty(),
            calls: now.since(&before),
        });
    }
    out
}

/// Every customer's record, shared between their tasks and the harness.
pub type CustomerLedger = Arc<Mutex<BTreeMap<String, CustomerRecord>>>;

/// Runs every customer's automation until `stop` is cancelled.
pub async fn run(
    settings: CustomerSettings,
    control: SocketAddr,
    http: reqwest::Client,
    ledger: CustomerLedger,
    (seed, clock): (u64, LabClock),
    stop: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, account) in settings.account_names().into_iter().enumerate() {
        let customer = Customer {
            account,
            settings: settings.clone(),
            base: format!("http://{control}/api"),
            http: http.clone(),
            ledger: Arc::clone(&ledger),
            clock: clock.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ (i as u64 + 1)),
        };
        let stop = stop.clone();
        tasks.spawn(async move { customer.run(stop).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// One customer account's automation.
struct Customer {
    account: String,
    settings: CustomerSettings,
    base: String,
    http: reqwest::Client,
    ledger: CustomerLedger,
    /// The run's lab clock: every time a customer records is on it.
    clock: LabClock,
    rng: ChaCha8Rng,
}

impl Customer {
    async fn run(mut self, stop: CancellationToken) {
        // Open episodes: volume -> index into the record's episodes.
        let mut open: BTreeMap<String, usize> = BTreeMap::new();
        // Customers do not all call at the same instant.
        let phase = self
            .rng
            .random_range(0..self.settings.describe_interval.get().as_millis().max(1) as u64);
        if pause(&self.clock, &stop, Duration::from_millis(phase)).await {
            return;
        }
        loop {
            if let Some(volumes) = self.describe().await {
                for v in &volumes {
                    self.track(v, &mut open);
                }
                if let Some(volume) = self.due_for_recovery(&volumes, &open) {
                    self.recover(&volume, &mut open, &stop).await;
                }
            }
            if pause(&self.clock, &stop, self.settings.describe_interval.get()).await {
                return;
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn record(&self, outcome: CallOutcome) {
        let second = self.now_ms() / 1000;
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        (ledger.entry(self.account.clone()).or_default()).count(outcome, second);
    }

    /// `GET /api/volumes?customer=ME`; `None` if it did not answer 2xx.
    async fn describe(&mut self) -> Option<Vec<VolumeView>> {
        let url = format!("{}/volumes?customer={}", self.base, self.account);
        let answer = self.http.get(url).timeout(CALL_TIMEOUT).send().await;
        let status = answer.as_ref().ok().map(reqwest::Response::status);
        let outcome = outcome_of(status);
        self.record(outcome);
        match (outcome, answer) {
            (CallOutcome::Ok, Ok(a)) => a.json().await.ok(),
            _ => None,
        }
    }

    /// Opens an episode for a volume seen stuck, closes it when the volume serves again.
    fn track(&self, v: &VolumeView, open: &mut BTreeMap<String, usize>) {
        let now = self.now_ms();
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let record = ledger.entry(self.account.clone()).or_default();
        match (v.state.as_str(), open.get(&v.volume)) {
            ("stuck", None) => {
                record.episodes.push(RecoveryEpisode {
                    volume: v.volume.clone(),
                    stuck_ms: now,
                    recovered_ms: None,
                    replacement: None,
                });
                open.insert(v.volume.clone(), record.episodes.len() - 1);
            }
            ("stuck", Some(_)) => {}
            (_, Some(&i)) => {
                let episode = &mut record.episodes[i];
                if episode.recovered_ms.is_none() {
                    episode.recovered_ms = Some(now);
                }
                open.remove(&v.volume);
            }
            (_, None) => {}
        }
    }

    /// The first open episode stuck for `recover_after` with no replacement yet.
    fn due_for_recovery(
        &self,
        volumes: &[VolumeView],
        open: &BTreeMap<String, usize>,
    ) -> Option<String> {
        let now = self.now_ms();
        let after = self.settings.recover_after.get().as_millis() as u64;
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let record = ledger.get(&self.account)?;
        volumes
            .iter()
            .filter_map(|v| open.get(&v.volume).map(|&i| &record.episodes[i]))
            .find(|e| {
                e.replacement.is_none() && e.recovered_ms.is_none() && now >= e.stuck_ms + after
            })
            .map(|e| e.volume.clone())
    }

    /// Creates a replacement for `volume` and attaches it, each call retried until it succeeds,
    /// the volume serves again on its own, or the run stops; closes the episode.
    async fn recover(
        &mut self,
        volume: &str,
        open: &mut BTreeMap<String, usize>,
        stop: &CancellationToken,
    ) {
        let create = serde_json::json!({ "customer": self.account });
        let created = self.call_until_ok("volumes", &create, (volume, open), stop);
        let Some(created) = created.await else {
            return;
        };
        let Some(replacement) = created
            .get("volume")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
        else {
            return;
        };
        let attach =
            serde_json::json!({ "customer": self.account, "instance": format!("i-{volume}") });
        let path = format!("volumes/{replacement}/attach");
        let attached = self.call_until_ok(&path, &attach, (volume, open), stop);
        if attached.await.is_none() {
            return;
        }
        let now = self.now_ms();
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(record), Some(&i)) = (ledger.get_mut(&self.account), open.get(volume)) {
            let episode = &mut record.episodes[i];
            episode.replacement = Some(replacement);
            episode.recovered_ms.get_or_insert(now);
        }
    }

    /// POSTs `body` to `path` until it answers 2xx; the answer's JSON. `None` if the run
    /// stopped, or if the stuck volume this call is for served again meanwhile (the customer
    /// keeps describing its volumes at its usual pace while it retries).
    async fn call_until_ok(
        &mut self,
        path: &str,
        body: &serde_json::Value,
        (volume, open): (&str, &mut BTreeMap<String, usize>),
        stop: &CancellationToken,
    ) -> Option<serde_json::Value> {
        let url = format!("{}/{path}", self.base);
        let mut failures: u32 = 0;
        let mut described = Instant::now();
        loop {
            if described.elapsed() >= self.settings.describe_interval.get() {
                described = Instant::now();
                for v in self.describe().await.unwrap_or_default() {
                    self.track(&v, open);
                }
                if !open.contains_key(volume) {
                    return None;
                }
            }
            let answer = self
                .http
                .post(&url)
                .json(body)
                .timeout(CALL_TIMEOUT)
                .send()
                .await;
            let status = answer.as_ref().ok().map(reqwest::Response::status);
            let outcome = outcome_of(status);
            self.record(outcome);
            let retry_after = answer
                .as_ref()
                .ok()
                .and_then(|a| a.headers().get(reqwest::header::RETRY_AFTER))
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .map(Duration::from_secs);
            if let (CallOutcome::Ok, Ok(a)) = (outcome, answer) {
                return Some(a.json().await.unwrap_or_default());
            }
            failures = failures.saturating_add(1);
            let wait = retry_wait(self.settings.retry, failures, retry_after, &mut self.rng);
            if pause(&self.clock, stop, wait).await {
                return None;
            }
        }
    }
}

/// How long a customer waits after its `failures`-th refused call in a row: `aggressive` just
/// loops; `backoff` is the agents' jittered exponential backoff (one backoff in the lab), never
/// shorter than the API's `Retry-After`.
fn retry_wait(
    retry: RecoveryRetry,
    failures: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    match retry {
        RecoveryRetry::Aggressive => AGGRESSIVE_PAUSE,
        RecoveryRetry::Backoff => {
            outage_lab_agent::backoff_delay(failures, BACKOFF_BASE, BACKOFF_MAX, rng)
                .max(retry_after.unwrap_or_default())
        }
    }
}

/// Sleeps for `d`, and on while the run is frozen (a workshop stop: customers wait with it);
/// true if `stop` was cancelled first.
async fn pause(clock: &LabClock, stop: &CancellationToken, d: Duration) -> bool {
    let wait = async {
        tokio::time::sleep(d).await;
        while clock.is_held() {
            tokio::time::sleep(FROZEN_POLL).await;
        }
    };
    tokio::select! {
        () = stop.cancelled() => true,
        () = wait => false,
    }
}

/// How often a customer waiting out a freeze looks again.
const FROZEN_POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggressive_customer_retries_at_once_whatever_the_api_says() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let wait = retry_wait(
            RecoveryRetry::Aggressive,
            9,
            Some(Duration::from_secs(2)),
            &mut rng,
        );
        assert_eq!(wait, AGGRESSIVE_PAUSE);
    }

    #[test]
    fn a_backing_off_customer_waits_longer_after_each_refusal_up_to_the_cap() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for failures in 1..12 {
            let window = BACKOFF_BASE
                .saturating_mul(1 << failures.min(16))
                .min(BACKOFF_MAX);
            for _ in 0..50 {
                let wait = retry_wait(RecoveryRetry::Backoff, failures, None, &mut rng);
                assert!(
                    (BACKOFF_BASE..=window).contains(&wait),
                    "failure {failures}: {wait:?} outside {BACKOFF_BASE:?}..={window:?}"
                );
            }
        }
    }

    #[test]
    fn a_backing_off_customer_never_calls_again_before_retry_after() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let retry_after = Some(Duration::from_secs(3));
        for _ in 0..50 {
            let wait = retry_wait(RecoveryRetry::Backoff, 1, retry_after, &mut rng);
            assert!(wait >= Duration::from_secs(3), "{wait:?}");
        }
    }
}

//! The customers' traffic during a run: the block I/O load against control's volumes, and the
//! customer accounts' API automation. Started when the fleet is up, its counters told to the
//! journal every second, stopped at the end of the timeline, when every acknowledged write is
//! read back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use outage_lab_ebs_events::Event;
use outage_lab_proto::report::{ApiCalls, CustomersReport};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::customers::{self, CustomerLedger};
use crate::fleet::Fleet;
use crate::load::{self, LoadLedger, WriteCheck};
use crate::run_state::RunState;
use outage_lab_engine::terminal::say;

/// The traffic of one run.
#[derive(Debug, Default)]
pub struct Traffic {
    /// The customer load's counters and acknowledged writes.
    pub load: Arc<Mutex<LoadLedger>>,
    stop: CancellationToken,
    load_task: Option<JoinHandle<()>>,
    /// What every customer account's API automation did and saw.
    customers: CustomerLedger,
    customers_task: Option<JoinHandle<()>>,
    /// Each account's call totals at the last `customer_stats` window.
    customers_told: BTreeMap<String, ApiCalls>,
    /// Every acknowledged write read back at the end (after recovery).
    pub write_check: Option<Result<WriteCheck, load::LoadError>>,
}

impl Traffic {
    /// Starts the customers' I/O against control's volumes and their API automation, if the
    /// scenario has them.
    pub fn start(&mut self, fleet: &Fleet<'_>, control: std::net::SocketAddr) {
        let c = &fleet.scenario.customers;
        if c.active() {
            self.customers_task = Some(tokio::spawn(customers::run(
                c.clone(),
                control,
                fleet.http.clone(),
                Arc::clone(&self.customers),
                (fleet.seed ^ 0xC057_0E45, fleet.sup.clock().clone()),
                self.stop.clone(),
            )));
        }
        let l = &fleet.scenario.load;
        if !l.runs() {
            return;
        }
        let config = load::LoadConfig {
            control,
            requests_per_second: l.requests_per_second,
            read_fraction: l.read_fraction,
            request_timeout: l.request_timeout.get(),
            seed: fleet.seed ^ 0x10AD_10AD,
            clock: fleet.sup.clock().clone(),
        };
        self.load_task = Some(tokio::spawn(load::run(
            config,
            fleet.http.clone(),
            Arc::clone(&self.load),
            self.stop.clone(),
        )));
    }

    /// Tells the load's and the customer accounts' counters since the last window, while they
    /// run.
    pub fn tell_window(&mut self, fleet: &Fleet<'_>) {
        if self.customers_task.is_some() {
            for event in customers::window(&self.customers, &mut self.customers_told) {
                fleet.sup.emit(event);
            }
        }
        if self.load_task.is_some() {
            self.tell_load(fleet);
        }
    }

    fn tell_load(&self, fleet: &Fleet<'_>) {
        let w = load::lock(&self.load).take_window();
        fleet.sup.emit(Event::LoadStats {
            requests: w.requests,
            ok: w.ok,
            errors: w.errors,
            p50_ms: w.p50_ms,
            p99_ms: w.p99_ms,
        });
    }

    /// Stops the traffic, then reads every acknowledged write back (the timeline has repaired
    /// everything by now).
    pub async fn finish(&mut self, fleet: &Fleet<'_>) {
        self.stop.cancel();
        if let Some(task) = self.customers_task.take() {
            let _ = task.await;
        }
        let Some(task) = self.load_task.take() else {
            return;
        };
        let _ = task.await;
        self.tell_load(fleet);
        let Some(control) = fleet.control() else {
            return;
        };
        let acked = load::lock(&self.load).acked.clone();
        let check = load::read_back(&fleet.http, control, &acked).await;
        match &check {
            Ok(c) => say(&format!(
                "t={:>5.1}s  read back {} blocks with acknowledged writes: {} lost, {} unreadable",
                fleet.sup.now_ms() as f64 / 1000.0,
                c.checked,
                c.lost.len(),
                c.unreadable.len()
            )),
            Err(e) => say(&format!("could not read acknowledged writes back: {e}")),
        }
        self.write_check = Some(check);
    }

    /// The customer accounts' report, when the scenario has accounts. An episode the customer
    /// did not see end (a customer busy retrying may not) ends when control saw the volume
    /// serve again.
    pub fn customers_report(&self, fleet: &Fleet<'_>, state: &RunState) -> Option<CustomersReport> {
        let scenario = fleet.scenario;
        (scenario.customers.active()).then(|| {
            let policy = throttle_in_force_at_end(scenario).policy.name();
            let mut report = customers::report(&scenario.customers, policy, &self.customers);
            customers::close_unseen(&mut report, &state.volumes.unstuck_at_ms);
            let io = load::lock(&self.load).per_customer.clone();
            for account in &mut report.accounts {
                (account.io_requests, account.io_errors) =
                    io.get(&account.name).copied().unwrap_or_default();
            }
            report
        })
    }
}

/// The API's throttle in force once the whole timeline has played: the scenario's, then each
/// `throttle` step's, as the fixes change them.
fn throttle_in_force_at_end(
    scenario: &crate::scenario::Scenario,
) -> outage_lab_control::api::ThrottleConfig {
    let initial = scenario.fixes.throttle(scenario.api.throttle);
    (scenario.timeline.iter().rev())
        .find_map(|s| match s {
            crate::steps::Step::Throttle(t) => {
                Some(scenario.fixes.throttle(t.config(scenario.api.throttle)))
            }
            _ => None,
        })
        .unwrap_or(initial)
}

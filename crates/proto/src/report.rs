//! `report.json`: the summary of a run that machines read. This type is the schema; fields are
//! only ever added , never renamed.

use serde::{Deserialize, Serialize};

/// The whole report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name (from the scenario file).
    pub scenario: String,
    /// The seed every random choice flowed from; rerun with `--seed` to repeat.
    pub seed: u64,
    /// `"pass"` when every expectation held, otherwise `"fail"`.
    pub verdict: Verdict,
    /// Wall time of the run in milliseconds, from the first process started to the last stopped.
    pub wall_ms: u64,
    /// One entry per storage server, in id order.
    pub servers: Vec<ServerReport>,
    /// Every expectation, in scenario order, plus the harness's own fault checks.
    pub expectations: Vec<ExpectationResult>,
    /// Volumes, failovers and the acknowledged-write check.
    pub volumes: VolumesReport,
    /// The customer load over the whole run.
    pub load: LoadReport,
    /// What the harness process itself used (not its children): the cost of watching.
    #[serde(default)]
    pub harness: HarnessUsage,
    /// The fixes that were on (`fixes:` in the scenario, `--fix`), and what each did.
    #[serde(default)]
    pub fixes: Vec<FixReport>,
    /// The customer accounts' API calls and recoveries, when the scenario has accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<CustomersReport>,
    /// How late the run's timers fired against their schedule: the run's own measure of whether
    /// the machine kept its pace (absent in reports written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagReport>,
}

/// How late the run's scheduled work fired, by source, against the scenario's tolerance. A run
/// over it is *disturbed*: the machine did not keep its pace, so its timing is not evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LagReport {
    /// The scenario's `lag_tolerance`, ms: the most a source's p99 lateness may be.
    pub tolerance_ms: u64,
    /// Whether a source's p99 lateness went over the tolerance.
    pub disturbed: bool,
    /// Each source of scheduled work, by name.
    pub sources: Vec<LagSource>,
}

impl LagReport {
    /// One line for the end of a run: how late its scheduled work fired, against the tolerance.
    pub fn summary(&self) -> String {
        let each: Vec<String> = (self.sources.iter())
            .map(|s| format!("{} {} ms", s.name, s.p99_ms))
            .collect();
        format!(
            "pace: {} (p99 lateness: {}; tolerance {} ms)",
            if self.disturbed { "DISTURBED" } else { "kept" },
            each.join(", "),
            self.tolerance_ms
        )
    }
}

/// How late one source of scheduled work fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LagSource {
    /// What fires on a schedule (`harness_timer`, `timeline_steps`, or an incident's own).
    pub name: String,
    /// Firings measured.
    pub samples: u64,
    /// Median lateness, ms.
    pub p50_ms: u64,
    /// 99th percentile lateness, ms: what the tolerance is held against.
    pub p99_ms: u64,
    /// Worst lateness, ms.
    pub max_ms: u64,
}

/// The customer accounts: what each called on the control plane's API and how each got out of
/// its stuck volumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomersReport {
    /// The throttling policy in force at the end (`none`, `global`, `per_customer`).
    pub throttle_policy: String,
    /// Every account, by name.
    pub accounts: Vec<CustomerReport>,
}

/// One customer account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerReport {
    /// Account name (`c01`).
    pub name: String,
    /// Whether any of its volumes got stuck (affected), or none did (a bystander).
    pub affected: bool,
    /// Its API calls by outcome.
    pub calls: ApiCalls,
    /// Share of its API calls answered 2xx.
    pub api_success: f64,
    /// Block reads and writes to its volumes that finished.
    #[serde(default)]
    pub io_requests: u64,
    /// Of those, the ones refused, failed or late.
    #[serde(default)]
    pub io_errors: u64,
    /// Its calls per second of the run, by outcome.
    pub calls_per_second: Vec<CallsInSecond>,
    /// Every stuck episode of its volumes.
    pub episodes: Vec<RecoveryEpisode>,
}

/// What became of one call to the control plane's API. The one vocabulary of API calls: the
/// customers' automation, control's own counts, the `customer_stats` event, report.json and its
/// per-second series all count by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Answered 2xx (control's own count: a worker served it).
    Ok,
    /// Refused by the throttling policy (429).
    Throttled,
    /// Refused at capacity (503).
    Overloaded,
    /// Failed otherwise (other 4xx/5xx, timeouts, connections): the caller's view only.
    Failed,
}

/// API calls by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCalls {
    /// Answered 2xx.
    pub ok: u64,
    /// Refused by the throttling policy (429).
    pub throttled: u64,
    /// Refused at capacity (503).
    pub overloaded: u64,
    /// Failed otherwise (other 4xx/5xx, timeouts).
    pub failed: u64,
}

impl ApiCalls {
    /// Counts one call.
    pub fn count(&mut self, outcome: CallOutcome) {
        *self.of_mut(outcome) += 1;
    }

    /// The calls that came to `outcome`.
    pub fn of(&self, outcome: CallOutcome) -> u64 {
        match outcome {
            CallOutcome::Ok => self.ok,
            CallOutcome::Throttled => self.throttled,
            CallOutcome::Overloaded => self.overloaded,
            CallOutcome::Failed => self.failed,
        }
    }

    fn of_mut(&mut self, outcome: CallOutcome) -> &mut u64 {
        match outcome {
            CallOutcome::Ok => &mut self.ok,
            CallOutcome::Throttled => &mut self.throttled,
            CallOutcome::Overloaded => &mut self.overloaded,
            CallOutcome::Failed => &mut self.failed,
        }
    }

    /// The calls since `before` (counts only grow).
    pub fn since(&self, before: &ApiCalls) -> ApiCalls {
        ApiCalls {
            ok: self.ok - before.ok,
            throttled: self.throttled - before.throttled,
            overloaded: self.overloaded - before.overloaded,
            failed: self.failed - before.failed,
        }
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.ok + self.throttled + self.overloaded + self.failed
    }

    /// Share answered 2xx; 1 when there were none.
    pub fn success(&self) -> f64 {
        match self.total() {
            0 => 1.0,
            n => self.ok as f64 / n as f64,
        }
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &ApiCalls) {
        self.ok += other.ok;
        self.throttled += other.throttled;
        self.overloaded += other.overloaded;
        self.failed += other.failed;
    }
}

/// One second of a customer's calls, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsInSecond {
    /// The second of the run (from the journal's start).
    pub second: u64,
    /// Its calls by outcome.
    #[serde(flatten)]
    pub calls: ApiCalls,
}

/// One of a customer's volumes that stopped serving, and how the customer got out of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryEpisode {
    /// The stuck volume.
    pub volume: String,
    /// When the customer first saw it stuck, ms on the run's clock.
    pub stuck_ms: u64,
    /// When the customer had a working volume again (a replacement attached, or this one
    /// healthy again), ms on the run's clock; `None` if it never did.
    pub recovered_ms: Option<u64>,
    /// The replacement it created and attached, if it got that far.
    pub replacement: Option<String>,
}

/// One fix that was on, and what it did during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixReport {
    /// The fix's name.
    pub name: String,
    /// Times it acted (restarts, re-pushes, limit kills); 0 for a fix that only changes how
    /// processes are set up.
    pub actions: u64,
    /// What it did, in a line: its setting, and its actions counted by kind.
    pub detail: String,
}

/// The harness's own resource use over a run, from `getrusage(RUSAGE_SELF)` at its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HarnessUsage {
    /// CPU time in user mode, ms.
    pub cpu_user_ms: u64,
    /// CPU time in the kernel on its behalf, ms.
    pub cpu_system_ms: u64,
    /// Peak resident memory, bytes.
    pub max_rss_bytes: u64,
}

/// What happened to the volumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumesReport {
    /// Volumes placed.
    pub total: u64,
    /// Most volumes stuck at once.
    pub stuck_peak: u64,
    /// When that peak was first reached (ms since the run started), if any volume stuck.
    pub stuck_peak_at_ms: Option<u64>,
    /// Volumes stuck when the run ended.
    pub stuck_final: u64,
    /// Failovers begun.
    pub failovers_attempted: u64,
    /// Failovers that found no healthy server with spare capacity.
    pub failovers_without_capacity: u64,
    /// Writes the storage servers acknowledged to the customer load.
    pub acknowledged_writes: u64,
    /// Acknowledged writes whose value did not read back at the end (must be 0).
    pub lost_acknowledged_writes: u64,
    /// When every volume was healthy again after the last volume stuck or degraded (ms), if it
    /// was by the end of the run.
    pub recovered_at_ms: Option<u64>,
}

/// The customer load over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests acknowledged.
    pub ok: u64,
    /// Requests refused, failed or past their deadline.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
}

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// At least one expectation failed.
    Fail,
}

/// What happened to one storage server (a `storage` process and its `agent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    /// Server id, `s000`, `s001`, ...
    pub id: String,
    /// The DNS server its agent resolves through.
    pub dns_server: String,
    /// Whether that DNS server missed the collector update (so the agent kept the dead address).
    pub stale: bool,
    /// The reporting agent.
    pub agent: AgentReport,
    /// The storage process.
    pub storage: StorageReport,
    /// When each alarm first fired for this server, in ms since the run started.
    pub alarms: ServerAlarms,
    /// When the control plane first counted this server as not serving I/O (ms), if ever.
    pub degraded_at_ms: Option<u64>,
    /// When one of the volumes it held first became stuck (ms), if ever.
    pub first_stuck_at_ms: Option<u64>,
    /// Whether it received a new mirror because another server failed.
    pub took_failover_load: bool,
}

/// Resident memory and report counts of one server's agent, across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The pid of the agent's last incarnation.
    pub pid: Option<u32>,
    /// First RSS sample of the first incarnation.
    pub rss_first_bytes: Option<u64>,
    /// Highest RSS sample of any incarnation.
    pub rss_peak_bytes: Option<u64>,
    /// Last RSS sample of the last incarnation.
    pub rss_last_bytes: Option<u64>,
    /// Failed report attempts, summed over incarnations.
    pub failed_reports: u64,
    /// Accepted reports, summed over incarnations.
    pub ok_reports: u64,
}

/// Resident memory of one storage process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageReport {
    /// Process id.
    pub pid: Option<u32>,
    /// Highest RSS sample.
    pub rss_peak_bytes: Option<u64>,
    /// Lowest block-cache size it had to shrink to after warm-up.
    pub cache_min_bytes: Option<u64>,
    /// When it first reported that its cache could not hold the working set (ms), if ever.
    pub degraded_at_ms: Option<u64>,
}

/// First firing time of each alarm for a server, in ms since the run started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerAlarms {
    /// The per-process leak alarm on this server's agent (`None`: never fired).
    pub leak_at_ms: Option<u64>,
    /// The per-process leak alarm on this server's storage process (a false alarm if it fires).
    pub storage_leak_at_ms: Option<u64>,
    /// The 2012 aggregate alarm for this server (`None`: never fired).
    pub aggregate_at_ms: Option<u64>,
}

/// One checked expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// Expectation name, as in the scenario's `expect:` section.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The evidence, in numbers.
    pub detail: String,
}

//! `report.json`: the summary of a run that machines read. This type is the schema; fields are
//! only ever added (later issues add volumes and load), never renamed.

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

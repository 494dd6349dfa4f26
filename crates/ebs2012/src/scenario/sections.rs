//! The scenario's settings sections: the fleet, DNS, the agent, storage, volumes, the customer
//! load and the watchdog.
//!
//! **Defaults have one home: the role crate that uses the value.** Every default here is read
//! from the role's own `Config::default()` (the agent's report interval from
//! `outage_lab_agent::Config`, the control plane's placement fill from `outage_lab_control::Config`,
//! and so on), never written again. The customer load has no role crate: its defaults live here.
//!
//! **Names:** a *timeout* is how long a client waits for its own request (`agent.request_timeout`,
//! `load.request_timeout`); a *deadline* is how long a server tries before it refuses
//! (`storage.request_deadline`).
//!
//! Each section validates its own values where they were written ([`Locator`]); the role
//! processes check their configs again at start-up, as any program checks its input.

use std::collections::BTreeMap;

use outage_lab_agent::{FleetRetryPolicy, RetryPolicyOf};
use outage_lab_proto::{ByteSize, HumanDuration, Spread};
use outage_lab_watchdog::{AggregateConfig, LeakConfig};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::external_agent::ExternalAgent;
use outage_lab_engine::located::{Locator, ScenarioError};

/// Largest fleet a scenario may ask for. Each server is two processes; past this the machine,
/// not the scenario, is the experiment.
pub const MAX_SERVERS: u32 = 2_000;

/// The smallest memory budget of a storage server: an idle agent and storage process need
/// about this much together.
const MIN_MEMORY_BUDGET: ByteSize = ByteSize::mib(8);

/// A default value, which has no place in the file.
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn storage_defaults() -> outage_lab_storage::Config {
    outage_lab_storage::Config::default()
}

fn control_defaults() -> outage_lab_control::Config {
    outage_lab_control::Config::new(Vec::new())
}

/// The storage fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Number of storage servers (each is a `storage` and an `agent` process).
    pub servers: Spanned<u32>,
    /// Memory of one storage server, shared by its storage process (block cache) and its agent.
    #[serde(default = "default_memory_budget")]
    pub memory_budget: Spanned<ByteSize>,
}

fn default_memory_budget() -> Spanned<ByteSize> {
    unspanned(storage_defaults().budget)
}

impl Fleet {
    /// The fleet's size and memory.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let servers = self.servers.value;
        if servers == 0 || servers > MAX_SERVERS {
            return Err(loc.at(
                &self.servers,
                format!("fleet.servers is {servers}; expected 1 to {MAX_SERVERS}"),
            ));
        }
        if self.memory_budget.value < MIN_MEMORY_BUDGET {
            return Err(loc.at(
                &self.memory_budget,
                format!(
                    "fleet.memory_budget is {}; expected at least {MIN_MEMORY_BUDGET} (an idle agent and storage process need about that together)",
                    self.memory_budget.value
                ),
            ));
        }
        Ok(())
    }
}

/// The internal DNS servers that answer `collector.lab.internal`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Their names. Storage servers are spread over them evenly, in a seeded order.
    pub servers: Vec<Spanned<String>>,
    /// TTL of the collector's A record; agents cache an answer this long.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
}

fn default_ttl() -> HumanDuration {
    outage_lab_dns::Config::default().ttl
}

impl Dns {
    /// Names: at least one, at most `max`, each usable as a process name, unique.
    pub fn validate(&self, max: usize, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let path: &[&str] = &["dns", "servers"];
        if self.servers.is_empty() {
            return Err(loc.at_path(
                &[path],
                "dns.servers is empty; expected at least one DNS server name".into(),
            ));
        }
        if self.servers.len() > max {
            return Err(loc.at_path(
                &[path],
                format!(
                    "dns.servers names {} servers; at most {max} are supported",
                    self.servers.len()
                ),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for name in &self.servers {
            let usable = !name.value.is_empty()
                && name.value.len() <= 32
                && (name.value.chars()).all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !usable {
                return Err(loc.at(
                    name,
                    format!(
                        "DNS server name {:?} must be 1-32 letters, digits or '-'",
                        name.value
                    ),
                ));
            }
            if !names.insert(name.value.as_str()) {
                return Err(loc.at(name, format!("duplicate DNS server name {:?}", name.value)));
            }
        }
        Ok(())
    }
}

/// Settings of every agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// How often a report is due: one interval, or a range (`{ min: 80ms, max: 120ms }`) from
    /// which each agent draws its own (seeded), as a real fleet's agents differ.
    pub report_interval: Spanned<Spread<HumanDuration>>,
    /// How long one report attempt waits for the collector.
    pub request_timeout: HumanDuration,
    /// What a failed report costs: `mode: leaky` (the 2012 bug) or `mode: fixed`. A leaky
    /// `retained_per_failure` may be a range each agent draws its own leak rate from.
    pub retry: FleetRetryPolicy,
    /// Any program as the agent, in place of the built-in one (see [`crate::external_agent`]).
    pub command: Option<Spanned<Vec<String>>>,
    /// The external agent's environment (templates).
    pub env: BTreeMap<String, String>,
    /// Files written into the external agent's working directory (templates).
    pub files: BTreeMap<String, String>,
    /// Whether the external agent may exit on its own.
    pub may_exit: bool,
}

impl Default for AgentSettings {
    fn default() -> Self {
        let agent = outage_lab_agent::Config::default();
        Self {
            report_interval: unspanned(Spread::exactly(agent.report_interval)),
            request_timeout: agent.request_timeout,
            retry: FleetRetryPolicy::default(),
            command: None,
            env: BTreeMap::new(),
            files: BTreeMap::new(),
            may_exit: false,
        }
    }
}

/// The built-in agent's settings, which mean nothing to an external one.
const BUILT_IN_ONLY: &[&str] = &["report_interval", "request_timeout", "retry"];
/// The external agent's settings, which mean nothing without `command`.
const EXTERNAL_ONLY: &[&str] = &["env", "files", "may_exit"];

impl AgentSettings {
    /// The external agent, when `command:` names one.
    pub fn external(&self) -> Option<ExternalAgent> {
        Some(ExternalAgent {
            command: self.command.clone()?,
            env: self.env.clone(),
            files: self.files.clone(),
            may_exit: self.may_exit,
        })
    }

    /// Intervals and the retry policy, or the external agent; never a mix.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let written = |field: &str| loc.written(&["agent", field]);
        if let Some(external) = self.external() {
            if let Some(field) = BUILT_IN_ONLY.iter().find(|f| written(f)) {
                return Err(loc.at_path(
                    &[&["agent", field]],
                    format!("agent.{field} configures the built-in agent, and agent.command replaces it; remove one of them"),
                ));
            }
            return external.validate(loc);
        }
        if let Some(field) = EXTERNAL_ONLY.iter().find(|f| written(f)) {
            return Err(loc.at_path(
                &[&["agent", field]],
                format!("agent.{field} configures an external agent; set agent.command to the program to run"),
            ));
        }
        if self.report_interval.value.min.get().is_zero() {
            return Err(loc.at(
                &self.report_interval,
                "agent.report_interval must be greater than 0ms".into(),
            ));
        }
        if self.request_timeout.get().is_zero() {
            return Err(loc.at_path(
                &[&["agent", "request_timeout"]],
                "agent.request_timeout must be greater than 0ms".into(),
            ));
        }
        self.validate_retry(loc)
    }

    /// The retry policy: what `RetryPolicy::validate` checks, where it was written.
    fn validate_retry(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        const BASE: &[&str] = &["agent", "retry", "backoff_base"];
        const MAX: &[&str] = &["agent", "retry", "backoff_max"];
        if let RetryPolicyOf::Fixed {
            backoff_base,
            backoff_max,
            ..
        } = &self.retry
        {
            if backoff_base.get().is_zero() {
                return Err(loc.at_path(
                    &[BASE],
                    "agent.retry.backoff_base must be greater than 0ms (a dead collector must not be retried in a tight loop)".into(),
                ));
            }
            if backoff_base > backoff_max {
                return Err(loc.at_path(
                    &[BASE, MAX],
                    format!(
                        "agent.retry.backoff_base is {backoff_base}, above backoff_max {backoff_max}; expected backoff_base <= backoff_max"
                    ),
                ));
            }
        }
        // Anything else the agent would refuse at start-up.
        (self.retry.validate()).map_err(|e| {
            loc.at_path(
                &[&["agent", "retry"]],
                format!("agent.retry is not valid: {e}"),
            )
        })
    }
}

/// Settings of every storage process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Share of the server's memory budget the server keeps in use (cache fills the rest).
    pub fill_fraction: Spanned<f64>,
    /// Blocks customers touch; a cache smaller than this makes the server degraded.
    pub working_set: Spanned<ByteSize>,
    /// What one block access that misses the cache costs on the disk.
    pub miss_penalty: HumanDuration,
    /// A block request not served within this is refused (`503 deadline exceeded`).
    pub request_deadline: HumanDuration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let storage = storage_defaults();
        Self {
            fill_fraction: unspanned(storage.fill_fraction),
            working_set: unspanned(storage.working_set),
            miss_penalty: storage.miss_penalty,
            request_deadline: storage.request_deadline,
        }
    }
}

impl StorageSettings {
    /// Shares, sizes and times.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let fill = self.fill_fraction.value;
        if !(fill > 0.0 && fill <= 1.0) {
            return Err(loc.at(
                &self.fill_fraction,
                format!("storage.fill_fraction is {fill}; expected a fraction in (0, 1]"),
            ));
        }
        if self.working_set.value.bytes() == 0 {
            return Err(loc.at(
                &self.working_set,
                "storage.working_set must be greater than 0B".into(),
            ));
        }
        let block = storage_defaults().block_size;
        if self.working_set.value < block {
            return Err(loc.at(
                &self.working_set,
                format!(
                    "storage.working_set is {}; expected at least one storage block ({block})",
                    self.working_set.value
                ),
            ));
        }
        for (name, d) in [
            ("miss_penalty", self.miss_penalty),
            ("request_deadline", self.request_deadline),
        ] {
            if d.get().is_zero() {
                return Err(loc.at_path(
                    &[&["storage", name]],
                    format!("storage.{name} must be longer than 0ms"),
                ));
            }
        }
        Ok(())
    }
}

/// Volumes and the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeSettings {
    /// Replicas one storage server can hold, spare slots included.
    pub slots_per_server: u32,
    /// Share of all slots filled at placement, in (0, 1]: the rest is failover capacity.
    pub placement_fill: f64,
    /// Blocks in each volume.
    pub blocks_per_volume: u32,
    /// Real memory one replica occupies on its server (what a new mirror costs the receiver).
    pub replica_size: ByteSize,
    /// Most failovers begun per second, fleet-wide.
    pub failovers_per_second: f64,
    /// How control probes each server's I/O path.
    pub probe: ProbeSettings,
}

impl Default for VolumeSettings {
    fn default() -> Self {
        let control = control_defaults();
        Self {
            slots_per_server: control.slots_per_server,
            placement_fill: control.placement_fill,
            blocks_per_volume: control.blocks_per_volume,
            replica_size: storage_defaults().replica_size,
            failovers_per_second: control.failovers_per_second,
            probe: ProbeSettings::default(),
        }
    }
}

/// Control's health probes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// How often every server is probed.
    pub interval: HumanDuration,
    /// Block reads one probe makes through the server's cache and disk, within one request
    /// deadline.
    pub blocks: u64,
    /// Probes remembered per server.
    pub window: u32,
    /// Failed probes within the window that make a server unhealthy.
    pub fail_after: u32,
    /// Successful probes in a row that make it healthy again.
    pub recover_after: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        let control = control_defaults();
        Self {
            interval: control.probe_interval,
            blocks: storage_defaults().probe_blocks,
            window: control.probe_window,
            fail_after: control.fail_after,
            recover_after: control.recover_after,
        }
    }
}

impl VolumeSettings {
    /// Placement, probes and replica sizes, where each was written.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let fail = |name: &str, what: String| Err(loc.at_path(&[&["volumes", name]], what));
        if !(1..=1024).contains(&self.slots_per_server) {
            let n = self.slots_per_server;
            return fail(
                "slots_per_server",
                format!("volumes.slots_per_server is {n}; expected 1 to 1024"),
            );
        }
        if !(self.placement_fill > 0.0 && self.placement_fill <= 1.0) {
            let f = self.placement_fill;
            return fail(
                "placement_fill",
                format!("volumes.placement_fill is not valid: {f}; expected a share in (0, 1]"),
            );
        }
        if !(1..=4096).contains(&self.blocks_per_volume) {
            let n = self.blocks_per_volume;
            return fail(
                "blocks_per_volume",
                format!("volumes.blocks_per_volume is {n}; expected 1 to 4096"),
            );
        }
        let rate = self.failovers_per_second;
        if !(rate > 0.0 && rate <= 10_000.0) {
            return fail(
                "failovers_per_second",
                format!(
                    "volumes.failovers_per_second is {rate}; expected more than 0, at most 10000"
                ),
            );
        }
        if self.replica_size > ByteSize::mib(64) {
            let size = self.replica_size;
            return fail(
                "replica_size",
                format!("volumes.replica_size is {size}; expected at most 64MiB"),
            );
        }
        self.probe.validate(loc)
    }
}

impl ProbeSettings {
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let at = |names: &[&str], what: String| {
            let paths: Vec<Vec<&str>> = (names.iter())
                .map(|n| vec!["volumes", "probe", n])
                .collect();
            let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
            Err(loc.at_path(&paths, what))
        };
        if self.interval.get().is_zero() {
            return at(
                &["interval"],
                "volumes.probe.interval must be longer than 0ms".into(),
            );
        }
        if self.window == 0 || self.fail_after == 0 || self.fail_after > self.window {
            return at(
                &["fail_after", "window"],
                format!(
                    "volumes.probe.fail_after is {} with a window of {}; expected 1 to window failed probes",
                    self.fail_after, self.window
                ),
            );
        }
        if self.recover_after == 0 {
            return at(
                &["recover_after"],
                "volumes.probe.recover_after is 0; expected at least 1 probe".into(),
            );
        }
        if self.blocks == 0 || self.blocks > 1024 {
            return at(
                &["blocks"],
                format!(
                    "volumes.probe.blocks is {}; expected 1 to 1024",
                    self.blocks
                ),
            );
        }
        Ok(())
    }
}

/// The customers' I/O. (No role crate runs it: the harness does, and its defaults live here.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSettings {
    /// Requests per second over all volumes (0 turns the load off).
    pub requests_per_second: f64,
    /// Share of requests that are reads, in [0, 1].
    pub read_fraction: f64,
    /// How long a customer waits for one request before counting it as an error.
    #[serde(alias = "deadline")]
    pub request_timeout: HumanDuration,
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 100.0,
            read_fraction: 0.5,
            request_timeout: HumanDuration::millis(250),
        }
    }
}

impl LoadSettings {
    /// Whether customers send any I/O at all.
    pub fn runs(&self) -> bool {
        self.requests_per_second > 0.0
    }

    /// Rates and shares.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let rate = self.requests_per_second;
        if !(rate.is_finite() && (0.0..=10_000.0).contains(&rate)) {
            return Err(loc.at_path(
                &[&["load", "requests_per_second"]],
                format!("load.requests_per_second is {rate}; expected 0 to 10000"),
            ));
        }
        if !(0.0..=1.0).contains(&self.read_fraction) {
            return Err(loc.at_path(
                &[&["load", "read_fraction"]],
                format!(
                    "load.read_fraction is {}; expected a share in [0, 1]",
                    self.read_fraction
                ),
            ));
        }
        if self.request_timeout.get().is_zero() {
            return Err(loc.at_path(
                &[&["load", "request_timeout"], &["load", "deadline"]],
                "load.request_timeout must be longer than 0ms".into(),
            ));
        }
        Ok(())
    }
}

/// The watchdog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogSettings {
    /// How often every agent's and storage process's resident memory is read.
    pub sample_interval: HumanDuration,
    /// The fixed monitoring: per-process leak trend.
    pub leak: LeakConfig,
    /// The 2012 monitoring: per-server aggregate memory threshold.
    pub aggregate: AggregateConfig,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        let watchdog = outage_lab_watchdog::Config::default();
        Self {
            sample_interval: watchdog.sample_interval,
            leak: watchdog.leak,
            aggregate: watchdog.aggregate,
        }
    }
}

impl WatchdogSettings {
    /// The watchdog's settings: what its `validate` checks, where each value was written.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        const WINDOW: &[&str] = &["watchdog", "leak", "window"];
        const SEGMENTS: &[&str] = &["watchdog", "leak", "segments"];
        if self.sample_interval.get().is_zero() {
            return Err(loc.at_path(
                &[&["watchdog", "sample_interval"]],
                "watchdog.sample_interval must be greater than 0ms".into(),
            ));
        }
        let leak = &self.leak;
        if leak.segments < 2 {
            return Err(loc.at_path(
                &[SEGMENTS],
                format!(
                    "watchdog.leak.segments is {}; expected at least 2 (growth is measured from one segment to the next)",
                    leak.segments
                ),
            ));
        }
        let shortest = std::time::Duration::from_millis(u64::from(leak.segments));
        if leak.window.get() < shortest {
            return Err(loc.at_path(
                &[WINDOW, SEGMENTS],
                format!(
                    "watchdog.leak.window is {} for {} segments; expected at least {} (1ms per segment)",
                    leak.window,
                    leak.segments,
                    HumanDuration(shortest)
                ),
            ));
        }
        (leak.validate()).map_err(|e| {
            loc.at_path(
                &[&["watchdog", "leak"]],
                format!("watchdog.leak is not valid: {e}"),
            )
        })?;
        self.validate_aggregate(loc)
    }

    fn validate_aggregate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let aggregate = &self.aggregate;
        let threshold = aggregate.threshold;
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(loc.at_path(
                &[&["watchdog", "aggregate", "threshold"]],
                format!(
                    "watchdog.aggregate.threshold is {threshold}; expected a positive share of the memory budget (e.g. 0.95)"
                ),
            ));
        }
        if aggregate.for_samples == 0 {
            return Err(loc.at_path(
                &[&["watchdog", "aggregate", "for_samples"]],
                "watchdog.aggregate.for_samples is 0; expected at least 1 sweep".into(),
            ));
        }
        (aggregate.validate()).map_err(|e| {
            loc.at_path(
                &[&["watchdog", "aggregate"]],
                format!("watchdog.aggregate is not valid: {e}"),
            )
        })
    }
}

//! Scenario files: what a run does, in YAML.
//!
//! Parsing is strict and split from reading so it can be tested on strings: unknown fields,
//! wrong types and values out of range are errors that name `file:line:column` and say what was
//! expected. [`Scenario::parse`] turns text into a validated scenario; nothing is started until a
//! scenario has passed it.
//!
//! The shape, with every field documented on the structs below:
//!
//! ```yaml
//! name: ebs-2012-10-22
//! seed: 20121022
//! duration: 44s
//! fleet: { servers: 12, memory_budget: 48MiB }
//! dns: { servers: [dns-a, dns-b, dns-c], ttl: 1s }
//! agent: { retry: { mode: leaky, retained_per_failure: 64KiB, ceiling: 32MiB } }
//! timeline:
//!   - replace_collector: { at: 4s }
//!   - dns_update: { at: 4s, propagate_to: [dns-a, dns-b] }
//!   - dns_repair: { at: 34s }
//!   - restart: { at: 36s, agents: stale }
//! expect:
//!   stale_share: 0.33
//!   leak_alarm: exactly_stale_agents
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use outage_lab_agent::RetryPolicy;
use outage_lab_proto::{ByteSize, HumanDuration};
use outage_lab_watchdog::{AggregateConfig, LeakConfig};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// Scenario files larger than this are refused before parsing: a real scenario is a few KiB.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Largest fleet a scenario may ask for. Each server is two processes; past this the machine,
/// not the scenario, is the experiment.
pub const MAX_SERVERS: u32 = 2_000;

/// Longest scenario name: it is part of the run directory's name, which must stay well under the
/// 255 bytes a file name may have.
pub const MAX_NAME_CHARS: usize = 128;

/// A scenario that could not be read or is not valid. The message is complete: it names the file,
/// the line and column where it has them, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// `file:line:column: what` (or `file: what` when there is no position).
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; used in the run directory's name and the report.
    pub name: String,
    /// One line for people: what this scenario shows.
    #[serde(default)]
    pub description: String,
    /// Every random choice in the run flows from this seed (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long the timeline runs, from the moment the fleet is up.
    pub duration: Spanned<HumanDuration>,
    /// The storage fleet.
    pub fleet: Fleet,
    /// The internal DNS servers.
    pub dns: Dns,
    /// The reporting agent on every storage server.
    #[serde(default)]
    pub agent: AgentSettings,
    /// The storage process on every storage server.
    #[serde(default)]
    pub storage: StorageSettings,
    /// The watchdog's sampling and both alarms.
    #[serde(default)]
    pub watchdog: WatchdogSettings,
    /// Volumes on the storage servers and the control plane that fails them over.
    #[serde(default)]
    pub volumes: VolumeSettings,
    /// The customers' I/O against the volumes.
    #[serde(default)]
    pub load: LoadSettings,
    /// Faults and repairs, in time order.
    #[serde(default)]
    pub timeline: Vec<Step>,
    /// What must be true at the end; each present field is one checked expectation.
    #[serde(default)]
    pub expect: Expectations,
}

fn default_seed() -> u64 {
    1
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
    unspanned(ByteSize::mib(48))
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
    HumanDuration::secs(1)
}

/// Settings of every agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// How often a report is due.
    #[serde(default = "default_report_interval")]
    pub report_interval: Spanned<HumanDuration>,
    /// Deadline of one report attempt.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// What a failed report costs: `mode: leaky` (the 2012 bug) or `mode: fixed`.
    #[serde(default = "default_retry")]
    pub retry: RetryPolicy,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            report_interval: default_report_interval(),
            request_timeout: default_request_timeout(),
            retry: default_retry(),
        }
    }
}

fn default_report_interval() -> Spanned<HumanDuration> {
    unspanned(HumanDuration::millis(100))
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration::millis(500)
}

fn default_retry() -> RetryPolicy {
    RetryPolicy::Leaky {
        retained_per_failure: ByteSize::kib(64),
        ceiling: ByteSize::mib(32),
    }
}

/// Settings of every storage process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Share of the server's memory budget the server keeps in use (cache fills the rest).
    #[serde(default = "default_fill_fraction")]
    pub fill_fraction: Spanned<f64>,
    /// Blocks customers touch; a cache smaller than this makes the server degraded.
    #[serde(default = "default_working_set")]
    pub working_set: Spanned<ByteSize>,
    /// What one block access that misses the cache costs on the disk.
    #[serde(default = "default_miss_penalty")]
    pub miss_penalty: HumanDuration,
    /// A block request not answered within this is refused (`503 deadline exceeded`).
    #[serde(default = "default_request_deadline")]
    pub request_deadline: HumanDuration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            fill_fraction: default_fill_fraction(),
            working_set: default_working_set(),
            miss_penalty: default_miss_penalty(),
            request_deadline: default_request_deadline(),
        }
    }
}

fn default_miss_penalty() -> HumanDuration {
    HumanDuration::millis(10)
}

fn default_request_deadline() -> HumanDuration {
    HumanDuration::millis(50)
}

/// Volumes and the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// Replicas one storage server can hold, spare slots included.
    #[serde(default = "default_slots_per_server")]
    pub slots_per_server: u32,
    /// Share of all slots filled at placement, in (0, 1]: the rest is failover capacity.
    #[serde(default = "default_placement_fill")]
    pub placement_fill: f64,
    /// Blocks in each volume.
    #[serde(default = "default_blocks_per_volume")]
    pub blocks_per_volume: u32,
    /// Real memory one replica occupies on its server (what a new mirror costs the receiver).
    #[serde(default = "default_replica_size")]
    pub replica_size: ByteSize,
    /// Most failovers begun per second, fleet-wide.
    #[serde(default = "default_failovers_per_second")]
    pub failovers_per_second: f64,
    /// How control probes each server's I/O path.
    #[serde(default)]
    pub probe: ProbeSettings,
}

impl Default for VolumeSettings {
    fn default() -> Self {
        Self {
            slots_per_server: default_slots_per_server(),
            placement_fill: default_placement_fill(),
            blocks_per_volume: default_blocks_per_volume(),
            replica_size: default_replica_size(),
            failovers_per_second: default_failovers_per_second(),
            probe: ProbeSettings::default(),
        }
    }
}

fn default_slots_per_server() -> u32 {
    8
}
fn default_placement_fill() -> f64 {
    0.875
}
fn default_blocks_per_volume() -> u32 {
    64
}
fn default_replica_size() -> ByteSize {
    ByteSize::kib(256)
}
fn default_failovers_per_second() -> f64 {
    50.0
}

/// Control's health probes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    /// How often every server is probed.
    #[serde(default = "default_probe_interval")]
    pub interval: HumanDuration,
    /// Block reads one probe makes through the server's cache and disk, within one request
    /// deadline.
    #[serde(default = "default_probe_blocks")]
    pub blocks: u64,
    /// Probes remembered per server.
    #[serde(default = "default_probe_window")]
    pub window: u32,
    /// Failed probes within the window that make a server unhealthy.
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
    /// Successful probes in a row that make it healthy again.
    #[serde(default = "default_recover_after")]
    pub recover_after: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: default_probe_interval(),
            blocks: default_probe_blocks(),
            window: default_probe_window(),
            fail_after: default_fail_after(),
            recover_after: default_recover_after(),
        }
    }
}

fn default_probe_interval() -> HumanDuration {
    HumanDuration::millis(250)
}
fn default_probe_blocks() -> u64 {
    16
}
fn default_probe_window() -> u32 {
    5
}
fn default_fail_after() -> u32 {
    3
}
fn default_recover_after() -> u32 {
    8
}

/// The customers' I/O.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    /// Requests per second over all volumes (0 turns the load off).
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Share of requests that are reads, in [0, 1].
    #[serde(default = "default_read_fraction")]
    pub read_fraction: f64,
    /// A request not answered within this counts as an error.
    #[serde(default = "default_load_deadline")]
    pub deadline: HumanDuration,
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self {
            requests_per_second: default_requests_per_second(),
            read_fraction: default_read_fraction(),
            deadline: default_load_deadline(),
        }
    }
}

fn default_requests_per_second() -> f64 {
    100.0
}
fn default_read_fraction() -> f64 {
    0.5
}
fn default_load_deadline() -> HumanDuration {
    HumanDuration::millis(250)
}

fn default_fill_fraction() -> Spanned<f64> {
    unspanned(0.9)
}

fn default_working_set() -> Spanned<ByteSize> {
    unspanned(ByteSize::mib(16))
}

/// The watchdog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogSettings {
    /// How often every agent's and storage process's resident memory is read.
    #[serde(default = "default_sample_interval")]
    pub sample_interval: HumanDuration,
    /// The fixed monitoring: per-process leak trend.
    #[serde(default)]
    pub leak: LeakConfig,
    /// The 2012 monitoring: per-server aggregate memory threshold.
    #[serde(default)]
    pub aggregate: AggregateConfig,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        Self {
            sample_interval: default_sample_interval(),
            leak: LeakConfig::default(),
            aggregate: AggregateConfig::default(),
        }
    }
}

fn default_sample_interval() -> HumanDuration {
    HumanDuration::millis(250)
}

/// One timeline step. Each names its time `at`, measured from the moment the fleet is up.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The collector fails and is replaced: the old collector process is killed (its address goes
    /// dead) and a replacement starts on a new address. DNS still names the old one.
    ReplaceCollector(At),
    /// The collector's A record is changed to the replacement, but only on these DNS servers.
    DnsUpdate(DnsUpdate),
    /// The record is fixed on every DNS server.
    DnsRepair(At),
    /// Agents are restarted (which frees whatever they leaked).
    Restart(Restart),
}

/// A step that only has a time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
}

/// The partial DNS update of the incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsUpdate {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// The DNS servers the update reaches; the others keep answering the old address.
    pub propagate_to: Vec<Spanned<String>>,
}

/// Restart agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// Which agents: `stale` (behind DNS servers the last update missed) or `all`.
    pub agents: AgentSelection,
}

/// A set of agents named in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentSelection {
    /// Agents behind the DNS servers the last `dns_update` did not reach.
    Stale,
    /// Every agent.
    All,
}

impl Step {
    /// When the step happens.
    pub fn at(&self) -> &Spanned<HumanDuration> {
        match self {
            Step::ReplaceCollector(s) | Step::DnsRepair(s) => &s.at,
            Step::DnsUpdate(s) => &s.at,
            Step::Restart(s) => &s.at,
        }
    }

    /// The step's name as written in the scenario.
    pub fn action(&self) -> &'static str {
        match self {
            Step::ReplaceCollector(_) => "replace_collector",
            Step::DnsUpdate(_) => "dns_update",
            Step::DnsRepair(_) => "dns_repair",
            Step::Restart(_) => "restart",
        }
    }
}

/// What must hold at the end of the run. Every field present is checked and reported; absent
/// fields are not checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Fraction of servers whose agent is behind a DNS server the update missed, as observed
    /// (agents that really kept resolving the old address). Holds if the observed count is
    /// this fraction of the fleet rounded to the nearest server.
    pub stale_share: Option<Spanned<f64>>,
    /// Every stale agent's resident memory grows at least this much above its level before the
    /// first fault.
    pub stale_agents_grow_at_least: Option<ByteSize>,
    /// No stale agent's resident memory grows more than this (the fixed agent: no leak).
    pub stale_agents_grow_at_most: Option<ByteSize>,
    /// No fresh agent's resident memory grows more than this above its level before the first
    /// fault. (With no `dns_update`, every agent counts as fresh.)
    pub fresh_agents_grow_at_most: Option<ByteSize>,
    /// Which processes the leak alarm must fire on.
    pub leak_alarm: Option<LeakAlarmExpectation>,
    /// What the 2012 aggregate alarm may do.
    pub aggregate_alarm: Option<AggregateAlarmExpectation>,
    /// After a restart, each restarted agent's last resident memory is within this of its level
    /// before the first fault.
    pub memory_recovers_within: Option<ByteSize>,
    /// Whether volumes get stuck, and when.
    pub stuck_volumes: Option<StuckVolumesExpectation>,
    /// Whether failovers run out of healthy servers with spare capacity.
    pub failover_capacity: Option<FailoverCapacityExpectation>,
    /// Every volume is healthy again within this of the last timeline step, and none is stuck
    /// at the end.
    pub volumes_recover_within: Option<Spanned<HumanDuration>>,
}

/// Whether volumes get stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckVolumesExpectation {
    /// Some do, only on stale servers or servers that took failover load from them, and on every
    /// stale server the leak alarm fired before its first stuck volume.
    AfterLeakAlarm,
    /// None does.
    None,
}

/// Whether failovers find capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverCapacityExpectation {
    /// At least one failover finds no healthy server with a free slot.
    RunsOut,
    /// Every failover finds one.
    Suffices,
}

/// Where the leak alarm must fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakAlarmExpectation {
    /// On every stale agent, and on no fresh agent and no storage process.
    ExactlyStaleAgents,
    /// On nothing.
    None,
}

/// What the 2012 aggregate alarm may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateAlarmExpectation {
    /// It does not fire before the first leak alarm (the incident: it stayed silent).
    NotBeforeLeakAlarm,
    /// It never fires.
    Never,
}

impl Scenario {
    /// Reads and validates a scenario file. Refuses directories, files over
    /// [`MAX_SCENARIO_BYTES`] and text that is not UTF-8, before parsing. The read itself is
    /// bounded too, so a device or a pipe that never ends (`/dev/zero`) is refused, not slurped.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let fail = |what: String| ScenarioError {
            message: format!("{shown}: {what}"),
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if meta.is_dir() {
            return Err(fail(
                "is a directory; expected a scenario file (YAML)".into(),
            ));
        }
        let too_big = |size: String| {
            fail(format!(
                "is {size} bytes; a scenario may be at most {MAX_SCENARIO_BYTES} bytes"
            ))
        };
        if meta.len() > MAX_SCENARIO_BYTES {
            return Err(too_big(meta.len().to_string()));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(file, MAX_SCENARIO_BYTES + 1),
                    &mut bytes,
                )
            })
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(too_big(format!("more than {MAX_SCENARIO_BYTES}")));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let bad = e.as_bytes()[valid.len()];
            // `valid` is UTF-8 by definition: count lines and characters up to the bad byte.
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let column = valid.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
            ScenarioError {
                message: format!(
                    "{shown}:{line}:{column}: byte 0x{bad:02x} (offset {}) is not UTF-8; expected a YAML scenario, which is UTF-8 text",
                    valid.len()
                ),
            }
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates scenario text; `source` names it in error messages.
    pub fn parse(text: &str, source: &str) -> Result<Self, ScenarioError> {
        if text.trim().is_empty() {
            return Err(ScenarioError {
                message: format!(
                    "{source}:1:1: the file is empty; expected a scenario (see fixtures/scenarios/ebs-2012-10-22.yaml)"
                ),
            });
        }
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(ScenarioError {
                message: format!(
                    "{source}:1:1: the file has only comments and blank lines; expected a scenario (see fixtures/scenarios/ebs-2012-10-22.yaml)"
                ),
            });
        }
        let scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, source))?;
        scenario.validate(text, source)?;
        Ok(scenario)
    }

    /// Checks what serde cannot: ranges, names, the timeline's order and references, and the
    /// values the role processes would refuse at start-up. `text` is read again, only on failure,
    /// to find where a value without a position of its own was written (see [`Places`]).
    fn validate(&self, text: &str, source: &str) -> Result<(), ScenarioError> {
        let located = |line: u64, column: u64, what: &str| ScenarioError {
            message: if line == 0 {
                // A default: it has no place in the file.
                format!("{source}: {what}")
            } else {
                format!("{source}:{line}:{column}: {what}")
            },
        };
        let at = |s: &dyn LocatedValue, what: String| located(s.line(), s.column(), &what);
        let plain = |what: String| ScenarioError {
            message: format!("{source}: {what}"),
        };
        // Where `paths[0]` (else the first of the others that is written, else the nearest
        // written part of `paths[0]`) is in the file.
        let at_path = |paths: &[&[&str]], what: String| {
            let places = Places::read(text).unwrap_or_default();
            let found = paths
                .iter()
                .find_map(|p| places.exact(p))
                .or_else(|| paths.first().and_then(|p| places.nearest(p)));
            match found {
                Some(loc) => located(loc.line(), loc.column(), &what),
                None => plain(what),
            }
        };

        if self.name.trim().is_empty()
            || self.name.chars().count() > MAX_NAME_CHARS
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(at_path(
                &[&["name"]],
                format!(
                    "name {:?} is not a usable name; expected 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.' (it names the run directory)",
                    self.name
                ),
            ));
        }
        let duration = self.duration.value.get();
        if duration.is_zero() {
            return Err(at(
                &self.duration,
                "duration must be greater than 0s".into(),
            ));
        }
        let servers = self.fleet.servers.value;
        if servers == 0 || servers > MAX_SERVERS {
            return Err(at(
                &self.fleet.servers,
                format!("fleet.servers is {servers}; expected 1 to {MAX_SERVERS}"),
            ));
        }
        if self.fleet.memory_budget.value.bytes() < ByteSize::mib(8).bytes() {
            return Err(at(
                &self.fleet.memory_budget,
                format!(
                    "fleet.memory_budget is {}; expected at least 8MiB (an idle agent and storage process need about 8MiB together)",
                    self.fleet.memory_budget.value
                ),
            ));
        }
        let fill = self.storage.fill_fraction.value;
        if !(fill > 0.0 && fill <= 1.0) {
            return Err(at(
                &self.storage.fill_fraction,
                format!("storage.fill_fraction is {fill}; expected a fraction in (0, 1]"),
            ));
        }
        if self.storage.working_set.value.bytes() == 0 {
            return Err(at(
                &self.storage.working_set,
                "storage.working_set must be greater than 0B".into(),
            ));
        }
        let block = outage_lab_storage::Config::default().block_size;
        if self.storage.working_set.value < block {
            return Err(at(
                &self.storage.working_set,
                format!(
                    "storage.working_set is {}; expected at least one storage block ({block})",
                    self.storage.working_set.value
                ),
            ));
        }
        if self.agent.report_interval.value.get().is_zero() {
            return Err(at(
                &self.agent.report_interval,
                "agent.report_interval must be greater than 0ms".into(),
            ));
        }
        if self.agent.request_timeout.get().is_zero() {
            return Err(at_path(
                &[&["agent", "request_timeout"]],
                "agent.request_timeout must be greater than 0ms".into(),
            ));
        }
        self.validate_retry(&at_path)?;
        self.validate_watchdog(&at_path)?;
        self.validate_volumes(&at_path)?;

        // DNS server names: at least one, unique.
        if self.dns.servers.is_empty() {
            return Err(at_path(
                &[&["dns", "servers"]],
                "dns.servers is empty; expected at least one DNS server name".into(),
            ));
        }
        if self.dns.servers.len() > crate::plan::MAX_DNS_SERVERS {
            return Err(at_path(
                &[&["dns", "servers"]],
                format!(
                    "dns.servers names {} servers; at most {} are supported",
                    self.dns.servers.len(),
                    crate::plan::MAX_DNS_SERVERS
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for name in &self.dns.servers {
            if !is_process_name(&name.value) {
                return Err(at(
                    name,
                    format!(
                        "DNS server name {:?} must be 1-32 letters, digits or '-'",
                        name.value
                    ),
                ));
            }
            if !names.insert(name.value.as_str()) {
                return Err(at(
                    name,
                    format!("duplicate DNS server name {:?}", name.value),
                ));
            }
        }

        // Timeline: in order, within the duration, names that exist, a collector to update to.
        let mut last = std::time::Duration::ZERO;
        let mut replaced = false;
        let mut updated = false;
        for step in &self.timeline {
            let when = step.at().value.get();
            if when < last {
                return Err(at(
                    step.at(),
                    format!(
                        "{} at {} comes before the previous step ({}); expected steps in time order",
                        step.action(),
                        step.at().value,
                        HumanDuration(last)
                    ),
                ));
            }
            if when > duration {
                return Err(at(
                    step.at(),
                    format!(
                        "{} at {} is after the end of the run (duration {})",
                        step.action(),
                        step.at().value,
                        self.duration.value
                    ),
                ));
            }
            last = when;
            match step {
                Step::ReplaceCollector(s) => {
                    if replaced {
                        return Err(at(
                            &s.at,
                            "the collector is replaced twice; only one replacement is supported"
                                .into(),
                        ));
                    }
                    replaced = true;
                }
                Step::DnsUpdate(u) => {
                    if !replaced {
                        return Err(at(&u.at, "dns_update comes before replace_collector; there is no replacement to point DNS at yet".into()));
                    }
                    if updated {
                        return Err(at(
                            &u.at,
                            "a second dns_update; use dns_repair to finish propagation".into(),
                        ));
                    }
                    updated = true;
                    let mut seen = BTreeSet::new();
                    for target in &u.propagate_to {
                        if !names.contains(target.value.as_str()) {
                            return Err(at(
                                target,
                                format!(
                                    "unknown DNS server {:?} in propagate_to; expected one of: {}",
                                    target.value,
                                    names.iter().copied().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                        if !seen.insert(target.value.as_str()) {
                            return Err(at(
                                target,
                                format!("DNS server {:?} listed twice", target.value),
                            ));
                        }
                    }
                }
                Step::DnsRepair(s) => {
                    if !replaced {
                        return Err(at(
                            &s.at,
                            "dns_repair comes before replace_collector; there is nothing to repair"
                                .into(),
                        ));
                    }
                }
                Step::Restart(_) => {}
            }
        }

        if let Some(share) = self
            .expect
            .stale_share
            .as_ref()
            .filter(|s| !(0.0..=1.0).contains(&s.value))
        {
            return Err(at(
                share,
                format!(
                    "expect.stale_share is {}; expected a fraction in [0, 1]",
                    share.value
                ),
            ));
        }
        Ok(())
    }

    /// The agent's retry policy: what `RetryPolicy::validate` checks, where it was written.
    fn validate_retry(
        &self,
        at_path: &dyn Fn(&[&[&str]], String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        const BASE: &[&str] = &["agent", "retry", "backoff_base"];
        const MAX: &[&str] = &["agent", "retry", "backoff_max"];
        if let RetryPolicy::Fixed {
            backoff_base,
            backoff_max,
            ..
        } = &self.agent.retry
        {
            if backoff_base.get().is_zero() {
                return Err(at_path(
                    &[BASE],
                    "agent.retry.backoff_base must be greater than 0ms (a dead collector must not be retried in a tight loop)".into(),
                ));
            }
            if backoff_base > backoff_max {
                return Err(at_path(
                    &[BASE, MAX],
                    format!(
                        "agent.retry.backoff_base is {backoff_base}, above backoff_max {backoff_max}; expected backoff_base <= backoff_max"
                    ),
                ));
            }
        }
        // Anything else the agent would refuse at start-up.
        self.agent.retry.validate().map_err(|e| {
            at_path(
                &[&["agent", "retry"]],
                format!("agent.retry is not valid: {e}"),
            )
        })
    }

    /// The volume and load settings: what control and the load would refuse at start.
    fn validate_volumes(
        &self,
        at_path: &dyn Fn(&[&[&str]], String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let placeholder = |i: u16| outage_lab_control::ServerEntry {
            id: format!("s{i:03}"),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], i + 1)),
        };
        let probe = &self.volumes.probe;
        if probe.window == 0 || probe.fail_after == 0 || probe.fail_after > probe.window {
            return Err(at_path(
                &[
                    &["volumes", "probe", "fail_after"],
                    &["volumes", "probe", "window"],
                ],
                format!(
                    "volumes.probe.fail_after is {} with a window of {}; expected 1 to window failed probes",
                    probe.fail_after, probe.window
                ),
            ));
        }
        if probe.recover_after == 0 {
            return Err(at_path(
                &[&["volumes", "probe", "recover_after"]],
                "volumes.probe.recover_after is 0; expected at least 1 probe".into(),
            ));
        }
        // The fleet's own size is checked elsewhere; here only the volume settings matter.
        let control =
            crate::harness::control_config(self, (0..2).map(placeholder).collect(), self.seed);
        control.validate().map_err(|e| {
            let detail = e.to_string();
            let field = [
                "slots_per_server",
                "placement_fill",
                "blocks_per_volume",
                "failovers_per_second",
            ]
            .into_iter()
            .find(|f| detail.contains(f));
            match field {
                Some(f) => at_path(
                    &[&["volumes", f]],
                    format!("volumes.{f} is not valid: {detail}"),
                ),
                None => at_path(
                    &[&["volumes", "probe"]],
                    format!("volumes.probe is not valid: {detail}"),
                ),
            }
        })?;
        if self.volumes.probe.blocks == 0 || self.volumes.probe.blocks > 1024 {
            return Err(at_path(
                &[&["volumes", "probe", "blocks"]],
                format!(
                    "volumes.probe.blocks is {}; expected 1 to 1024",
                    self.volumes.probe.blocks
                ),
            ));
        }
        if self.volumes.replica_size > ByteSize::mib(64) {
            return Err(at_path(
                &[&["volumes", "replica_size"]],
                format!(
                    "volumes.replica_size is {}; expected at most 64MiB",
                    self.volumes.replica_size
                ),
            ));
        }
        let l = &self.load;
        if !(l.requests_per_second.is_finite() && (0.0..=10_000.0).contains(&l.requests_per_second))
        {
            return Err(at_path(
                &[&["load", "requests_per_second"]],
                format!(
                    "load.requests_per_second is {}; expected 0 to 10000",
                    l.requests_per_second
                ),
            ));
        }
        if !(0.0..=1.0).contains(&l.read_fraction) {
            return Err(at_path(
                &[&["load", "read_fraction"]],
                format!(
                    "load.read_fraction is {}; expected a share in [0, 1]",
                    l.read_fraction
                ),
            ));
        }
        if l.deadline.get().is_zero() {
            return Err(at_path(
                &[&["load", "deadline"]],
                "load.deadline must be longer than 0ms".into(),
            ));
        }
        for (name, d) in [
            ("miss_penalty", self.storage.miss_penalty),
            ("request_deadline", self.storage.request_deadline),
        ] {
            if d.get().is_zero() {
                return Err(at_path(
                    &[&["storage", name]],
                    format!("storage.{name} must be longer than 0ms"),
                ));
            }
        }
        Ok(())
    }

    /// The watchdog's settings: what its `validate` checks, where each value was written.
    fn validate_watchdog(
        &self,
        at_path: &dyn Fn(&[&[&str]], String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        const WINDOW: &[&str] = &["watchdog", "leak", "window"];
        const SEGMENTS: &[&str] = &["watchdog", "leak", "segments"];
        let w = &self.watchdog;
        if w.sample_interval.get().is_zero() {
            return Err(at_path(
                &[&["watchdog", "sample_interval"]],
                "watchdog.sample_interval must be greater than 0ms".into(),
            ));
        }
        if w.leak.segments < 2 {
            return Err(at_path(
                &[SEGMENTS],
                format!(
                    "watchdog.leak.segments is {}; expected at least 2 (growth is measured from one segment to the next)",
                    w.leak.segments
                ),
            ));
        }
        let shortest = std::time::Duration::from_millis(u64::from(w.leak.segments));
        if w.leak.window.get() < shortest {
            return Err(at_path(
                &[WINDOW, SEGMENTS],
                format!(
                    "watchdog.leak.window is {} for {} segments; expected at least {} (1ms per segment)",
                    w.leak.window,
                    w.leak.segments,
                    HumanDuration(shortest)
                ),
            ));
        }
        w.leak.validate().map_err(|e| {
            at_path(
                &[&["watchdog", "leak"]],
                format!("watchdog.leak is not valid: {e}"),
            )
        })?;
        let threshold = w.aggregate.threshold;
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(at_path(
                &[&["watchdog", "aggregate", "threshold"]],
                format!(
                    "watchdog.aggregate.threshold is {threshold}; expected a positive share of the memory budget (e.g. 0.95)"
                ),
            ));
        }
        if w.aggregate.for_samples == 0 {
            return Err(at_path(
                &[&["watchdog", "aggregate", "for_samples"]],
                "watchdog.aggregate.for_samples is 0; expected at least 1 sweep".into(),
            ));
        }
        w.aggregate.validate().map_err(|e| {
            at_path(
                &[&["watchdog", "aggregate"]],
                format!("watchdog.aggregate is not valid: {e}"),
            )
        })
    }

    /// Number of storage servers.
    pub fn servers(&self) -> usize {
        self.fleet.servers.value as usize
    }

    /// DNS server names in order.
    pub fn dns_names(&self) -> Vec<String> {
        self.dns.servers.iter().map(|s| s.value.clone()).collect()
    }

    /// The DNS servers the `dns_update` step does not reach (empty when there is none).
    pub fn stale_dns_names(&self) -> BTreeSet<String> {
        let reached: Option<BTreeSet<&str>> = self.timeline.iter().find_map(|s| match s {
            Step::DnsUpdate(u) => Some(u.propagate_to.iter().map(|n| n.value.as_str()).collect()),
            _ => None,
        });
        match reached {
            None => BTreeSet::new(),
            Some(reached) => self
                .dns
                .servers
                .iter()
                .filter(|n| !reached.contains(n.value.as_str()))
                .map(|n| n.value.clone())
                .collect(),
        }
    }
}

/// A default value, which has no place in the file.
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn is_process_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A value that knows where it was written.
trait LocatedValue {
    fn line(&self) -> u64;
    fn column(&self) -> u64;
}

impl<T> LocatedValue for Spanned<T> {
    fn line(&self) -> u64 {
        self.referenced.line()
    }
    fn column(&self) -> u64 {
        self.referenced.column()
    }
}

/// Turns a YAML/serde error into `file:line:column: message`, followed by the snippet the parser
/// renders (the offending line with a caret). The message is [`ScenarioMessages`]'s: for people
/// who write scenarios, saying what was expected, with no advice about parser options.
fn yaml_error(err: &serde_saphyr::Error, source: &str) -> ScenarioError {
    use serde_saphyr::MessageFormatter;

    let mut original = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = original
    {
        original = error;
    }
    // Called directly, a formatter does not neutralise control characters (a key may hold any).
    let what: String = ScenarioMessages
        .format_message(original)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    let snippet = err.render_with_options(serde_saphyr::render_options! {
        formatter: &ScenarioMessages,
        source_name: Some(source),
    });
    let snippet: Vec<&str> = snippet.lines().skip(1).collect();
    let head = match err.location() {
        Some(loc) => format!("{source}:{}:{}: {what}", loc.line(), loc.column()),
        None => format!("{source}: {what}"),
    };
    let message = if snippet.is_empty() {
        head
    } else {
        format!("{head}\n{}", snippet.join("\n"))
    };
    ScenarioError { message }
}

/// The parser's user-facing messages, with the few that do not say what was expected (or that
/// give advice meant for programmers) rewritten.
struct ScenarioMessages;

impl serde_saphyr::MessageFormatter for ScenarioMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        use serde_saphyr::Error;
        use serde_saphyr::localizer::ExternalMessageSource;
        let expected = match err {
            Error::InvalidScalar { ty, .. } => match *ty {
                "u8" | "u16" | "u32" | "u64" | "usize" => {
                    let max = match *ty {
                        "u8" => u64::from(u8::MAX),
                        "u16" => u64::from(u16::MAX),
                        "u32" => u64::from(u32::MAX),
                        _ => u64::MAX,
                    };
                    Some(format!(
                        "invalid {ty}: expected a whole number from 0 to {max}"
                    ))
                }
                "i8" | "i16" | "i32" | "i64" | "isize" => {
                    Some(format!("invalid {ty}: expected a whole number"))
                }
                "f32" | "f64" => Some(format!("invalid {ty}: expected a number, e.g. 0.5")),
                "bool" => Some(format!("invalid {ty}: expected true or false")),
                _ => None,
            },
            Error::DuplicateMappingKey { key: Some(key), .. } => Some(format!(
                "duplicate key `{key}`; expected each field at most once"
            )),
            Error::DuplicateMappingKey { key: None, .. } => {
                Some("duplicate key; expected each field at most once".into())
            }
            Error::MultipleDocuments { .. } => Some(
                "a second YAML document starts here; expected exactly one scenario per file".into(),
            ),
            Error::Eof { .. } => {
                Some("unexpected end of file; expected the rest of the scenario".into())
            }
            Error::SerdeMissingField { field, .. } => Some(format!(
                "missing field `{field}`; expected it in this mapping (it has no default)"
            )),
            Error::Unexpected {
                expected: "mapping start",
                ..
            } => Some("expected a mapping of `field: value` lines here".into()),
            // `outage_lab_proto::UnitError::Overflow` says what, not what would fit.
            Error::Message { msg, .. } if msg.ends_with(" is too large") => {
                if msg.starts_with("size ") {
                    Some(format!("{msg}; expected at most {}GiB", u64::MAX >> 30))
                } else if msg.starts_with("duration ") {
                    Some(format!(
                        "{msg}; expected at most {}h",
                        u64::MAX / 2 / 3_600_000
                    ))
                } else {
                    None
                }
            }
            Error::ExternalMessage { source, msg, .. }
                if matches!(**source, ExternalMessageSource::Parser(_)) =>
            {
                let hint = if msg.contains("tab") {
                    "; indent with spaces"
                } else {
                    ""
                };
                Some(format!("YAML syntax error: {msg}{hint}"))
            }
            _ => None,
        };
        match expected {
            Some(text) => std::borrow::Cow::Owned(text),
            None => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

/// Where each value of a scenario was written, for the values whose types come from the role
/// crates and so carry no position of their own (the agent's retry policy, the watchdog's
/// alarms, the name). Read from the text a second time, only when a check on one of them fails.
/// Keys are field names (sequence items are keyed by their index).
#[derive(Debug, Default)]
struct Places(BTreeMap<String, Spanned<Places>>);

impl Places {
    /// The places of `text`, which has already parsed as a scenario; `None` if they cannot be
    /// read (the message then goes without a position).
    fn read(text: &str) -> Option<Self> {
        let options = serde_saphyr::options! {
            // `.nan` is a valid f64 to the scenario (and refused by its checks); here it is
            // only a value whose place is wanted.
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        serde_saphyr::from_str_with_options(text, options).ok()
    }

    /// Where `path` itself was written.
    fn exact(&self, path: &[&str]) -> Option<serde_saphyr::Location> {
        let (first, rest) = path.split_first()?;
        let here = self.0.get(*first)?;
        if rest.is_empty() {
            Some(here.referenced)
        } else {
            here.value.exact(rest)
        }
    }

    /// Where `path` was written, or else the deepest part of it that was: a value left to its
    /// default has no place, the mapping it belongs in may.
    fn nearest(&self, path: &[&str]) -> Option<serde_saphyr::Location> {
        let (first, rest) = path.split_first()?;
        let here = self.0.get(*first)?;
        here.value.nearest(rest).or(Some(here.referenced))
    }
}

impl<'de> Deserialize<'de> for Places {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlacesVisitor)
    }
}

struct PlacesVisitor;

impl<'de> serde::de::Visitor<'de> for PlacesVisitor {
    type Value = Places;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_i128<E>(self, _: i128) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_u128<E>(self, _: u128) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_unit<E>(self) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_none<E>(self) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Places, D::Error> {
        Places::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Places, A::Error> {
        let mut places = BTreeMap::new();
        let mut index = 0usize;
        while let Some(item) = seq.next_element::<Spanned<Places>>()? {
            places.insert(index.to_string(), item);
            index += 1;
        }
        Ok(Places(places))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Places, A::Error> {
        let mut places = BTreeMap::new();
        // The text parsed as a scenario, so every key is a field name.
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Spanned<Places>>()?;
            places.insert(key, value);
        }
        Ok(Places(places))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
name: t
duration: 10s
fleet:
  servers: 3
dns:
  servers: [dns-a, dns-b]
timeline:
  - replace_collector: { at: 1s }
  - dns_update: { at: 1s, propagate_to: [dns-a] }
";

    fn err(text: &str) -> String {
        Scenario::parse(text, "s.yaml")
            .expect_err("should be rejected")
            .message
    }

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse(MINIMAL, "s.yaml").expect("valid");
        assert_eq!(s.watchdog.sample_interval, HumanDuration::millis(250));
        assert_eq!(s.servers(), 3);
        assert_eq!(s.fleet.memory_budget.value, ByteSize::mib(48));
        assert_eq!(s.stale_dns_names(), BTreeSet::from(["dns-b".to_owned()]));
        assert_eq!(s.timeline.len(), 2);
    }

    #[test]
    fn unknown_fields_are_errors_with_line_and_column() {
        let e = err(&MINIMAL.replace("  servers: 3\n", "  servers: 3\n  colour: blue\n"));
        assert!(e.starts_with("s.yaml:5:3: unknown field `colour`"), "{e}");
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let e = err(&MINIMAL.replace("servers: 3", "servers: three"));
        assert!(e.starts_with("s.yaml:4:12:"), "{e}");
        assert!(e.contains("u32"), "{e}");
    }

    #[test]
    fn sizes_without_units_are_rejected_where_they_are_written() {
        let e = err(&MINIMAL.replace("  servers: 3\n", "  servers: 3\n  memory_budget: 48\n"));
        assert!(e.starts_with("s.yaml:5:"), "{e}");
        assert!(
            e.contains("expected a whole number followed by a unit"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_dns_server_in_the_timeline_is_located() {
        let e = err(&MINIMAL.replace("propagate_to: [dns-a]", "propagate_to: [dns-z]"));
        assert!(e.starts_with("s.yaml:9:"), "{e}");
        assert!(e.contains("unknown DNS server \"dns-z\""), "{e}");
        assert!(e.contains("dns-a, dns-b"), "{e}");
    }

    #[test]
    fn a_timeline_out_of_order_is_rejected() {
        let e = err(&MINIMAL.replace("dns_update: { at: 1s", "dns_update: { at: 500ms"));
        assert!(e.starts_with("s.yaml:9:"), "{e}");
        assert!(e.contains("time order"), "{e}");
    }

    #[test]
    fn a_step_after_the_end_is_rejected() {
        let e = err(&MINIMAL.replace("dns_update: { at: 1s", "dns_update: { at: 11s"));
        assert!(e.contains("after the end of the run"), "{e}");
    }

    #[test]
    fn zero_servers_and_duplicate_dns_names_are_rejected() {
        assert!(err(&MINIMAL.replace("servers: 3", "servers: 0")).contains("expected 1 to"));
        let e = err(&MINIMAL.replace("[dns-a, dns-b]\n", "[dns-a, dns-a]\n"));
        assert!(e.contains("duplicate DNS server name"), "{e}");
    }

    #[test]
    fn an_empty_file_is_rejected_with_a_hint() {
        assert!(err("").contains("the file is empty"));
        assert!(err("  \n\n").starts_with("s.yaml:1:1:"));
    }

    #[test]
    fn yaml_syntax_errors_are_located() {
        let e = err("name: [\n");
        assert!(e.starts_with("s.yaml:"), "{e}");
    }

    #[test]
    fn fractions_outside_zero_to_one_are_rejected() {
        let e = err(&format!("{MINIMAL}expect:\n  stale_share: 1.5\n"));
        assert!(e.starts_with("s.yaml:11:"), "{e}");
        assert!(e.contains("expected a fraction"), "{e}");
    }

    #[test]
    fn values_of_the_role_crates_are_checked_where_they_are_written() {
        let e = err(&format!(
            "{MINIMAL}agent:\n  retry:\n    mode: fixed\n    backoff_base: 5s\n    backoff_max: 1s\n"
        ));
        assert!(
            e.starts_with("s.yaml:13:19: agent.retry.backoff_base is 5s"),
            "{e}"
        );
        let e = err(&format!("{MINIMAL}watchdog:\n  leak: {{ segments: 1 }}\n"));
        assert!(
            e.starts_with("s.yaml:11:21: watchdog.leak.segments is 1"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}watchdog:\n  aggregate: {{ threshold: .nan }}\n"
        ));
        assert!(
            e.starts_with("s.yaml:11:27: watchdog.aggregate.threshold is NaN"),
            "{e}"
        );
        let e = err(&MINIMAL.replace(
            "  servers: 3\n",
            "  servers: 3\nagent:\n  request_timeout: 0s\n",
        ));
        assert!(e.starts_with("s.yaml:6:20: agent.request_timeout"), "{e}");
        let e = err(&MINIMAL.replace("name: t", "name: a/b"));
        assert!(e.starts_with("s.yaml:1:7: name \"a/b\""), "{e}");
        let e = err(&MINIMAL.replace("[dns-a, dns-b]", "[]"));
        assert!(e.starts_with("s.yaml:6:12: dns.servers is empty"), "{e}");
    }

    #[test]
    fn a_default_that_conflicts_points_at_the_value_that_is_written() {
        // backoff_base defaults to 100ms: the mistake is the backoff_max written here.
        let e = err(&format!(
            "{MINIMAL}agent:\n  retry: {{ mode: fixed, backoff_max: 50ms }}\n"
        ));
        assert!(
            e.starts_with("s.yaml:11:38: agent.retry.backoff_base is 100ms"),
            "{e}"
        );
        // segments defaults to 4: the window written is too short for it.
        let e = err(&format!("{MINIMAL}watchdog:\n  leak: {{ window: 2ms }}\n"));
        assert!(
            e.starts_with("s.yaml:11:19: watchdog.leak.window is 2ms"),
            "{e}"
        );
    }

    #[test]
    fn a_working_set_smaller_than_a_block_is_rejected() {
        let e = err(&format!("{MINIMAL}storage:\n  working_set: 1KiB\n"));
        assert!(e.starts_with("s.yaml:11:16:"), "{e}");
        assert!(
            e.contains("expected at least one storage block (64KiB)"),
            "{e}"
        );
    }

    #[test]
    fn parser_messages_say_what_was_expected_without_programmer_advice() {
        let e = err(&MINIMAL.replace("  servers: 3\n", "  servers: 3\n  servers: 4\n"));
        assert!(
            e.starts_with("s.yaml:5:3: duplicate key `servers`; expected each field at most once"),
            "{e}"
        );
        assert!(!e.contains("DuplicateKeyPolicy"), "{e}");
        let e = err(&format!("{MINIMAL}---\n{MINIMAL}"));
        assert!(e.contains("expected exactly one scenario per file"), "{e}");
        assert!(!e.contains("from_str_multiple"), "{e}");
        let e = err(&MINIMAL.replace("servers: 3", "servers: 99999999999"));
        assert!(
            e.starts_with("s.yaml:4:12: invalid u32: expected a whole number from 0 to 4294967295"),
            "{e}"
        );
        let e = err("name: \"t\nduration: 1s\n");
        assert!(
            e.starts_with("s.yaml:1:7: YAML syntax error: unclosed quote"),
            "{e}"
        );
        let e = err("- name: t\n");
        assert!(e.starts_with("s.yaml:1:1: expected a mapping"), "{e}");
        let e = err(&MINIMAL.replace("duration: 10s", "duration: 99999999999999999h"));
        assert!(e.contains("is too large; expected at most"), "{e}");
    }

    #[test]
    fn a_file_of_only_comments_is_empty() {
        let e = err("# expect: nothing\n\n  # indented\n");
        assert!(
            e.starts_with("s.yaml:1:1: the file has only comments"),
            "{e}"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bin.yaml");
        std::fs::write(&path, b"name: t\n  \xc3x\xff").expect("write");
        let e = Scenario::load(&path).expect_err("refused").message;
        let shown = path.display().to_string();
        assert!(
            e.starts_with(&format!("{shown}:2:3: byte 0xc3 (offset 10) is not UTF-8")),
            "{e}"
        );
    }

    #[test]
    fn every_fixture_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures/scenarios exists") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(
            n >= 2,
            "expected the 2012 scenario and its fixed variant, found {n} files"
        );
    }
}

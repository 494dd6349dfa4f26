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

use std::collections::BTreeSet;
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
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            fill_fraction: default_fill_fraction(),
            working_set: default_working_set(),
        }
    }
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
    /// [`MAX_SCENARIO_BYTES`] and text that is not UTF-8, before parsing.
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
        if meta.len() > MAX_SCENARIO_BYTES {
            return Err(fail(format!(
                "is {} bytes; a scenario may be at most {MAX_SCENARIO_BYTES} bytes",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "is not UTF-8 text (invalid byte at offset {}); expected a YAML scenario",
                e.utf8_error().valid_up_to()
            ))
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
        let scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, source))?;
        scenario.validate(source)?;
        Ok(scenario)
    }

    fn validate(&self, source: &str) -> Result<(), ScenarioError> {
        let at = |s: &dyn LocatedValue, what: String| ScenarioError {
            message: format!("{source}:{}:{}: {what}", s.line(), s.column()),
        };
        let plain = |what: String| ScenarioError {
            message: format!("{source}: {what}"),
        };

        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(plain(format!(
                "name {:?} must be non-empty and use only letters, digits, '-', '_' and '.' (it names the run directory)",
                self.name
            )));
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
        if self.agent.report_interval.value.get().is_zero() {
            return Err(at(
                &self.agent.report_interval,
                "agent.report_interval must be greater than 0ms".into(),
            ));
        }

        // DNS server names: at least one, unique.
        if self.dns.servers.is_empty() {
            return Err(plain(
                "dns.servers is empty; expected at least one DNS server name".into(),
            ));
        }
        if self.dns.servers.len() > crate::plan::MAX_DNS_SERVERS {
            return Err(plain(format!(
                "dns.servers names {} servers; at most {} are supported",
                self.dns.servers.len(),
                crate::plan::MAX_DNS_SERVERS
            )));
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
/// renders (the offending line with a caret).
fn yaml_error(err: &serde_saphyr::Error, source: &str) -> ScenarioError {
    let bare = err.without_snippet().to_string();
    // The bare message reads "error: line L column C: what"; keep only "what".
    let what = bare
        .split_once(": ")
        .and_then(|(_, rest)| {
            rest.strip_prefix("line ")
                .and_then(|r| r.split_once(": ").map(|(_, w)| w.to_owned()))
        })
        .unwrap_or(bare.clone());
    let snippet =
        err.render_with_options(serde_saphyr::render_options! { source_name: Some(source) });
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

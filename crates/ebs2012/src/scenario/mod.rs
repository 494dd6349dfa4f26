//! Scenario files: what a run does, in YAML.
//!
//! Parsing is strict and split from reading so it can be tested on strings: unknown fields,
//! wrong types and values out of range are errors that name `file:line:column` and say what was
//! expected. [`Scenario::parse`] turns text into a validated scenario; nothing is started until a
//! scenario has passed it, and nothing checks it again afterwards.
//!
//! The file's sections are [`sections`] (settings), the timeline (`crate::steps`, one module per
//! step) and [`expect`]. The shape, with every field documented on the structs:
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

pub mod customers;
pub mod expect;
pub mod overrides;
pub mod sections;

use std::path::{Path, PathBuf};

use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use self::customers::{ApiSettings, CustomerSettings, RecoveryRetry};
use self::expect::Expectations;
use self::overrides::Setting;
use self::sections::{
    AgentSettings, Dns, Fleet, LoadSettings, StorageSettings, VolumeSettings, WatchdogSettings,
};
use crate::fixes::Fixes;
use crate::plan::MAX_DNS_SERVERS;
use crate::steps::{Step, TimelineContext, validate_timeline};
use outage_lab_engine::located::{Locator, ScenarioError, yaml_error};

/// Scenario files larger than this are refused before parsing (the engine's limit, which the
/// program also reads no further than).
pub use outage_lab_engine::incident::MAX_SCENARIO_BYTES;

/// Longest scenario name: it is part of the run directory's name, which must stay well under the
/// 255 bytes a file name may have.
pub const MAX_NAME_CHARS: usize = 128;

/// The incident a scenario is for, when it says: the program sends a scenario to the incident
/// its `incident:` names, so here it can only name this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IncidentName {
    /// The AWS EBS outage of 22 October 2012.
    #[serde(rename = "ebs-2012-10-22")]
    Ebs2012,
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The incident it is for: `ebs-2012-10-22`, the default when absent. Checked by its type
    /// (no other name parses); nothing else reads it.
    #[serde(default)]
    #[allow(dead_code)]
    pub incident: Option<IncidentName>,
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
    /// The most the run's scheduled work may fire late (the 99th percentile of each source):
    /// over it, the run is disturbed and its `kept_pace` row fails.
    #[serde(default = "outage_lab_engine::lag::default_tolerance")]
    pub lag_tolerance: HumanDuration,
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
    /// The customer accounts that own the volumes and their recovery automation.
    #[serde(default)]
    pub customers: CustomerSettings,
    /// The control plane's API the customers call: capacity and throttling.
    #[serde(default)]
    pub api: ApiSettings,
    /// Faults and repairs, in time order.
    #[serde(default)]
    pub timeline: Vec<Step>,
    /// What must be true at the end; each present field is one checked expectation.
    #[serde(default)]
    pub expect: Expectations,
    /// The fixes AWS announced, each off unless named here.
    #[serde(default)]
    pub fixes: Fixes,
    /// The document as run: the file's text, or with `--set` the effective document.
    #[serde(skip)]
    pub text: String,
    /// The directory the file was read from (absolute when it could be made so), for the
    /// external agent's `{{scenario_dir}}`.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_seed() -> u64 {
    1
}

/// The refusal of a scenario file of `size` bytes, over [`MAX_SCENARIO_BYTES`].
fn too_big(shown: &str, size: &str) -> ScenarioError {
    ScenarioError {
        message: format!(
            "{shown}: is {size} bytes; a scenario may be at most {MAX_SCENARIO_BYTES} bytes"
        ),
    }
}

impl Scenario {
    /// Reads and validates a scenario file. Refuses directories, files over
    /// [`MAX_SCENARIO_BYTES`] and text that is not UTF-8, before parsing. The read itself is
    /// bounded too, so a device or a pipe that never ends (`/dev/zero`) is refused, not slurped.
    pub fn load(path: &Path, settings: &[Setting]) -> Result<Self, ScenarioError> {
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
            return Err(too_big(&shown, &meta.len().to_string()));
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
        let mut scenario = Self::from_bytes(&bytes, &shown, settings)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        scenario.dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        Ok(scenario)
    }

    /// Validates a scenario file's bytes, as [`Scenario::load`] read them, with the command
    /// line's `settings` applied; `shown` names the file in error messages. Refuses more than
    /// [`MAX_SCENARIO_BYTES`] and text that is not UTF-8, naming the first bad byte's line and
    /// column. The scenario's `dir` is left empty: `load` sets it.
    pub fn from_bytes(
        bytes: &[u8],
        shown: &str,
        settings: &[Setting],
    ) -> Result<Self, ScenarioError> {
        if bytes.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(too_big(shown, &format!("more than {MAX_SCENARIO_BYTES}")));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            let bad = bytes[valid.len()];
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
        Self::parse_with(text, shown, settings)
    }

    /// Parses and validates scenario text; `source` names it in error messages.
    #[cfg(test)]
    pub fn parse(text: &str, source: &str) -> Result<Self, ScenarioError> {
        Self::parse_with(text, source, &[])
    }

    /// Parses scenario text with the command line's `settings` applied, and validates the
    /// result. A setting that makes a valid file invalid is named in the error.
    pub fn parse_with(
        text: &str,
        source: &str,
        settings: &[Setting],
    ) -> Result<Self, ScenarioError> {
        outage_lab_engine::overrides::parse_with(text, source, settings, Self::parse_text)
    }

    /// Parses and validates one document.
    fn parse_text(text: &str, source: &str) -> Result<Self, ScenarioError> {
        let empty = |what: &str| ScenarioError {
            message: format!(
                "{source}:1:1: the file {what}; expected a scenario (see fixtures/scenarios/ebs-2012-10-22.yaml)"
            ),
        };
        if text.trim().is_empty() {
            return Err(empty("is empty"));
        }
        if (text.lines()).all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Err(empty("has only comments and blank lines"));
        }
        let mut scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, source))?;
        scenario.validate(&Locator::new(source, text))?;
        scenario.text = text.to_owned();
        Ok(scenario)
    }

    /// Checks what serde cannot: ranges, names, the timeline's order and references. Each
    /// section checks its own values, each step its own references.
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let name = &self.name;
        let usable = (1..=MAX_NAME_CHARS).contains(&name.chars().count())
            && !name.trim().is_empty()
            && (name.chars())
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !usable {
            return Err(loc.at_path(
                &[&["name"]],
                format!(
                    "name {name:?} is not a usable name; expected 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.' (it names the run directory)"
                ),
            ));
        }
        if self.duration.value.get().is_zero() {
            return Err(loc.at(&self.duration, "duration must be greater than 0s".into()));
        }
        self.fleet.validate(loc)?;
        self.storage.validate(loc)?;
        self.agent.validate(loc)?;
        self.watchdog.validate(loc)?;
        self.volumes.validate(loc)?;
        self.load.validate(loc)?;
        self.customers.validate(loc)?;
        if let Some(name) = self
            .expect
            .about_customers()
            .first()
            .filter(|_| !self.customers.active())
        {
            return Err(loc.at_path(
                &[&["expect", name]],
                format!("expect.{name} judges customer accounts, and this scenario has none; set customers.accounts"),
            ));
        }
        self.api.validate(&self.customers, loc)?;
        self.dns.validate(MAX_DNS_SERVERS, loc)?;
        let mut timeline = TimelineContext {
            loc,
            dns_names: self.dns.servers.iter().map(|s| s.value.as_str()).collect(),
            servers: self.servers(),
            collector_replaced: false,
            dns_updated: false,
        };
        validate_timeline(&self.timeline, &self.duration, &mut timeline)?;
        self.expect.validate(loc)?;
        let applies = crate::fixes::Applicability {
            has_customers: self.customers.active(),
            built_in_agent: self.agent.command.is_none(),
        };
        self.fixes.validate(applies, loc)
    }

    /// Number of storage servers.
    pub fn servers(&self) -> usize {
        self.fleet.servers.value as usize
    }

    /// DNS server names in order.
    pub fn dns_names(&self) -> Vec<String> {
        self.dns.servers.iter().map(|s| s.value.clone()).collect()
    }
}

/// Whether the scenario at `path` is the 2012 incident's: it names it, or names none (the
/// default incident). Another incident's shipped scenarios are its package's to check.
#[cfg(test)]
pub(crate) fn is_ours(path: &Path) -> bool {
    outage_lab_engine::incident::named_by(path).is_none_or(|name| name == "ebs-2012-10-22")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use outage_lab_proto::ByteSize;

    use super::*;
    use crate::plan::server_id;

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
    fn more_settings_than_a_command_line_needs_are_refused_before_any_is_tried() {
        let many = vec![overrides::servers(3); outage_lab_engine::overrides::MAX_SETTINGS + 1];
        let e = Scenario::parse_with(MINIMAL, "s.yaml", &many).expect_err("too many");
        assert_eq!(
            e.message,
            "s.yaml: 65 command-line settings (--set, --fix, ...); at most 64 may be given"
        );
        let enough = vec![overrides::servers(3); outage_lab_engine::overrides::MAX_SETTINGS];
        assert!(Scenario::parse_with(MINIMAL, "s.yaml", &enough).is_ok());
    }

    #[test]
    fn a_minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse(MINIMAL, "s.yaml").expect("valid");
        assert_eq!(s.watchdog.sample_interval, HumanDuration::millis(250));
        assert_eq!(s.servers(), 3);
        assert_eq!(s.fleet.memory_budget.value, ByteSize::mib(48));
        assert_eq!(
            crate::steps::dns_update::missed(&s.timeline, &s.dns_names()),
            BTreeSet::from(["dns-b".to_owned()])
        );
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
        let e = Scenario::load(&path, &[]).expect_err("refused").message;
        let shown = path.display().to_string();
        assert!(
            e.starts_with(&format!("{shown}:2:3: byte 0xc3 (offset 10) is not UTF-8")),
            "{e}"
        );
    }

    #[test]
    fn a_kill_step_names_a_role_and_servers_of_this_fleet() {
        let kill = |servers: &str| {
            format!("{MINIMAL}  - kill: {{ at: 2s, role: storage, servers: {servers} }}\n")
        };
        let s = Scenario::parse(&kill("fresh"), "s.yaml").expect("a group is valid");
        assert_eq!(s.timeline.len(), 3);
        Scenario::parse(&kill(&format!("[{}]", server_id(2))), "s.yaml").expect("an id is valid");
        let e = err(&kill("[s003]"));
        assert!(e.starts_with("s.yaml:10:"), "{e}");
        assert!(e.contains("unknown storage server \"s003\""), "{e}");
        assert!(e.contains("the fleet has 3"), "{e}");
        let e = err(&kill("some"));
        assert!(e.contains("unknown group `some`"), "{e}");
        let e = err(&format!(
            "{MINIMAL}  - kill: {{ at: 2s, role: dns, servers: all }}\n"
        ));
        assert!(e.contains("unknown variant `dns`"), "{e}");
    }

    #[test]
    fn a_fleet_override_is_applied_before_the_steps_are_checked() {
        let text = format!("{MINIMAL}  - kill: {{ at: 2s, role: agent, servers: [s005] }}\n");
        let six = [overrides::servers(6)];
        Scenario::parse_with(&text, "s.yaml", &six).expect("s005 exists in a fleet of 6");
        assert!(err(&text).contains("unknown storage server"));
        // A file valid on its own, made invalid by a setting: the setting is named.
        let text = format!("{MINIMAL}  - kill: {{ at: 2s, role: agent, servers: [s002] }}\n");
        let two = [
            Setting::parse("volumes.slots_per_server=4").expect("valid"),
            overrides::servers(2),
        ];
        let e = Scenario::parse_with(&text, "s.yaml", &two).expect_err("s002 is gone");
        assert!(
            e.message
                .starts_with("s.yaml: --servers 2: unknown storage server \"s002\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_fixture_scenario_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
        let mut n = 0;
        // The shipped scenarios and the external-agent ones (`bad/` is the refusal corpus).
        for dir in [root.clone(), root.join("agents")] {
            for entry in std::fs::read_dir(&dir).expect("fixture directory exists") {
                let path = entry.expect("dir entry").path();
                if path.extension().is_some_and(|e| e == "yaml") && is_ours(&path) {
                    Scenario::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
                    n += 1;
                }
            }
        }
        assert!(
            n >= 4,
            "expected the 2012 scenario, its fixed variant and the two agent scenarios, found {n} files"
        );
    }
}

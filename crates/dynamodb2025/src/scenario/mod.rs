//! A 2025 scenario: the lab's DNS, the automation, the service and its clients, the timeline
//! of steps, how long the run lasts, what is expected and which fixes are on. Read from YAML;
//! every refusal says where (`file:line:column`) and what was expected.

use std::path::Path;

use outage_lab_engine::incident::MAX_SCENARIO_BYTES;
use outage_lab_engine::located::{Locator, ScenarioError, yaml_error};
use outage_lab_engine::overrides::Setting;
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};

use crate::names::enactor_name;

mod leases;

pub use leases::{
    AdmissionControl, Launches, LeaseManager, LeaseServers, Leases, RecoveryRunbook,
    ThrottleRenewals,
};

/// The incident's name, as a scenario's `incident:` names it.
pub const NAME: &str = "dynamodb-2025-10-20";

/// One scenario of the 2025 incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, in the run directory's name and the report.
    pub name: String,
    /// The incident it is for: this one's name.
    pub incident: String,
    /// What it shows, in one line.
    #[serde(default)]
    pub description: String,
    /// The seed every random choice flows from (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The lab's DNS servers.
    pub dns: Dns,
    /// The DNS automation: a planner, enactors, the endpoints they manage.
    pub automation: Automation,
    /// The service behind the endpoint.
    pub service: Service,
    /// The service's clients.
    pub clients: Clients,
    /// EC2's lease manager and its servers, the outage's second half; none: the first alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<Leases>,
    /// The steps, in the order they happen.
    #[serde(default)]
    pub timeline: Vec<StepEntry>,
    /// How long the timeline runs.
    pub duration: HumanDuration,
    /// The most the run's scheduled work may fire late (the 99th percentile of each source):
    /// over it, the run is disturbed and its `kept_pace` row fails.
    #[serde(default = "outage_lab_engine::lag::default_tolerance")]
    pub lag_tolerance: HumanDuration,
    /// The bounds the checks judge with.
    pub expect: Expect,
    /// The fixes on.
    #[serde(default)]
    pub fixes: Fixes,
}

fn default_seed() -> u64 {
    20_251_020
}

/// The lab's DNS servers: every one answers the zone the enactors write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// How many (1 to 5).
    pub servers: usize,
    /// TTL of every answer and of a negative one (the zone's SOA minimum): how long a resolver
    /// keeps what it was told, an empty answer included.
    pub ttl: HumanDuration,
}

/// The DNS automation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Automation {
    /// Enactors, each working on its own (1 to 5; AWS had three, one per zone).
    pub enactors: usize,
    /// How often the planner makes a plan.
    pub planner_interval: HumanDuration,
    /// How often an idle enactor looks for a newer plan.
    pub poll: HumanDuration,
    /// How long an enactor waits after each endpoint it writes.
    pub settle: HumanDuration,
    /// Clean-up deletes plans more than this many generations older than the one applied.
    pub keep_generations: u64,
    /// Other services' endpoints in every plan, applied after the service's (0 to 50).
    pub other_endpoints: usize,
}

/// The service behind the endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The endpoint its clients resolve, fully qualified, in `lab.internal.`.
    pub endpoint: String,
    /// Instances, one per load-balancer address (1 to 8).
    pub instances: usize,
}

/// The service's clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clients {
    /// Customers' applications (0 to 32).
    pub customers: usize,
    /// Internal services that depend on it (0 to 32).
    pub dependents: usize,
    /// Requests per second, per client (1 to 1000).
    pub rate: u32,
    /// Bound on one request and on one lookup.
    pub timeout: HumanDuration,
    /// A client's pooled connections are dropped once this old; after that it needs a lookup.
    pub connection_max_age: HumanDuration,
}

/// One step of the timeline: when, and exactly one action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepEntry {
    /// When, from the start of the timeline.
    pub at: HumanDuration,
    /// One enactor's writes stall (`slow_enactor: { enactor: enactor-a, delay: 1300ms }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_enactor: Option<SlowEnactor>,
    /// Every enactor and the planner stop working, as AWS turned the automation off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_automation: Option<Empty>,
    /// An operator restores the endpoint from the newest plan on every DNS server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_repair: Option<Empty>,
    /// The operators throttle the renewals the lease manager takes in
    /// (`throttle_renewals: { per_second: 120 }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_renewals: Option<ThrottleRenewals>,
    /// The operators restart the lease manager: its queue is lost, its throttle kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_lease_manager: Option<Empty>,
}

/// `slow_enactor`'s fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowEnactor {
    /// Which enactor (`enactor-a`, ...).
    pub enactor: String,
    /// How long each of its writes stalls.
    pub delay: HumanDuration,
    /// Each stall is up to this much longer or shorter, drawn from the seed (default: none).
    #[serde(default)]
    pub jitter: HumanDuration,
}

/// A step or fix with no settings: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A step, once checked: exactly one action.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// One enactor's writes stall for `delay`.
    SlowEnactor {
        /// The enactor.
        enactor: String,
        /// The stall before each write.
        delay: HumanDuration,
        /// How much each stall varies, either way.
        jitter: HumanDuration,
    },
    /// The automation stops.
    DisableAutomation,
    /// The operators restore the endpoint.
    ManualRepair,
    /// The operators throttle the lease manager's incoming renewals.
    ThrottleRenewals {
        /// Renewals admitted per second.
        per_second: u32,
    },
    /// The operators restart the lease manager.
    RestartLeaseManager,
}

impl Step {
    /// Its name, as the timeline and the journal write it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::SlowEnactor { .. } => "slow_enactor",
            Step::DisableAutomation => "disable_automation",
            Step::ManualRepair => "manual_repair",
            Step::ThrottleRenewals { .. } => "throttle_renewals",
            Step::RestartLeaseManager => "restart_lease_manager",
        }
    }

    /// Whether it sheds the lease manager's load (the operators' way out of its collapse).
    pub fn sheds_load(&self) -> bool {
        matches!(
            self,
            Step::ThrottleRenewals { .. } | Step::RestartLeaseManager
        )
    }
}

impl StepEntry {
    /// Its one action; `None` if it names none or several.
    pub fn step(&self) -> Option<Step> {
        let mut steps = Vec::new();
        if let Some(slow) = &self.slow_enactor {
            steps.push(Step::SlowEnactor {
                enactor: slow.enactor.clone(),
                delay: slow.delay,
                jitter: slow.jitter,
            });
        }
        if self.disable_automation.is_some() {
            steps.push(Step::DisableAutomation);
        }
        if self.manual_repair.is_some() {
            steps.push(Step::ManualRepair);
        }
        if let Some(throttle) = self.throttle_renewals {
            steps.push(Step::ThrottleRenewals {
                per_second: throttle.per_second,
            });
        }
        if self.restart_lease_manager.is_some() {
            steps.push(Step::RestartLeaseManager);
        }
        (steps.len() == 1).then(|| steps.remove(0))
    }
}

/// The bounds the checks judge with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every client succeeds again within this long after the repair (the negative cache's TTL
    /// included).
    pub recovered_within: HumanDuration,
}

/// The fixes, each off unless named (`fixes: { serve_stale: {} }`, or `--fix serve_stale`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixes {
    /// Enactors check the endpoint's generation at write time (compare-and-set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enactor_checks_at_write: Option<Empty>,
    /// Clean-up never deletes a plan an endpoint still uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_keeps_active_plan: Option<Empty>,
    /// Clients' resolvers keep the last good answer when a new one is empty or fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_stale: Option<Empty>,
    /// The lease manager's queue is bounded, drops work whose requester gave up, and serves
    /// the newest first (needs `leases:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_control: Option<AdmissionControl>,
    /// When its checks come back, the lease manager drops its backlog and bounds the renewals
    /// it admits until the leases are back (needs `leases:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_runbook: Option<RecoveryRunbook>,
}

/// The fixes of the lease manager, which need a `leases:` section.
const LEASE_FIXES: &[&str] = &["admission_control", "recovery_runbook"];

/// Every fix's name, as `--fix` takes it.
pub const FIX_NAMES: &[&str] = &[
    "enactor_checks_at_write",
    "cleanup_keeps_active_plan",
    "serve_stale",
    "admission_control",
    "recovery_runbook",
];

impl Fixes {
    /// Turns the fix `name` on; false if there is none by that name.
    pub fn turn_on(&mut self, name: &str) -> bool {
        let slot = match name {
            "enactor_checks_at_write" => &mut self.enactor_checks_at_write,
            "cleanup_keeps_active_plan" => &mut self.cleanup_keeps_active_plan,
            "serve_stale" => &mut self.serve_stale,
            "admission_control" => {
                self.admission_control = Some(AdmissionControl::default());
                return true;
            }
            "recovery_runbook" => {
                self.recovery_runbook = Some(RecoveryRunbook::default());
                return true;
            }
            _ => return false,
        };
        *slot = Some(Empty {});
        true
    }

    /// The names of the fixes on.
    pub fn on(&self) -> Vec<&'static str> {
        let on = [
            self.enactor_checks_at_write.is_some(),
            self.cleanup_keeps_active_plan.is_some(),
            self.serve_stale.is_some(),
            self.admission_control.is_some(),
            self.recovery_runbook.is_some(),
        ];
        (FIX_NAMES.iter().zip(on))
            .filter_map(|(name, on)| on.then_some(*name))
            .collect()
    }

    /// Whether a fix on keeps the endpoint from ever being emptied (the automation's: the
    /// clients' `serve_stale` only hides an empty endpoint from them).
    pub fn protect_endpoint(&self) -> bool {
        self.enactor_checks_at_write.is_some() || self.cleanup_keeps_active_plan.is_some()
    }

    /// Whether a fix on lets the lease manager recover by itself after the repair.
    pub fn heal_lease_manager(&self) -> bool {
        self.admission_control.is_some() || self.recovery_runbook.is_some()
    }

    /// The automation's share of them.
    pub fn automation(&self) -> outage_lab_dns_automation::Fixes {
        outage_lab_dns_automation::Fixes {
            enactor_checks_at_write: self.enactor_checks_at_write.is_some(),
            cleanup_keeps_active_plan: self.cleanup_keeps_active_plan.is_some(),
        }
    }
}

impl Scenario {
    /// Reads and checks the scenario at `path`.
    pub fn load(path: &Path) -> Result<(Scenario, String), ScenarioError> {
        let source = path.display().to_string();
        let text = read(path).map_err(|what| Locator::new(&source, "").plain(what))?;
        let scenario = Scenario::parse(&text, &source)?;
        Ok((scenario, text))
    }

    /// Reads, parses and checks the scenario at `path` with the command line's `settings`
    /// (`--set`, `--fix`) applied to its document; a setting that makes a valid file invalid is
    /// named in the error.
    pub fn load_with(path: &Path, settings: &[Setting]) -> Result<Scenario, ScenarioError> {
        let source = path.display().to_string();
        let text = read(path).map_err(|what| Locator::new(&source, "").plain(what))?;
        outage_lab_engine::overrides::parse_with(&text, &source, settings, Scenario::parse)
    }

    /// Parses and checks `text`, read from `source`.
    pub fn parse(text: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, source))?;
        scenario.validate(&Locator::new(source, text))?;
        Ok(scenario)
    }

    /// The steps in timeline order, each with its time.
    pub fn steps(&self) -> Vec<(HumanDuration, Step)> {
        let mut steps: Vec<_> = (self.timeline.iter())
            .filter_map(|e| e.step().map(|s| (e.at, s)))
            .collect();
        steps.sort_by_key(|(at, _)| *at);
        steps
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let range = |path: &[&str], value: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(at.at_path(&[path], format!("expected {lo} to {hi}, got {value}")))
            }
        };
        if self.incident != NAME {
            return Err(at.at_path(
                &[&["incident"]],
                format!("expected `incident: {NAME}`, got {:?}", self.incident),
            ));
        }
        range(&["dns", "servers"], self.dns.servers, 1, 5)?;
        range(&["automation", "enactors"], self.automation.enactors, 1, 5)?;
        range(
            &["automation", "other_endpoints"],
            self.automation.other_endpoints,
            0,
            50,
        )?;
        range(&["service", "instances"], self.service.instances, 1, 8)?;
        range(&["clients", "customers"], self.clients.customers, 0, 32)?;
        range(&["clients", "dependents"], self.clients.dependents, 0, 32)?;
        range(&["clients", "rate"], self.clients.rate as usize, 1, 1000)?;
        self.validate_durations(at)?;
        self.validate_endpoint(at)?;
        self.validate_leases(at)?;
        self.validate_timeline(at)
    }

    /// Whether the fix `name` has something to act on here: the lease manager's fixes need
    /// one.
    pub fn fix_applies(&self, name: &str) -> bool {
        !LEASE_FIXES.contains(&name) || self.leases.is_some()
    }

    fn validate_leases(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if let Some(leases) = &self.leases {
            return leases.validate(at);
        }
        let on = self.fixes.on();
        if let Some(fix) = LEASE_FIXES.iter().find(|f| on.contains(f)) {
            return Err(at.at_path(
                &[&["fixes", fix], &["fixes"]],
                format!("expected a `leases:` section: {fix} is the lease manager's fix"),
            ));
        }
        let sheds = self
            .timeline
            .iter()
            .position(|e| e.step().is_some_and(|s| s.sheds_load()));
        match sheds {
            Some(i) => Err(at.at_path(
                &[&["timeline", &i.to_string()]],
                "expected a `leases:` section: this step acts on the lease manager".into(),
            )),
            None => Ok(()),
        }
    }

    fn validate_durations(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let positive: [(&[&str], HumanDuration); 6] = [
            (
                &["automation", "planner_interval"],
                self.automation.planner_interval,
            ),
            (&["automation", "poll"], self.automation.poll),
            (&["clients", "timeout"], self.clients.timeout),
            (
                &["clients", "connection_max_age"],
                self.clients.connection_max_age,
            ),
            (
                &["expect", "recovered_within"],
                self.expect.recovered_within,
            ),
            (&["dns", "ttl"], self.dns.ttl),
        ];
        for (path, value) in positive {
            if value.as_millis() == 0 {
                return Err(at.at_path(&[path], "expected a duration above zero".into()));
            }
        }
        if self.automation.keep_generations == 0 {
            return Err(at.at_path(
                &[&["automation", "keep_generations"]],
                "expected at least 1 generation".into(),
            ));
        }
        let longest = HumanDuration::secs(600);
        if self.duration.as_millis() == 0 || self.duration > longest {
            return Err(at.at_path(
                &[&["duration"]],
                format!(
                    "expected a duration above zero and at most {longest}, got {}",
                    self.duration
                ),
            ));
        }
        Ok(())
    }

    fn validate_endpoint(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let endpoint = &self.service.endpoint;
        let ok = endpoint.ends_with(".lab.internal.")
            && (endpoint.split('.')).all(|label| {
                label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if ok {
            return Ok(());
        }
        Err(at.at_path(
            &[&["service", "endpoint"]],
            format!("expected a fully qualified name in lab.internal. (letters, digits, '-'), such as dynamodb.us-east-1.lab.internal., got {endpoint:?}"),
        ))
    }

    fn validate_timeline(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        for (i, entry) in self.timeline.iter().enumerate() {
            let index = i.to_string();
            let path: &[&str] = &["timeline", &index];
            let Some(step) = entry.step() else {
                return Err(at.at_path(
                    &[path],
                    "expected exactly one of slow_enactor, disable_automation, manual_repair, throttle_renewals, restart_lease_manager beside `at`".into(),
                ));
            };
            if entry.at >= self.duration {
                return Err(at.at_path(
                    &[&["timeline", &index, "at"], path],
                    format!(
                        "expected a time before the end of the run ({}), got {}",
                        self.duration, entry.at
                    ),
                ));
            }
            if let Step::SlowEnactor {
                enactor,
                delay,
                jitter,
            } = &step
            {
                if jitter > delay {
                    return Err(at.at_path(
                        &[&["timeline", &index, "slow_enactor", "jitter"], path],
                        format!(
                            "expected a jitter no larger than the delay ({delay}), got {jitter}"
                        ),
                    ));
                }
                let known: Vec<String> = (0..self.automation.enactors).map(enactor_name).collect();
                if !known.contains(enactor) {
                    return Err(at.at_path(
                        &[&["timeline", &index, "slow_enactor", "enactor"], path],
                        format!("expected one of {}, got {enactor:?}", known.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The file's text, bounded like every scenario's.
fn read(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    (file.take(MAX_SCENARIO_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(format!(
            "larger than {MAX_SCENARIO_BYTES} bytes: not a scenario"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text: not a scenario".into())
}

#[cfg(test)]
mod tests;

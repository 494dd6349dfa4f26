//! The second half of a 2025 scenario: EC2's lease manager and the servers whose leases it keeps
//! (`leases:`), its steps (`throttle_renewals`, `restart_lease_manager`), its fix
//! (`admission_control`, `recovery_runbook`) and the bounds its checks judge with. A scenario without `leases:` is
//! the first half alone.

use outage_lab_engine::located::{Locator, ScenarioError};
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};

/// The lease manager and its servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leases {
    /// The lease manager: its workers, their work, the leases it grants.
    pub manager: LeaseManager,
    /// The servers ("droplets") that renew their leases through it.
    pub servers: LeaseServers,
    /// Customers launching instances, each launch placed on a server with a valid lease
    /// (none: nobody launches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launches: Option<Launches>,
    /// How long after the repair the manager must stay collapsed for `congestive_collapse`.
    pub collapsed_for: HumanDuration,
    /// How long every lease may take to come back after the last throttle or restart (or,
    /// with `admission_control`, after the repair).
    pub back_within: HumanDuration,
}

/// The lease manager's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseManager {
    /// Workers doing renewals at once (1 to 64).
    pub workers: usize,
    /// A worker's time per renewal, after its state check.
    pub work: HumanDuration,
    /// How long a renewed lease lasts.
    pub lease_ttl: HumanDuration,
    /// A worker's connections to the service are dropped once this old (then it looks the
    /// service's name up again).
    pub connection_max_age: HumanDuration,
    /// Bound on one state check, and on its lookup.
    pub check_timeout: HumanDuration,
}

/// The servers holding leases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseServers {
    /// How many (1 to 2000).
    pub count: usize,
    /// How often a server with a lease renews it.
    pub renew_every: HumanDuration,
    /// How long a server waits for a renewal's answer.
    pub budget: HumanDuration,
    /// How long it waits before asking again after a failure.
    pub retry_after: HumanDuration,
}

/// The customers who launch instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launches {
    /// How many customers (1 to 16).
    pub customers: usize,
    /// How often each launches.
    pub every: HumanDuration,
}

/// `throttle_renewals`' fields: the operators' throttle on incoming renewals.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRenewals {
    /// Renewals admitted per second; the rest are told to come back later (429).
    pub per_second: u32,
}

/// The fix `admission_control`'s fields: the lease manager's queue is bounded, drops work whose
/// requester gave up, and serves the newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionControl {
    /// The most renewals queued at once.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

impl Default for AdmissionControl {
    fn default() -> Self {
        AdmissionControl {
            capacity: default_capacity(),
        }
    }
}

/// The fix `recovery_runbook`'s fields: when its checks come back after failing, the lease
/// manager drops its backlog and admits renewals at a bounded rate until the leases are back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRunbook {
    /// Renewals admitted per second while the leases come back.
    #[serde(default = "default_recovery_rate")]
    pub per_second: u32,
}

impl Default for RecoveryRunbook {
    fn default() -> Self {
        RecoveryRunbook {
            per_second: default_recovery_rate(),
        }
    }
}

/// The operators' throttle in the shipped scenario: a fifth above the renewals' steady rate
/// (300 servers every 3 s), well within what the workers can do (200 a second).
fn default_recovery_rate() -> u32 {
    120
}

/// About two seconds of the default manager's work (4 workers at 20 ms a renewal).
fn default_capacity() -> usize {
    400
}

impl Leases {
    /// Checks the section's bounds; `at` names the field that is out of them.
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let range = |field: &[&str], value: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&value) {
                return Ok(());
            }
            let path: Vec<&str> = ["leases"].iter().chain(field).copied().collect();
            Err(at.at_path(
                &[path.as_slice()],
                format!("expected {lo} to {hi}, got {value}"),
            ))
        };
        range(&["manager", "workers"], self.manager.workers, 1, 64)?;
        range(&["servers", "count"], self.servers.count, 1, 2000)?;
        if let Some(l) = &self.launches {
            range(&["launches", "customers"], l.customers, 1, 16)?;
            let ms = usize::try_from(l.every.as_millis()).unwrap_or(usize::MAX);
            if !(50..=10_000).contains(&ms) {
                return Err(at.at_path(
                    &[&["leases", "launches", "every"]],
                    format!("expected 50ms to 10s, got {}", l.every),
                ));
            }
        }
        let positive: [(&[&str], HumanDuration); 8] = [
            (&["manager", "work"], self.manager.work),
            (&["manager", "lease_ttl"], self.manager.lease_ttl),
            (&["manager", "check_timeout"], self.manager.check_timeout),
            (&["servers", "renew_every"], self.servers.renew_every),
            (&["servers", "budget"], self.servers.budget),
            (&["servers", "retry_after"], self.servers.retry_after),
            (&["collapsed_for"], self.collapsed_for),
            (&["back_within"], self.back_within),
        ];
        for (field, value) in positive {
            if value.as_millis() == 0 {
                let path: Vec<&str> = ["leases"].iter().chain(field).copied().collect();
                return Err(at.at_path(&[path.as_slice()], "expected a duration above zero".into()));
            }
        }
        if self.servers.renew_every >= self.manager.lease_ttl {
            return Err(at.at_path(
                &[&["leases", "servers", "renew_every"]],
                format!(
                    "expected a renewal more often than a lease lasts ({}), got {}",
                    self.manager.lease_ttl, self.servers.renew_every
                ),
            ));
        }
        Ok(())
    }

    /// Renewals the workers can do in a second, at best.
    pub fn capacity_per_second(&self) -> f64 {
        let work_ms = self.manager.work.as_millis().max(1) as f64;
        self.manager.workers as f64 * 1000.0 / work_ms
    }
}

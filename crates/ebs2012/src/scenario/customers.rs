//! The scenario's `customers:` and `api:` sections: the accounts that own the volumes, their
//! recovery automation, and the control plane's API they call (capacity and throttling).

use outage_lab_control::api::{ApiConfig, ThrottleConfig};
use outage_lab_proto::HumanDuration;
use serde::Deserialize;

use outage_lab_engine::located::{Locator, ScenarioError};

/// Most customer accounts a scenario may have.
pub const MAX_ACCOUNTS: u32 = 500;

/// How a customer's automation retries a failed API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryRetry {
    /// At once, whatever the answer: the storm of 2012.
    Aggressive,
    /// Jittered exponential backoff that honours `Retry-After`.
    Backoff,
}

/// The customer accounts and their recovery automation. With `accounts: 0` (the default) there
/// are no accounts and nobody calls the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerSettings {
    /// How many accounts (`c01`, `c02`, ...); the volumes are shared among them (seeded).
    pub accounts: u32,
    /// A volume that fails I/O this long gets a replacement: create, then attach.
    pub recover_after: HumanDuration,
    /// How the automation retries a refused call: `aggressive` or `backoff`.
    pub retry: RecoveryRetry,
    /// How often every account describes its volumes (its API traffic in calm times, and how
    /// it notices a stuck volume).
    pub describe_interval: HumanDuration,
}

impl Default for CustomerSettings {
    fn default() -> Self {
        Self {
            accounts: 0,
            recover_after: HumanDuration::secs(2),
            retry: RecoveryRetry::Backoff,
            describe_interval: HumanDuration::millis(500),
        }
    }
}

impl CustomerSettings {
    /// Whether there are customers calling the API.
    pub fn active(&self) -> bool {
        self.accounts > 0
    }

    /// The account names: `c01` .. `cNN` (wider past 99).
    pub fn account_names(&self) -> Vec<String> {
        let width = self.accounts.to_string().len().max(2);
        (1..=self.accounts)
            .map(|i| format!("c{i:0width$}"))
            .collect()
    }

    /// Counts and durations.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.accounts > MAX_ACCOUNTS {
            return Err(loc.at_path(
                &[&["customers", "accounts"]],
                format!(
                    "customers.accounts is {}; expected 0 to {MAX_ACCOUNTS}",
                    self.accounts
                ),
            ));
        }
        for (field, d) in [
            ("recover_after", self.recover_after),
            ("describe_interval", self.describe_interval),
        ] {
            if d.get().is_zero() {
                return Err(loc.at_path(
                    &[&["customers", field]],
                    format!("customers.{field} must be longer than 0ms"),
                ));
            }
        }
        Ok(())
    }
}

/// The control plane's API: `workers` calls served at once, each holding its worker for
/// `service_time`; `queue` more may wait; `throttle` may refuse calls before that.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Calls served at once.
    pub workers: u32,
    /// How long one call holds its worker.
    pub service_time: HumanDuration,
    /// Calls that may wait for a worker.
    pub queue: u32,
    /// `{ policy: none | global | per_customer, rate, burst }`.
    pub throttle: ThrottleConfig,
}

impl Default for ApiSettings {
    fn default() -> Self {
        let api = ApiConfig::default();
        Self {
            workers: api.workers,
            service_time: api.service_time,
            queue: api.queue,
            throttle: api.throttle,
        }
    }
}

impl ApiSettings {
    /// The control role's API config for these accounts.
    pub fn config(&self, customers: &CustomerSettings) -> ApiConfig {
        ApiConfig {
            customers: customers.account_names(),
            workers: self.workers,
            service_time: self.service_time,
            queue: self.queue,
            throttle: self.throttle,
        }
    }

    /// What control itself would refuse, named by its path in the scenario.
    pub fn validate(
        &self,
        customers: &CustomerSettings,
        loc: &Locator<'_>,
    ) -> Result<(), ScenarioError> {
        if self.service_time.get().is_zero() {
            return Err(loc.at_path(
                &[&["api", "service_time"]],
                "api.service_time must be longer than 0ms".into(),
            ));
        }
        self.config(customers).validate().map_err(|e| {
            let field = ["workers", "queue", "throttle"]
                .into_iter()
                .find(|f| e.contains(&format!("api.{f}")))
                .unwrap_or("throttle");
            loc.at_path(&[&["api", field]], e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_named_in_order_and_sort_as_they_count() {
        let c = CustomerSettings {
            accounts: 3,
            ..CustomerSettings::default()
        };
        assert_eq!(c.account_names(), ["c01", "c02", "c03"]);
        let many = CustomerSettings {
            accounts: 120,
            ..CustomerSettings::default()
        };
        assert_eq!(many.account_names()[0], "c001");
        assert_eq!(many.account_names()[119], "c120");
    }

    #[test]
    fn the_api_section_defaults_to_the_control_roles_own_defaults() {
        let s = ApiSettings::default();
        let c = s.config(&CustomerSettings::default());
        assert_eq!(c, ApiConfig::default());
    }
}

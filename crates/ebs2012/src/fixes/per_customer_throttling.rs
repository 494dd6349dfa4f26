//! `per_customer_throttling: {}`: throttling per customer. Wherever the API's throttle would be
//! region-wide (`global`), it is `per_customer` instead: the region's rate and burst are divided
//! evenly, so one customer's storm cannot use up everyone's allowance.

use outage_lab_control::api::{Policy, ThrottleConfig};
use serde::Deserialize;

use super::{Applicability, Fix, RunContext};

/// `per_customer_throttling: {}`: no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerCustomerThrottling {}

impl Fix for PerCustomerThrottling {
    fn applies(scenario: Applicability) -> Result<(), &'static str> {
        match scenario.has_customers {
            true => Ok(()),
            false => Err(
                "changes how the API throttles customers, and this scenario has none; set customers.accounts",
            ),
        }
    }

    fn setting(&self, _run: RunContext<'_>) -> String {
        "the API's region-wide throttle is divided evenly into a bucket per customer".into()
    }
}

/// The API's throttle: the scenario's, or per customer where it would be global and the fix is
/// on.
pub fn throttle(fix: Option<&PerCustomerThrottling>, scenario: ThrottleConfig) -> ThrottleConfig {
    match (fix, scenario.policy) {
        (Some(_), Policy::Global) => ThrottleConfig {
            policy: Policy::PerCustomer,
            ..scenario
        },
        _ => scenario,
    }
}

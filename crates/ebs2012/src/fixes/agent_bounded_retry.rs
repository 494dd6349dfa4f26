//! `agent_bounded_retry: {}`: the agent fixed. Its retry state is bounded and it backs off
//! (`agent.retry` becomes the agent's own `mode: fixed` with its defaults).

use outage_lab_agent::FleetRetryPolicy;
use serde::Deserialize;

use super::{Applicability, Fix, RunContext};

/// `agent_bounded_retry: {}`: no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBoundedRetry {}

impl Fix for AgentBoundedRetry {
    fn applies(scenario: Applicability) -> Result<(), &'static str> {
        match scenario.built_in_agent {
            true => Ok(()),
            false => Err(
                "changes the built-in agent's retry, and agent.command replaces that agent; fix your agent instead",
            ),
        }
    }

    fn setting(&self, _run: RunContext<'_>) -> String {
        "agents retry with mode: fixed (bounded state, backoff)".into()
    }
}

/// The agents' retry policy: the scenario's, or the fixed agent's when the fix is on.
pub fn agent_retry(fix: Option<&AgentBoundedRetry>, scenario: &FleetRetryPolicy) -> FleetRetryPolicy {
    match fix {
        Some(_) => FleetRetryPolicy::fixed(),
        None => scenario.clone(),
    }
}

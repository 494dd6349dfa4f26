//! `agent_memory_limit: { limit }`: resource limits for processes on storage servers. Each agent
//! runs under a kernel-enforced memory limit; when the kernel kills it there, it is restarted,
//! as a service manager would, and the storage process keeps the agent's share of the budget
//! meanwhile (it holds the agent's last known size).
//!
//! The limit is a memory cgroup where the harness can make one: cgroup v1 (`memory.limit_in_bytes`)
//! or v2 (`memory.max`), a child of the harness's own cgroup, one per agent. Where it cannot (no
//! memory controller, no permission), it is `RLIMIT_DATA` set in the child before exec: the
//! agent's allocator then fails and the process aborts. The journal says which was used. The
//! mechanism is the fleet's (`crate::fleet::limiter`): it starts every agent under it.


use outage_lab_proto::ByteSize;
use serde::Deserialize;

use super::action::Action;
use super::{Fix, RunContext};
use crate::kinds::FixName;
use outage_lab_engine::error::HarnessError;
use crate::fleet_handle::FleetHandle;
use crate::names::ProcessName;
use outage_lab_engine::located::{Locator, ScenarioError};

/// The smallest limit that leaves an idle agent room to start.
const MIN_LIMIT: ByteSize = ByteSize::mib(4);

/// `agent_memory_limit: { limit }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentMemoryLimit {
    /// The most memory one agent may be charged. A cgroup charges the agent's own memory (its
    /// heap and what it brings into the page cache), not the binary's shared pages that RSS also
    /// counts: an idle release-build agent is charged a few MiB of its 8MiB RSS.
    pub limit: ByteSize,
}

impl Default for AgentMemoryLimit {
    fn default() -> Self {
        Self {
            limit: ByteSize::mib(16),
        }
    }
}

impl Fix for AgentMemoryLimit {
    /// The limit leaves an agent room to start.
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.limit < MIN_LIMIT {
            return Err(loc.at_path(
                &[&["fixes", "agent_memory_limit", "limit"]],
                format!(
                    "fixes.agent_memory_limit.limit is {}; expected at least {MIN_LIMIT} (an idle agent needs more)",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    fn setting(&self, _run: RunContext<'_>) -> String {
        format!("limit {} per agent", self.limit)
    }

    const ACTIONS: &'static str = "agents killed at the limit and restarted";
}

/// An agent that exited without being asked, while the limit is on.
#[derive(Debug)]
struct Exit {
    server: String,
    status: String,
    t_ms: u64,
}

/// The service-manager side of the fix during a run: an agent the kernel killed at its limit
/// is started again; the storage process kept its share of the budget meanwhile.
#[derive(Debug, Default)]
pub struct Restarter {
    /// Agents by pid.
    agents: std::collections::HashMap<u32, String>,
    /// Agents that exited unasked, not looked at yet.
    exits: Vec<Exit>,
}

impl Restarter {
    /// An agent of `server` started as `pid`.
    pub fn started(&mut self, pid: u32, server: &str) {
        self.agents.insert(pid, server.to_owned());
    }

    /// Process `pid` exited unasked at `t_ms`; if it was an agent, it is looked at next.
    pub fn exited(&mut self, pid: u32, status: &str, t_ms: u64) {
        if let Some(server) = self.agents.get(&pid) {
            self.exits.push(Exit {
                server: server.clone(),
                status: status.to_owned(),
                t_ms,
            });
        }
    }

    /// Whether an exit waits to be looked at.
    pub fn pending(&self) -> bool {
        !self.exits.is_empty()
    }

    /// Restarts every agent the limit killed; an exit the limit does not explain is a crash
    /// like any other, left for `processes_stayed_up`.
    pub async fn act(&mut self, fleet: &mut impl FleetHandle<'_>) -> Result<Vec<Action>, HarnessError> {
        let mut actions = Vec::new();
        for exit in std::mem::take(&mut self.exits) {
            let name = ProcessName::Agent(exit.server.clone());
            let Some(cause) = fleet.limit_explains(&name, &exit.status) else {
                continue;
            };
            let Some(server) = fleet.plan().servers.iter().find(|s| s.id == exit.server) else {
                continue;
            };
            fleet.restart_agents(&[server]).await?;
            actions.push(Action {
                fix: FixName::AgentMemoryLimit,
                server: Some(exit.server.clone()),
                process: Some(name.to_string()),
                detail: format!(
                    "{name} was killed at {}ms by its memory limit ({cause}; {}); restarted",
                    exit.t_ms, exit.status
                ),
            });
        }
        Ok(actions)
    }
}

//! `leak_alarm_action: { reaction }`: per-process monitoring with an action. When the leak alarm
//! fires on an agent, the agent is restarted `reaction` later (a page, a person, a restart),
//! which frees whatever it leaked.

use std::collections::BTreeMap;
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use tokio::time::Instant;

use super::action::Action;
use super::{Fix, RunContext};
use crate::kinds::FixName;
use outage_lab_engine::error::HarnessError;
use crate::fleet_handle::FleetHandle;
use crate::names::ProcessName;
use outage_lab_engine::located::{Locator, ScenarioError};

/// `leak_alarm_action: { reaction }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeakAlarmAction {
    /// From the alarm to the restart: the page-to-action time.
    pub reaction: HumanDuration,
}

impl Default for LeakAlarmAction {
    fn default() -> Self {
        Self {
            reaction: HumanDuration::secs(2),
        }
    }
}

impl Fix for LeakAlarmAction {
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        super::check_positive(loc, &["fixes", "leak_alarm_action", "reaction"], self.reaction)
    }

    fn setting(&self, _run: RunContext<'_>) -> String {
        format!("reaction {}", self.reaction)
    }

    const ACTIONS: &'static str = "agent restarts after a leak alarm";
}

/// The restarts the fix has planned during a run.
#[derive(Debug)]
pub struct Restarts {
    reaction: Duration,
    /// Per server: when the restart is due, and when the alarm fired (lab ms).
    due: BTreeMap<String, (Instant, u64)>,
}

impl Restarts {
    /// Nothing planned yet.
    pub fn new(fix: &LeakAlarmAction) -> Self {
        Self {
            reaction: fix.reaction.get(),
            due: BTreeMap::new(),
        }
    }

    /// The leak alarm fired on `server`'s agent at `alarm_ms`: restart it a reaction from now
    /// (once: a second alarm before the restart changes nothing).
    pub fn alarm(&mut self, server: &str, alarm_ms: u64, now: Instant) {
        let due = (now + self.reaction, alarm_ms);
        self.due.entry(server.to_owned()).or_insert(due);
    }

    /// The run was frozen for `by`: every restart comes that much later.
    pub fn shift(&mut self, by: Duration) {
        for (due, _) in self.due.values_mut() {
            *due += by;
        }
    }

    /// When the next restart is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().map(|(due, _)| *due).min()
    }

    /// Restarts every agent whose time has come.
    pub async fn act(&mut self, fleet: &mut impl FleetHandle<'_>) -> Result<Vec<Action>, HarnessError> {
        let now = Instant::now();
        let due: Vec<(String, u64)> = (self.due.iter())
            .filter(|(_, (at, _))| *at <= now)
            .map(|(s, (_, alarm_ms))| (s.clone(), *alarm_ms))
            .collect();
        let mut actions = Vec::new();
        for (id, alarm_ms) in due {
            self.due.remove(&id);
            let Some(server) = fleet.plan().servers.iter().find(|s| s.id == id) else {
                continue;
            };
            fleet.restart_agents(&[server]).await?;
            let reaction = HumanDuration(self.reaction);
            let name = ProcessName::Agent(id.clone());
            actions.push(Action {
                fix: FixName::LeakAlarmAction,
                server: Some(id),
                process: Some(name.to_string()),
                detail: format!(
                    "{name}: leak alarm at {alarm_ms}ms; restarted {reaction} later, which frees what it leaked"
                ),
            });
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_moves_a_planned_restart_back_by_its_length() {
        let mut restarts = Restarts::new(&LeakAlarmAction {
            reaction: HumanDuration::secs(1),
        });
        let now = Instant::now();
        restarts.alarm("s003", 8_000, now);
        assert_eq!(restarts.next_due(), Some(now + Duration::from_secs(1)));
        restarts.shift(Duration::from_secs(30));
        assert_eq!(restarts.next_due(), Some(now + Duration::from_secs(31)));
    }
}

//! The fixes that act during a run. The driver shows this every journal entry
//! ([`FixRuntime::observe`]), wakes it when something is due ([`FixRuntime::next_due`]) and
//! journals what it did ([`FixRuntime::act`] returns one [`Action`] per thing done).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use outage_lab_proto::{AlarmKind, Event, HumanDuration, JournalEntry, ProcessRole, Role};
use tokio::time::Instant;

use super::Fixes;
use super::action::Action;
use super::dns_verification::Verifier;
use crate::harness::error::HarnessError;
use crate::harness::fleet::Fleet;
use crate::names::ProcessName;
use crate::steps::StepKind;

/// An agent that exited without being asked, while the memory limit is on.
#[derive(Debug)]
struct Exit {
    server: String,
    status: String,
    t_ms: u64,
}

/// The run-time side of the fixes that are on.
#[derive(Debug, Default)]
pub struct FixRuntime {
    /// `leak_alarm_action`: the reaction time, and the restarts it has planned.
    reaction: Option<Duration>,
    restarts_due: BTreeMap<String, (Instant, u64)>,
    /// `dns_verification`.
    verifier: Option<Verifier>,
    /// `agent_memory_limit`: agents by pid, and those that exited unasked.
    limit: bool,
    agents: HashMap<u32, String>,
    exits: Vec<Exit>,
}

impl FixRuntime {
    /// The runtime of `fixes` (doing nothing for the fixes that are off).
    pub fn new(fixes: &Fixes) -> Self {
        Self {
            reaction: fixes.leak_alarm_action.as_ref().map(|f| f.reaction.get()),
            verifier: fixes.dns_verification.as_ref().map(Verifier::new),
            limit: fixes.agent_memory_limit.is_some(),
            ..Self::default()
        }
    }

    /// Learns from one journal entry what is due.
    pub fn observe(&mut self, entry: &JournalEntry, now: Instant) {
        match &entry.event {
            Event::ProcessStarted {
                role: Role::Agent,
                server: Some(server),
                pid,
                ..
            } => {
                self.agents.insert(*pid, server.clone());
            }
            Event::Alarm {
                alarm: AlarmKind::Leak,
                role: Some(ProcessRole::Agent),
                server,
                ..
            } => {
                if let Some(reaction) = self.reaction {
                    let due = (now + reaction, entry.t_ms);
                    self.restarts_due.entry(server.clone()).or_insert(due);
                }
            }
            Event::FaultInjected { action, .. } => {
                let dns = [StepKind::DnsUpdate, StepKind::DnsRepair];
                let changed = StepKind::from_name(action).is_some_and(|k| dns.contains(&k));
                if let Some(verifier) = self.verifier.as_mut().filter(|_| changed) {
                    verifier.record_changed(now);
                }
            }
            Event::ProcessExited {
                pid,
                status,
                expected: false,
                ..
            } if self.limit => {
                if let Some(server) = self.agents.get(pid) {
                    self.exits.push(Exit {
                        server: server.clone(),
                        status: status.clone(),
                        t_ms: entry.t_ms,
                    });
                }
            }
            _ => {}
        }
    }

    /// The run was frozen for `by` (a workshop stop): everything planned comes that much later,
    /// so a reaction time counts only time the run ran.
    pub fn shift(&mut self, by: Duration) {
        for (due, _) in self.restarts_due.values_mut() {
            *due += by;
        }
        if let Some(verifier) = &mut self.verifier {
            verifier.shift(by);
        }
    }

    /// When something is next due, if anything is.
    pub fn next_due(&self) -> Option<Instant> {
        let now = (!self.exits.is_empty()).then(Instant::now);
        let restarts = self.restarts_due.values().map(|(due, _)| *due).min();
        let verify = self.verifier.as_ref().and_then(Verifier::due);
        [now, restarts, verify].into_iter().flatten().min()
    }

    /// Does what is due now.
    pub async fn act(&mut self, fleet: &mut Fleet<'_>) -> Result<Vec<Action>, HarnessError> {
        let mut actions = self.restart_killed(fleet).await?;
        actions.extend(self.restart_leaking(fleet).await?);
        let now = Instant::now();
        if let Some(verifier) =
            (self.verifier.as_mut()).filter(|v| v.due().is_some_and(|d| d <= now))
        {
            actions.extend(verifier.verify(fleet).await);
        }
        Ok(actions)
    }

    /// `agent_memory_limit`: an agent the kernel killed at its limit is started again, as a
    /// service manager would; the storage process kept its share of the budget meanwhile.
    async fn restart_killed(&mut self, fleet: &mut Fleet<'_>) -> Result<Vec<Action>, HarnessError> {
        let mut actions = Vec::new();
        for exit in std::mem::take(&mut self.exits) {
            let name = ProcessName::Agent(exit.server.clone());
            let Some(cause) = fleet.limit_explains(&name, &exit.status) else {
                // Not the limit: a crash like any other, left for `processes_stayed_up`.
                continue;
            };
            let Some(server) = fleet.plan.servers.iter().find(|s| s.id == exit.server) else {
                continue;
            };
            fleet.restart_agents(&[server]).await?;
            actions.push(Action {
                fix: "agent_memory_limit",
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

    /// `leak_alarm_action`: an agent whose leak alarm fired is restarted after the reaction time.
    async fn restart_leaking(
        &mut self,
        fleet: &mut Fleet<'_>,
    ) -> Result<Vec<Action>, HarnessError> {
        let now = Instant::now();
        let due: Vec<(String, u64)> = (self.restarts_due.iter())
            .filter(|(_, (at, _))| *at <= now)
            .map(|(s, (_, alarm_ms))| (s.clone(), *alarm_ms))
            .collect();
        let mut actions = Vec::new();
        for (id, alarm_ms) in due {
            self.restarts_due.remove(&id);
            let Some(server) = fleet.plan.servers.iter().find(|s| s.id == id) else {
                continue;
            };
            fleet.restart_agents(&[server]).await?;
            let reaction = HumanDuration(self.reaction.unwrap_or_default());
            let name = ProcessName::Agent(id.clone());
            actions.push(Action {
                fix: "leak_alarm_action",
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
        let mut fixes = FixRuntime {
            reaction: Some(Duration::from_secs(1)),
            ..FixRuntime::default()
        };
        let alarm = JournalEntry {
            t_ms: 8_000,
            source: "watchdog".into(),
            source_pid: None,
            event: Event::Alarm {
                alarm: AlarmKind::Leak,
                server: "s003".into(),
                role: Some(ProcessRole::Agent),
                pid: Some(7),
                detail: String::new(),
            },
        };
        let now = Instant::now();
        fixes.observe(&alarm, now);
        assert_eq!(fixes.next_due(), Some(now + Duration::from_secs(1)));
        fixes.shift(Duration::from_secs(30));
        assert_eq!(fixes.next_due(), Some(now + Duration::from_secs(31)));
    }
}

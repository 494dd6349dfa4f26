//! The fixes that act during a run, composed. The driver shows this every journal entry
//! ([`FixRuntime::observe`]), wakes it when something is due ([`FixRuntime::next_due`]) and
//! journals what it did ([`FixRuntime::act`] returns one [`Action`] per thing done). What each
//! fix does lives in its own module; this only routes events to the fixes that are on.

use std::time::Duration;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole, Role};
use tokio::time::Instant;

use super::Fixes;
use super::action::Action;
use super::agent_memory_limit::Restarter;
use super::dns_verification::Verifier;
use super::leak_alarm_action::Restarts;
use crate::fleet_handle::FleetHandle;
use crate::kinds::StepKind;
use outage_lab_engine::error::HarnessError;

/// The run-time side of the fixes that are on.
#[derive(Debug, Default)]
pub struct FixRuntime {
    /// `leak_alarm_action`.
    restarts: Option<Restarts>,
    /// `dns_verification`.
    verifier: Option<Verifier>,
    /// `agent_memory_limit`.
    limit: Option<Restarter>,
}

impl FixRuntime {
    /// The runtime of `fixes` (doing nothing for the fixes that are off).
    pub fn new(fixes: &Fixes) -> Self {
        Self {
            restarts: fixes.leak_alarm_action.as_ref().map(Restarts::new),
            verifier: fixes.dns_verification.as_ref().map(Verifier::new),
            limit: fixes
                .agent_memory_limit
                .as_ref()
                .map(|_| Restarter::default()),
        }
    }

    /// Learns from one journal entry what is due.
    pub fn observe(&mut self, entry: &JournalEntry, now: Instant) {
        match &entry.event {
            Event::ProcessStarted {
                role,
                server: Some(server),
                pid,
                ..
            } if Role::from_name(role) == Some(Role::Agent) => {
                if let Some(limit) = &mut self.limit {
                    limit.started(*pid, server);
                }
            }
            Event::Alarm {
                alarm: AlarmKind::Leak,
                role: Some(ProcessRole::Agent),
                server,
                ..
            } => {
                if let Some(restarts) = &mut self.restarts {
                    restarts.alarm(server, entry.t_ms, now);
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
            } => {
                if let Some(limit) = &mut self.limit {
                    limit.exited(*pid, status, entry.t_ms);
                }
            }
            _ => {}
        }
    }

    /// The run was frozen for `by` (a workshop stop): everything planned comes that much later,
    /// so a reaction time counts only time the run ran.
    pub fn shift(&mut self, by: Duration) {
        if let Some(restarts) = &mut self.restarts {
            restarts.shift(by);
        }
        if let Some(verifier) = &mut self.verifier {
            verifier.shift(by);
        }
    }

    /// When something is next due, if anything is.
    pub fn next_due(&self) -> Option<Instant> {
        let pending = self.limit.as_ref().is_some_and(Restarter::pending);
        let now = pending.then(Instant::now);
        let restarts = self.restarts.as_ref().and_then(Restarts::next_due);
        let verify = self.verifier.as_ref().and_then(Verifier::due);
        [now, restarts, verify].into_iter().flatten().min()
    }

    /// Does what is due now.
    pub async fn act(
        &mut self,
        fleet: &mut impl FleetHandle<'_>,
    ) -> Result<Vec<Action>, HarnessError> {
        let mut actions = Vec::new();
        if let Some(limit) = &mut self.limit {
            actions.extend(limit.act(fleet).await?);
        }
        if let Some(restarts) = &mut self.restarts {
            actions.extend(restarts.act(fleet).await?);
        }
        let now = Instant::now();
        if let Some(verifier) =
            (self.verifier.as_mut()).filter(|v| v.due().is_some_and(|d| d <= now))
        {
            actions.extend(verifier.verify(fleet).await);
        }
        Ok(actions)
    }
}

//! `kill: { at, role, servers, count }`: the chosen processes die at once (SIGKILL), the
//! hardware-failure primitive (`replace_collector` uses it on the old collector). Killed
//! processes stay dead: what the fleet does about it is the experiment.
//!
//! Its check, `kill_took_effect`, reads what the fleet saw: a killed storage process's server
//! is found not serving I/O by control; a killed agent is no longer in the watchdog's sweeps.

use outage_lab_ebs_events::ProcessRole;
use outage_lab_proto::HumanDuration;
use outage_lab_proto::report::ExpectationResult;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::select::Servers;
use super::{TimelineContext, TimelineStep};
use crate::check::{Check, CheckInput, first_few, result};
use crate::fleet_handle::FleetHandle;
use crate::kinds::StepKind;
use crate::names::ProcessName;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// SIGKILL processes of some storage servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// Which process of each chosen server: `agent` or `storage`.
    pub role: ProcessRole,
    /// Which servers: `stale`, `fresh`, `all`, or a list of server ids.
    pub servers: Servers,
    /// At most this many of them (the first in id order); all when absent.
    #[serde(default)]
    pub count: Option<Spanned<u32>>,
}

impl Kill {
    fn count(&self) -> Option<u32> {
        self.count.as_ref().map(|c| c.value)
    }
}

impl TimelineStep for Kill {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        if let Some(count) = self.count.as_ref().filter(|c| c.value == 0) {
            return Err(t
                .loc
                .at(count, "kill.count is 0; expected at least 1 process".into()));
        }
        self.servers.validate(t.servers, t.loc)
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let servers = self.servers.pick(fleet.plan(), self.count());
        let names: Vec<ProcessName> = (servers.iter())
            .map(|s| ProcessName::on_server(self.role, &s.id))
            .collect();
        let killed = fleet.kill(&names).await?;
        if killed.is_empty() {
            return Ok(format!(
                "no {} process of {} was running; nothing killed",
                self.role, self.servers
            ));
        }
        let list: Vec<String> = (killed.iter())
            .map(|(name, pid)| format!("{name} (pid {pid})"))
            .collect();
        Ok(format!("SIGKILL: {}", list.join(", ")))
    }

    fn checks(&self) -> Vec<Check<'_>> {
        vec![Check::new("kill_took_effect", move |input| {
            kill_took_effect(self, input)
        })]
    }
}

fn kill_took_effect(kill: &Kill, input: &CheckInput<'_>) -> ExpectationResult {
    const NAME: &str = "kill_took_effect";
    let Some(at) = input.state.injected_at(StepKind::Kill) else {
        return result(NAME, false, "the kill step never ran".into());
    };
    let servers = kill.servers.pick(input.plan, kill.count());
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for planned in servers {
        let id = &planned.id;
        let Some(state) = input.state.servers.get(id) else {
            problems.push(format!("{id}: no events at all"));
            continue;
        };
        match kill.role {
            ProcessRole::Storage => match state.unhealthy_at_ms.filter(|t| *t >= at) {
                Some(t) => seen.push(format!("{id} not serving I/O {}ms after", t - at)),
                None => problems.push(format!(
                    "{id}: control never found it not serving I/O after the kill at {at}ms"
                )),
            },
            ProcessRole::Agent => {
                let last = state
                    .agents
                    .last()
                    .and_then(|a| a.rss.last())
                    .map(|(t, _)| *t);
                match last {
                    Some(t) if t > at + 1_000 => problems.push(format!(
                        "{id}: the agent was still sampled at {t}ms, after the kill at {at}ms"
                    )),
                    _ => seen.push(format!("{id} agent gone")),
                }
            }
        }
    }
    if problems.is_empty() {
        result(NAME, true, format!("killed at {at}ms: {}", seen.join("; ")))
    } else {
        result(NAME, false, first_few(&problems, 5))
    }
}

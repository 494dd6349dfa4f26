//! What each monitor shows right now, side by side: the 2012 aggregate alarm (each server's
//! agent + storage memory against its threshold), the per-process leak alarm, the collector's view
//! (which agents it has stopped hearing from) and each DNS server's answers. All read from the
//! run state, so the panel shows what the processes said, not what the scenario planned.

use std::fmt::Write as _;

use serde::Serialize;

use super::links::mib;
use crate::plan::Plan;
use crate::run_state::{RunState, ServerState};

/// An agent the new collector has not heard from for this long is "silent".
const SILENT_AFTER_MS: u64 = 2_000;

/// The panel at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Panel {
    /// Lab time it describes.
    pub t_ms: u64,
    /// The aggregate alarm's threshold (share of each server's budget).
    pub aggregate_threshold: f64,
    /// One row per storage server.
    pub servers: Vec<ServerRow>,
    /// One row per DNS server.
    pub dns: Vec<DnsRow>,
    /// Volumes stuck now.
    pub stuck_volumes: u64,
}

/// One server's monitors.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    /// Server id.
    pub id: String,
    /// The DNS server its agent asks.
    pub dns_server: String,
    /// Agent + storage resident memory, as a share of the budget (the 2012 alarm's value).
    pub aggregate_share: f64,
    /// Whether the aggregate alarm fired on it.
    pub aggregate_alarm: bool,
    /// The agent's resident memory now.
    pub agent_rss_bytes: u64,
    /// Whether the per-process leak alarm fired on its agent.
    pub leak_alarm: bool,
    /// Reports the replacement collector has counted from it.
    pub reports_to_new_collector: u64,
    /// Whether the collector has stopped hearing from it (or never heard, once replaced).
    pub silent: bool,
}

/// One DNS server's answers for the collector's name.
#[derive(Debug, Clone, Serialize)]
pub struct DnsRow {
    /// Its name.
    pub name: String,
    /// Answers so far, by address answered.
    pub answers: Vec<(String, u64)>,
}

impl Panel {
    /// The panel for `state` at `t_ms`.
    pub fn read(
        plan: &Plan,
        state: &RunState,
        budget_bytes: u64,
        threshold: f64,
        t_ms: u64,
    ) -> Self {
        let replaced = state.injected_at(crate::kinds::StepKind::ReplaceCollector);
        let servers = (plan.servers.iter())
            .filter_map(|p| state.servers.get(&p.id).map(|s| (p, s)))
            .map(|(p, s)| server_row(&p.id, &p.dns_server, s, budget_bytes, t_ms, replaced))
            .collect();
        let dns = (plan.dns.iter())
            .map(|d| DnsRow {
                name: d.name.clone(),
                answers: (state.dns_answers.get(&d.name))
                    .and_then(|told| told.last())
                    .map(|(_, a)| a.iter().map(|(ip, n)| (ip.to_string(), *n)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        Self {
            t_ms,
            aggregate_threshold: threshold,
            servers,
            dns,
            stuck_volumes: state.volumes.stuck_now,
        }
    }

    /// The panel as terminal lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:<6} {:<7} {:>16} {:>12} {:>10} {:>18}",
            "server", "dns", "aggregate (2012)", "agent RSS", "leak alarm", "collector hears it"
        );
        for s in &self.servers {
            let aggregate = format!(
                "{:>3.0}% / {:.0}%{}",
                s.aggregate_share * 100.0,
                self.aggregate_threshold * 100.0,
                if s.aggregate_alarm { " !" } else { "" }
            );
            let _ = writeln!(
                out,
                "  {:<6} {:<7} {:>16} {:>12} {:>10} {:>18}",
                s.id,
                s.dns_server,
                aggregate,
                mib(s.agent_rss_bytes),
                if s.leak_alarm { "FIRING" } else { "-" },
                if s.silent {
                    "SILENT".to_owned()
                } else {
                    format!("{} reports", s.reports_to_new_collector)
                }
            );
        }
        for d in &self.dns {
            let answers: Vec<String> = d
                .answers
                .iter()
                .map(|(ip, n)| format!("{ip} x{n}"))
                .collect();
            let _ = writeln!(
                out,
                "  {} answered collector.lab.internal: {}",
                d.name,
                if answers.is_empty() {
                    "nothing yet".to_owned()
                } else {
                    answers.join(", ")
                }
            );
        }
        let _ = writeln!(out, "  stuck volumes: {}", self.stuck_volumes);
        out
    }
}

fn server_row(
    id: &str,
    dns_server: &str,
    s: &ServerState,
    budget: u64,
    t_ms: u64,
    replaced_at: Option<u64>,
) -> ServerRow {
    let agent = s.agent_rss().last().map_or(0, |(_, b)| b);
    let storage = s.storage_rss.last().map_or(0, |(_, b)| *b);
    let heard = s.reports_to_new_collector.last().copied();
    let heard_lately = heard.is_some_and(|(_, n)| {
        n > s.reports_to_new_collector_by(t_ms.saturating_sub(SILENT_AFTER_MS))
    });
    ServerRow {
        id: id.to_owned(),
        dns_server: dns_server.to_owned(),
        aggregate_share: (agent + storage) as f64 / budget.max(1) as f64,
        aggregate_alarm: s.aggregate_at_ms.is_some(),
        agent_rss_bytes: agent,
        leak_alarm: s.leak_at_ms.is_some(),
        reports_to_new_collector: heard.map_or(0, |(_, n)| n),
        // Before the replacement the lab counts no collector's reports: nothing to judge by.
        silent: replaced_at.is_some_and(|at| t_ms >= at + SILENT_AFTER_MS) && !heard_lately,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::run_state::Incarnation;

    #[test]
    fn a_server_the_collector_stopped_hearing_is_silent_and_its_share_is_agent_plus_storage() {
        let plan = Plan::new(7, 1, 2, &["dns-a".to_owned()], &Default::default());
        let mut state = RunState::with_servers(plan.servers.iter().map(|s| s.id.as_str()));
        state.fleet_up_ms = Some(1_000);
        state
            .steps
            .push((crate::kinds::StepKind::ReplaceCollector, 4_000));
        let (a, b) = (plan.servers[0].id.clone(), plan.servers[1].id.clone());
        for (id, counts) in [(&a, [10, 20]), (&b, [10, 10])] {
            let s = state.servers.get_mut(id).unwrap();
            s.reports_to_new_collector = vec![(5_000, counts[0]), (8_000, counts[1])];
            s.agents.push(Incarnation {
                rss: vec![(8_000, 4 << 20)],
                ..Default::default()
            });
            s.storage_rss.push((8_000, 20 << 20));
        }
        let panel = Panel::read(&plan, &state, 48 << 20, 0.95, 8_500);
        assert!(!panel.servers[0].silent && panel.servers[1].silent);
        assert!((panel.servers[0].aggregate_share - 0.5).abs() < 1e-9);
        assert!(panel.render().contains("SILENT"));
    }
}

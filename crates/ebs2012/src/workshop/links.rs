//! The links of the causal chain a workshop stops at, and how each is recognised in the run.
//!
//! A link is reached by what the journal says happened (folded into [`RunState`]), never by
//! the clock: the steps of the timeline, and the moments the processes reach on their own (the
//! first failed report of a stale agent, the first leak alarm, ...). [`Link::reached`] is a pure
//! function of the run state, so it is unit-tested on synthetic states.

use std::fmt::Write as _;

use crate::kinds::StepKind;
use crate::plan::Plan;
use crate::run_state::{RunState, ServerState};

/// One link of the 2012 chain, in the order they happened then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Link {
    /// The old collector is gone; its replacement listens on a new address.
    CollectorReplaced,
    /// The collector's record changed on some DNS servers only.
    DnsUpdated,
    /// An agent behind a stale DNS server failed to report.
    FirstFailedReport,
    /// The per-process leak alarm fired.
    FirstLeakAlarm,
    /// A stale agent leaked past the headroom the aggregate alarm leaves, and it is silent.
    AggregateSilent,
    /// Control counted a server as not serving I/O.
    FirstServerCannotServe,
    /// A volume is stuck.
    FirstStuckVolume,
    /// A failover found no healthy capacity.
    FailoverWithoutCapacity,
    /// DNS is fixed everywhere.
    Repair,
    /// The stale agents were restarted, and every volume serves again.
    Recovery,
}

impl Link {
    /// Every link, in chain order.
    pub const ALL: [Link; 10] = [
        Link::CollectorReplaced,
        Link::DnsUpdated,
        Link::FirstFailedReport,
        Link::FirstLeakAlarm,
        Link::AggregateSilent,
        Link::FirstServerCannotServe,
        Link::FirstStuckVolume,
        Link::FailoverWithoutCapacity,
        Link::Repair,
        Link::Recovery,
    ];

    /// Its name in the journal, `ctl status` and the page.
    pub fn name(self) -> &'static str {
        match self {
            Link::CollectorReplaced => "collector_replaced",
            Link::DnsUpdated => "dns_updated",
            Link::FirstFailedReport => "first_failed_report",
            Link::FirstLeakAlarm => "first_leak_alarm",
            Link::AggregateSilent => "aggregate_alarm_silent",
            Link::FirstServerCannotServe => "first_server_cannot_serve",
            Link::FirstStuckVolume => "first_stuck_volume",
            Link::FailoverWithoutCapacity => "failover_without_capacity",
            Link::Repair => "repair",
            Link::Recovery => "recovery",
        }
    }

    /// The link's number in the chain, from 1.
    pub fn number(self) -> usize {
        Link::ALL.iter().position(|l| *l == self).unwrap_or(0) + 1
    }

    /// What this run shows of the link, with its evidence, if the run has reached it.
    pub fn reached(self, run: &Run<'_>) -> Option<String> {
        let state = run.state;
        match self {
            Link::CollectorReplaced => state.injected_at(StepKind::ReplaceCollector).map(|_| {
                format!(
                    "the old collector ({}) is gone; its replacement listens on {}",
                    run.plan.collector_old, run.plan.collector_new
                )
            }),
            Link::DnsUpdated => state
                .injected_at(StepKind::DnsUpdate)
                .map(|_| dns_split(run)),
            Link::FirstFailedReport => first_failed_report(run),
            Link::FirstLeakAlarm => first_alarmed(run),
            Link::AggregateSilent => aggregate_silent(run),
            Link::FirstServerCannotServe => first_by(run, |s| s.unhealthy_at_ms)
                .map(|(id, _)| format!("control counts {id} as not serving I/O: its probes fail")),
            Link::FirstStuckVolume => first_by(run, |s| s.first_stuck_at_ms).map(|(id, _)| {
                let v = &state.volumes;
                format!(
                    "{} volume(s) stuck; the first held a replica on {id}",
                    v.stuck_now.max(1)
                )
            }),
            Link::FailoverWithoutCapacity => {
                (state.volumes.failovers_without_capacity > 0).then(|| {
                    format!(
                        "{} of {} failovers found no server with a free slot",
                        state.volumes.failovers_without_capacity, state.volumes.failovers_attempted
                    )
                })
            }
            Link::Repair => repaired(run),
            Link::Recovery => recovered(run),
        }
    }
}

/// A link is its name everywhere: the journal, `ctl status` and the page.
impl serde::Serialize for Link {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// What a link is judged from.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// Who is stale, and the addresses.
    pub plan: &'a Plan,
    /// What happened so far.
    pub state: &'a RunState,
    /// Each server's memory budget.
    pub budget_bytes: u64,
    /// The 2012 aggregate alarm's threshold (share of the budget).
    pub aggregate_threshold: f64,
    /// Whether the participants repaired DNS on every stale server (`ctl repair`).
    pub participants_repaired: bool,
    /// Whether the participants restarted every stale agent (`ctl restart`).
    pub participants_restarted: bool,
}

fn dns_split(run: &Run<'_>) -> String {
    let names = |stale: bool| {
        (run.plan.dns.iter())
            .filter(|d| d.stale == stale)
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let stale = names(true);
    let mut s = format!(
        "{} now answer{} {}",
        names(false),
        if run.plan.dns.iter().filter(|d| !d.stale).count() == 1 {
            "s"
        } else {
            ""
        },
        run.plan.collector_new
    );
    if !stale.is_empty() {
        let _ = write!(s, "; {stale} still answer(s) {}", run.plan.collector_old);
    }
    s
}

/// Stale servers, in id order.
fn stale_servers<'a>(run: &'a Run<'_>) -> impl Iterator<Item = (&'a str, &'a ServerState)> + 'a {
    (run.plan.servers.iter())
        .filter(|s| s.stale)
        .filter_map(|s| run.state.servers.get(&s.id).map(|st| (s.id.as_str(), st)))
}

/// The server whose `at` is earliest, with that time.
fn first_by(run: &Run<'_>, at: impl Fn(&ServerState) -> Option<u64>) -> Option<(String, u64)> {
    (run.state.servers.iter())
        .filter_map(|(id, s)| at(s).map(|t| (id.clone(), t)))
        .min_by_key(|(_, t)| *t)
}

fn first_failed_report(run: &Run<'_>) -> Option<String> {
    run.state.injected_at(StepKind::DnsUpdate)?;
    let failing: Vec<String> = stale_servers(run)
        .filter(|(_, s)| s.failed_reports() > 0)
        .map(|(id, s)| format!("{id} ({} failed)", s.failed_reports()))
        .collect();
    let dns = stale_dns(run);
    (!failing.is_empty()).then(|| {
        format!(
            "agents behind {dns} fail to report to {}: {}",
            run.plan.collector_old,
            failing.join(", ")
        )
    })
}

fn stale_dns(run: &Run<'_>) -> String {
    (run.plan.dns.iter())
        .filter(|d| d.stale)
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_alarmed(run: &Run<'_>) -> Option<String> {
    let (id, _) = first_by(run, |s| s.leak_at_ms)?;
    let stale = run.plan.servers.iter().any(|s| s.id == id && s.stale);
    Some(format!(
        "the per-process leak alarm fired on {id}'s agent (a {} agent)",
        if stale { "stale" } else { "fresh" }
    ))
}

/// A stale agent has grown past the headroom the aggregate threshold leaves over the budget,
/// and no aggregate alarm fired on its server.
fn aggregate_silent(run: &Run<'_>) -> Option<String> {
    let update = run.state.injected_at(StepKind::DnsUpdate)?;
    let headroom = run.budget_bytes as f64 * (1.0 - run.aggregate_threshold).max(0.0);
    stale_servers(run).find_map(|(id, s)| {
        let before = s.agent_rss_before(update.max(1))?;
        let (_, now) = s.agent_rss().last()?;
        let grown = now.saturating_sub(before);
        (grown as f64 > headroom && s.aggregate_at_ms.is_none()).then(|| {
            format!(
                "{id}'s agent grew {} since the update, more than the {} of headroom a {:.0}% \
                 aggregate threshold leaves; the cache gave that memory back, so the aggregate \
                 alarm is silent",
                mib(grown),
                mib(headroom as u64),
                run.aggregate_threshold * 100.0
            )
        })
    })
}

fn repaired(run: &Run<'_>) -> Option<String> {
    if run.participants_repaired {
        return Some("you repaired the collector's record on every stale DNS server".into());
    }
    run.state.injected_at(StepKind::DnsRepair).map(|_| {
        format!(
            "the timeline repaired DNS: every server answers {}",
            run.plan.collector_new
        )
    })
}

fn recovered(run: &Run<'_>) -> Option<String> {
    let restarted =
        run.participants_restarted || run.state.injected_at(StepKind::Restart).is_some();
    let v = &run.state.volumes;
    let volumes_fine = !v.ever_unhealthy || (v.recovered_at_ms.is_some() && v.stuck_now == 0);
    (restarted && volumes_fine).then(|| {
        if v.ever_unhealthy {
            format!(
                "the stale agents restarted; every volume serves again (peak {} stuck)",
                v.stuck_peak
            )
        } else {
            "the stale agents restarted; no volume ever left healthy".to_owned()
        }
    })
}

/// `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::run_state::Incarnation;

    /// Four servers behind dns-a and dns-b, of which dns-b is stale.
    pub(crate) fn plan() -> Plan {
        let dns = ["dns-a".to_owned(), "dns-b".to_owned()];
        Plan::new(7, 1, 4, &dns, &["dns-b".to_owned()].into_iter().collect())
    }

    fn run<'a>(plan: &'a Plan, state: &'a RunState) -> Run<'a> {
        Run {
            plan,
            state,
            budget_bytes: 48 << 20,
            aggregate_threshold: 0.95,
            participants_repaired: false,
            participants_restarted: false,
        }
    }

    fn updated(plan: &Plan) -> RunState {
        let mut state = RunState::with_servers(plan.servers.iter().map(|s| s.id.as_str()));
        state.steps.push((StepKind::ReplaceCollector, 4_000));
        state.steps.push((StepKind::DnsUpdate, 4_000));
        state
    }

    fn stale_id(plan: &Plan) -> String {
        plan.servers.iter().find(|s| s.stale).unwrap().id.clone()
    }

    #[test]
    fn nothing_is_reached_before_the_timeline_starts() {
        let plan = plan();
        let state = RunState::with_servers(plan.servers.iter().map(|s| s.id.as_str()));
        for link in Link::ALL {
            assert_eq!(link.reached(&run(&plan, &state)), None, "{link:?}");
        }
    }

    #[test]
    fn the_update_names_who_moved_and_who_did_not() {
        let plan = plan();
        let state = updated(&plan);
        let said = Link::DnsUpdated.reached(&run(&plan, &state)).unwrap();
        assert!(
            said.contains("dns-a now answers") && said.contains("dns-b still"),
            "{said}"
        );
    }

    #[test]
    fn a_failed_report_counts_only_on_a_stale_server() {
        let plan = plan();
        let mut state = updated(&plan);
        let fresh = plan.servers.iter().find(|s| !s.stale).unwrap().id.clone();
        let failed = |n| Incarnation {
            failed_reports: n,
            ..Default::default()
        };
        state
            .servers
            .get_mut(&fresh)
            .unwrap()
            .agents
            .push(failed(3));
        assert_eq!(Link::FirstFailedReport.reached(&run(&plan, &state)), None);
        let stale = stale_id(&plan);
        state
            .servers
            .get_mut(&stale)
            .unwrap()
            .agents
            .push(failed(2));
        let said = Link::FirstFailedReport
            .reached(&run(&plan, &state))
            .unwrap();
        assert!(said.contains(&format!("{stale} (2 failed)")), "{said}");
    }

    #[test]
    fn the_aggregate_alarm_is_silent_once_a_stale_agent_outgrows_its_headroom() {
        let plan = plan();
        let mut state = updated(&plan);
        let stale = stale_id(&plan);
        let grow = |state: &mut RunState, bytes: u64| {
            let agent = Incarnation {
                rss: vec![(3_000, 10 << 20), (9_000, (10 << 20) + bytes)],
                ..Default::default()
            };
            state.servers.get_mut(&stale).unwrap().agents = vec![agent];
        };
        grow(&mut state, 2 << 20);
        assert_eq!(
            Link::AggregateSilent.reached(&run(&plan, &state)),
            None,
            "2 MiB < 2.4 MiB"
        );
        grow(&mut state, 3 << 20);
        let said = Link::AggregateSilent.reached(&run(&plan, &state)).unwrap();
        assert!(
            said.contains("grew 3.0 MiB") && said.contains("2.4 MiB"),
            "{said}"
        );
        state.servers.get_mut(&stale).unwrap().aggregate_at_ms = Some(9_000);
        assert_eq!(
            Link::AggregateSilent.reached(&run(&plan, &state)),
            None,
            "it fired"
        );
    }

    #[test]
    fn recovery_needs_the_restart_and_every_volume_back() {
        let plan = plan();
        let mut state = updated(&plan);
        state.volumes.ever_unhealthy = true;
        state.volumes.stuck_now = 2;
        let mut r = run(&plan, &state);
        r.participants_restarted = true;
        assert_eq!(Link::Recovery.reached(&r), None);
        state.volumes.stuck_now = 0;
        state.volumes.recovered_at_ms = Some(20_000);
        let mut r = run(&plan, &state);
        r.participants_restarted = true;
        assert!(Link::Recovery.reached(&r).is_some());
    }

    #[test]
    fn links_are_numbered_in_chain_order() {
        assert_eq!(Link::CollectorReplaced.number(), 1);
        assert_eq!(Link::Recovery.number(), 10);
    }
}

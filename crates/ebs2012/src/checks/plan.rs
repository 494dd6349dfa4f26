//! Which checks a scenario's run gets, decided before it starts, in verdict-table order.

use outage_lab_proto::report::ExpectationResult;

use super::customers;
use super::expect::{self, Bound, Group};
use super::run;
use crate::check::{Check, CheckInput};
use crate::scenario::Scenario;
use crate::scenario::expect::Expectations;
use outage_lab_engine::checks::RunFacts;

/// Every check a run of `scenario` gets, in the order of the verdict table.
pub fn planned(scenario: &Scenario) -> Vec<Check<'_>> {
    let mut out = vec![Check::new("processes_stayed_up", run::processes_stayed_up)];
    for step in &scenario.timeline {
        out.extend(step.checks());
    }
    out.extend(memory_checks(&scenario.expect));
    if scenario.load.runs() {
        out.push(Check::new(
            "acknowledged_writes_read_back",
            expect::acknowledged_writes_read_back,
        ));
    }
    out.extend(volume_checks(&scenario.expect));
    out.extend(customer_checks(&scenario.expect));
    out
}

/// The checks on the agents' memory and the alarms watching it that `e` asks for: the stale
/// share, growth, the two alarms, recovery.
fn memory_checks(e: &Expectations) -> Vec<Check<'_>> {
    let mut out = Vec::new();
    if let Some(share) = &e.stale_share {
        out.push(Check::new("stale_share", move |i| {
            expect::stale_share(i, share.value)
        }));
    }
    out.extend(growth_checks(e));
    if let Some(which) = e.leak_alarm {
        out.push(Check::new("leak_alarm", move |i| {
            expect::leak_alarm(i, which)
        }));
    }
    if let Some(rule) = e.aggregate_alarm {
        out.push(Check::new("aggregate_alarm", move |i| {
            expect::aggregate_alarm(i, rule)
        }));
    }
    if let Some(within) = e.memory_recovers_within {
        out.push(Check::new("memory_recovers_within", move |i| {
            expect::memory_recovers(i, within)
        }));
    }
    out
}

/// The bounds `e` sets on how much stale and fresh agents grow, one check each.
fn growth_checks(e: &Expectations) -> Vec<Check<'static>> {
    let growth = [
        (
            "stale_agents_grow_at_least",
            Group::Stale,
            e.stale_agents_grow_at_least.map(Bound::AtLeast),
        ),
        (
            "stale_agents_grow_at_most",
            Group::Stale,
            e.stale_agents_grow_at_most.map(Bound::AtMost),
        ),
        (
            "fresh_agents_grow_at_most",
            Group::Fresh,
            e.fresh_agents_grow_at_most.map(Bound::AtMost),
        ),
    ];
    let mut out = Vec::new();
    for (name, group, bound) in growth {
        if let Some(bound) = bound {
            out.push(Check::new(name, move |i| {
                expect::agents_grow(i, name, group, bound)
            }));
        }
    }
    out
}

/// The checks on volumes that `e` asks for: how many get stuck, failover's capacity, recovery.
fn volume_checks(e: &Expectations) -> Vec<Check<'_>> {
    let mut out = Vec::new();
    if let Some(rule) = e.stuck_volumes {
        out.push(Check::new("stuck_volumes", move |i| {
            expect::stuck_volumes(i, rule)
        }));
    }
    if let Some(rule) = e.failover_capacity {
        out.push(Check::new("failover_capacity", move |i| {
            expect::failover_capacity(i, rule)
        }));
    }
    if let Some(within) = &e.volumes_recover_within {
        out.push(Check::new("volumes_recover_within", move |i| {
            expect::volumes_recover(i, within.value.get())
        }));
    }
    out
}

/// The checks on customers and the control plane's API that `e` asks for.
fn customer_checks(e: &Expectations) -> Vec<Check<'_>> {
    let mut out = Vec::new();
    if let Some(least) = &e.bystander_api_success_at_least {
        out.push(Check::new("bystander_api_success_at_least", move |i| {
            customers::bystander_api_success(i, least.value.0)
        }));
    }
    if let Some(within) = &e.affected_customers_recover_within {
        out.push(Check::new("affected_customers_recover_within", move |i| {
            customers::affected_customers_recover(i, within.value.get())
        }));
    }
    if let Some(rule) = e.api_calls_throttled {
        out.push(Check::new("api_calls_throttled", move |i| {
            customers::api_calls_throttled(i, rule)
        }));
    }
    out
}

/// Judges a finished run: the planned checks, framed by the rows about the run itself.
pub fn judge(
    scenario: &Scenario,
    input: &CheckInput<'_>,
    facts: &RunFacts,
) -> Vec<ExpectationResult> {
    let mut out = outage_lab_engine::checks::before(facts, input.end_ms);
    out.extend(planned(scenario).iter().map(|c| c.judge(input)));
    out.extend(outage_lab_engine::checks::after(facts));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole, RssSample};

    use std::net::IpAddr;

    use outage_lab_ebs_events::Role;
    use outage_lab_proto::ByteSize;

    use super::*;
    use crate::plan::Plan;
    use crate::run_state::RunState;
    use crate::steps::dns_update::missed;

    const SCENARIO: &str = "\
name: t
duration: 20s
fleet: { servers: 3 }
dns: { servers: [dns-a, dns-b, dns-c] }
load: { requests_per_second: 0 }
timeline:
  - replace_collector: { at: 1s }
  - dns_update: { at: 1s, propagate_to: [dns-a, dns-b] }
expect:
  stale_share: 0.3333
  stale_agents_grow_at_least: 8MiB
  fresh_agents_grow_at_most: 2MiB
  leak_alarm: exactly_stale_agents
  aggregate_alarm: not_before_leak_alarm
";
    const MIB: u64 = 1024 * 1024;

    /// A synthetic run: three servers, the one behind dns-c stale. `tweak` breaks one thing.
    struct Fixture {
        scenario: Scenario,
        plan: Plan,
        entries: Vec<JournalEntry>,
    }

    impl Fixture {
        fn new() -> Self {
            let scenario = Scenario::parse(SCENARIO, "t.yaml").expect("valid");
            let stale: BTreeSet<String> = missed(&scenario.timeline, &scenario.dns_names());
            let plan = Plan::new(50, 1, 3, &scenario.dns_names(), &stale);
            let mut f = Self {
                scenario,
                plan,
                entries: Vec::new(),
            };
            let old = IpAddr::V4(f.plan.collector_old);
            let new = IpAddr::V4(f.plan.collector_new);
            let servers = f.plan.servers.clone();
            for (i, s) in servers.iter().enumerate() {
                let pid = 100 + i as u32;
                f.push(
                    0,
                    &format!("agent-{}", s.id),
                    None,
                    Event::ProcessStarted {
                        name: format!("agent-{}", s.id),
                        role: Role::Agent.to_string(),
                        server: Some(s.id.clone()),
                        pid,
                    },
                );
                f.push(
                    10,
                    "x",
                    Some(pid),
                    Event::AgentResolved {
                        server: s.id.clone(),
                        addrs: vec![old],
                    },
                );
            }
            f.push(
                500,
                "harness",
                None,
                Event::Phase {
                    name: outage_lab_proto::RunPhase::Timeline,
                    detail: String::new(),
                },
            );
            f.push(
                1000,
                "harness",
                None,
                Event::FaultInjected {
                    action: "replace_collector".into(),
                    detail: String::new(),
                },
            );
            f.push(
                1000,
                "harness",
                None,
                Event::FaultInjected {
                    action: "dns_update".into(),
                    detail: String::new(),
                },
            );
            for t in (0..20_000).step_by(250) {
                let samples = servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let leaked = if s.stale && t > 1000 {
                            (t - 1000) * 640 * 1024 / 1000
                        } else {
                            0
                        };
                        RssSample {
                            server: s.id.clone(),
                            role: ProcessRole::Agent,
                            pid: 100 + i as u32,
                            rss_bytes: 4 * MIB + leaked,
                        }
                    })
                    .collect();
                f.push(t, "watchdog", None, Event::RssSweep { samples });
            }
            for (i, s) in servers.iter().enumerate() {
                let pid = 100 + i as u32;
                if s.stale {
                    f.push(
                        6000,
                        "watchdog",
                        None,
                        Event::Alarm {
                            alarm: AlarmKind::Leak,
                            server: s.id.clone(),
                            role: Some(ProcessRole::Agent),
                            pid: Some(pid),
                            detail: String::new(),
                        },
                    );
                    f.push(
                        19_000,
                        "x",
                        Some(pid),
                        Event::AgentStats {
                            server: s.id.clone(),
                            ok_reports: 5,
                            failed_reports: 180,
                            pending_reports: 180,
                            retained_bytes: 11 * MIB,
                        },
                    );
                } else {
                    f.push(
                        2100,
                        "x",
                        Some(pid),
                        Event::AgentResolved {
                            server: s.id.clone(),
                            addrs: vec![new],
                        },
                    );
                }
            }
            f
        }

        fn push(&mut self, t_ms: u64, source: &str, pid: Option<u32>, event: Event) {
            self.entries.push(JournalEntry {
                t_ms,
                source: source.into(),
                source_pid: pid,
                event,
            });
        }

        fn check(&self) -> Vec<ExpectationResult> {
            let mut entries = self.entries.clone();
            entries.sort_by_key(|e| e.t_ms);
            let mut state = RunState::with_servers(self.plan.servers.iter().map(|s| s.id.as_str()));
            for e in &entries {
                state.apply(e);
            }
            let input = CheckInput {
                plan: &self.plan,
                state: &state,
                end_ms: 20_000,
                writes: None,
                customers: None,
                external_agent: false,
            };
            judge(&self.scenario, &input, &RunFacts::default())
        }

        fn stale_id(&self) -> String {
            self.plan
                .stale_servers()
                .next()
                .expect("one stale server")
                .id
                .clone()
        }

        fn fresh_id(&self) -> String {
            self.plan
                .servers
                .iter()
                .find(|s| !s.stale)
                .expect("fresh")
                .id
                .clone()
        }
    }

    fn verdict(results: &[ExpectationResult], name: &str) -> bool {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no {name} in {results:?}"))
            .passed
    }

    #[test]
    fn the_2012_shape_passes_every_check() {
        let results = Fixture::new().check();
        assert!(results.iter().all(|r| r.passed), "{results:#?}");
        assert_eq!(results.len(), 7);
    }

    #[test]
    fn a_stale_agent_that_resolved_the_new_address_means_the_fault_did_not_take_effect() {
        let mut f = Fixture::new();
        let id = f.stale_id();
        let new = IpAddr::V4(f.plan.collector_new);
        f.push(
            3000,
            "x",
            None,
            Event::AgentResolved {
                server: id,
                addrs: vec![new],
            },
        );
        let results = f.check();
        assert!(!verdict(&results, "fault_took_effect"));
        assert!(
            !verdict(&results, "stale_share"),
            "the observed stale count drops to 0"
        );
    }

    #[test]
    fn a_fresh_agent_that_never_moved_means_the_fault_did_not_take_effect() {
        let mut f = Fixture::new();
        let id = f.fresh_id();
        f.entries.retain(|e| !matches!(&e.event, Event::AgentResolved { server, .. } if *server == id && e.t_ms > 1000));
        assert!(!verdict(&f.check(), "fault_took_effect"));
    }

    #[test]
    fn a_fresh_agent_that_moved_before_the_update_was_journaled_still_moved() {
        // The update is journaled once every reached DNS server took the record; an agent
        // behind the first one may resolve the replacement a moment before that.
        let mut f = Fixture::new();
        let id = f.fresh_id();
        for e in &mut f.entries {
            if matches!(&e.event, Event::AgentResolved { server, .. } if *server == id)
                && e.t_ms > 1000
            {
                e.t_ms = 999;
            }
        }
        assert!(verdict(&f.check(), "fault_took_effect"));
    }

    #[test]
    fn a_leak_alarm_on_a_fresh_agent_or_a_storage_process_fails_the_leak_check() {
        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        f.push(
            7000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Leak,
                server: fresh,
                role: Some(ProcessRole::Agent),
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "leak_alarm"));

        let mut f = Fixture::new();
        let stale = f.stale_id();
        f.push(
            7000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Leak,
                server: stale,
                role: Some(ProcessRole::Storage),
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "leak_alarm"));
    }

    #[test]
    fn a_missed_stale_agent_fails_the_leak_check() {
        let mut f = Fixture::new();
        f.entries
            .retain(|e| !matches!(e.event, Event::Alarm { .. }));
        let results = f.check();
        assert!(!verdict(&results, "leak_alarm"));
        // With no leak alarm at all, the aggregate check has nothing to compare against: silent is fine.
        assert!(verdict(&results, "aggregate_alarm"));
    }

    #[test]
    fn an_aggregate_alarm_before_the_first_leak_alarm_fails() {
        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        f.push(
            2000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Aggregate,
                server: fresh,
                role: None,
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "aggregate_alarm"));
    }

    #[test]
    fn growth_below_the_bound_fails_and_growth_above_the_fresh_limit_fails() {
        let mut f = Fixture::new();
        f.scenario.expect.stale_agents_grow_at_least = Some(ByteSize::mib(64));
        assert!(!verdict(&f.check(), "stale_agents_grow_at_least"));

        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        let pid = f
            .plan
            .servers
            .iter()
            .position(|s| s.id == fresh)
            .expect("index") as u32
            + 100;
        f.push(
            15_000,
            "watchdog",
            None,
            Event::RssSweep {
                samples: vec![RssSample {
                    server: fresh,
                    role: ProcessRole::Agent,
                    pid,
                    rss_bytes: 7 * MIB,
                }],
            },
        );
        assert!(!verdict(&f.check(), "fresh_agents_grow_at_most"));
    }

    #[test]
    fn a_process_that_died_unasked_fails_the_run() {
        let mut f = Fixture::new();
        f.push(
            5000,
            "storage-s000",
            Some(7),
            Event::ProcessExited {
                name: "storage-s000".into(),
                pid: 7,
                status: "killed by signal 9".into(),
                expected: false,
            },
        );
        let results = f.check();
        assert!(!verdict(&results, "processes_stayed_up"));
        assert!(results[0].detail.contains("storage-s000"));
    }

    #[test]
    fn memory_recovery_needs_a_restart_in_the_timeline() {
        let mut f = Fixture::new();
        f.scenario.expect.memory_recovers_within = Some(ByteSize::mib(2));
        let results = f.check();
        assert!(!verdict(&results, "memory_recovers_within"));
    }

    /// The book's reference table has a row for every check a shipped scenario plans, as it has
    /// one for every step and fix.
    #[test]
    fn the_scenarios_chapter_has_a_table_row_for_every_planned_check() {
        let chapter = include_str!("../../../../docs/src/scenarios.md");
        let first_cells: BTreeSet<&str> = (chapter.lines())
            .filter_map(|line| line.split('|').nth(1))
            .map(str::trim)
            .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir)
            .expect("fixtures/scenarios")
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "yaml") || !crate::scenario::is_ours(&path) {
                continue;
            }
            let scenario = Scenario::load(&path, &[]).expect("a shipped scenario loads");
            for check in planned(&scenario) {
                seen += 1;
                let cell = format!("`{}`", check.name);
                assert!(
                    first_cells.contains(cell.as_str()),
                    "docs/src/scenarios.md has no table row for the check {cell} ({})",
                    path.display()
                );
            }
        }
        assert!(
            seen > 20,
            "only {seen} checks planned by the shipped scenarios"
        );
    }
}

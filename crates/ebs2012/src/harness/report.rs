//! Turning the run state into `report.json`, the periodic status line and the verdict table.

use std::time::Duration;

use outage_lab_proto::report::{
    AgentReport, CustomersReport, ExpectationResult, FixReport, HarnessUsage, LagReport,
    LoadReport, Report, ServerAlarms, ServerReport, StorageReport, Verdict, VolumesReport,
};

use crate::load::WriteCheck;
use crate::plan::Plan;
use crate::run_state::{RunState, ServerState};

/// Builds the report from what happened.
pub fn build(
    scenario: &str,
    seed: u64,
    plan: &Plan,
    state: &RunState,
    outcome: Outcome<'_>,
) -> Report {
    let empty = ServerState::default();
    let servers = plan
        .servers
        .iter()
        .map(|p| {
            let s = state.servers.get(&p.id).unwrap_or(&empty);
            let first_life = s.agents.first();
            let last_life = s.agents.last();
            // The cache's low point after it first filled: skip samples up to the first peak.
            let warm = s
                .cache
                .iter()
                .position(|(_, b)| *b > 0)
                .unwrap_or(s.cache.len());
            ServerReport {
                id: p.id.clone(),
                dns_server: p.dns_server.clone(),
                stale: p.stale,
                agent: AgentReport {
                    pid: last_life.map(|a| a.pid),
                    rss_first_bytes: first_life.and_then(|a| a.rss.first()).map(|(_, b)| *b),
                    rss_peak_bytes: s.agent_rss().map(|(_, b)| b).max(),
                    rss_last_bytes: last_life.and_then(|a| a.rss.last()).map(|(_, b)| *b),
                    failed_reports: s.failed_reports(),
                    ok_reports: s.ok_reports(),
                },
                storage: StorageReport {
                    pid: s.storage_pid,
                    rss_peak_bytes: s.storage_rss.iter().map(|(_, b)| *b).max(),
                    cache_min_bytes: s.cache[warm..].iter().map(|(_, b)| *b).min(),
                    degraded_at_ms: s.degraded_at_ms,
                },
                alarms: ServerAlarms {
                    leak_at_ms: s.leak_at_ms,
                    storage_leak_at_ms: s.storage_leak_at_ms,
                    aggregate_at_ms: s.aggregate_at_ms,
                },
                degraded_at_ms: s.unhealthy_at_ms,
                first_stuck_at_ms: s.first_stuck_at_ms,
                took_failover_load: !s.took_failover_from.is_empty(),
            }
        })
        .collect();
    Report {
        scenario: scenario.to_owned(),
        seed,
        verdict: outcome.verdict,
        wall_ms: u64::try_from(outcome.wall.as_millis()).unwrap_or(u64::MAX),
        servers,
        expectations: outcome.expectations,
        volumes: VolumesReport {
            total: state.volumes.states.len() as u64,
            stuck_peak: state.volumes.stuck_peak,
            stuck_peak_at_ms: state.volumes.stuck_peak_at_ms,
            stuck_final: state.volumes.stuck_now,
            failovers_attempted: state.volumes.failovers_attempted,
            failovers_without_capacity: state.volumes.failovers_without_capacity,
            acknowledged_writes: outcome.acknowledged_writes,
            lost_acknowledged_writes: outcome.writes.map_or(0, |w| w.lost.len() as u64),
            recovered_at_ms: state.volumes.recovered_at_ms,
        },
        load: outcome.load.clone(),
        harness: self_usage(),
        fixes: outcome.fixes,
        customers: outcome.customers,
        lag: Some(outcome.lag),
    }
}

/// The harness's own CPU time and peak memory so far (its children are not counted).
fn self_usage() -> HarnessUsage {
    // SAFETY: getrusage writes into the struct we pass and has no other preconditions; an
    // all-zero rusage is a valid value to start from.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return HarnessUsage::default();
        }
        usage
    };
    let ms = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1000 + u64::try_from(t.tv_usec).unwrap_or(0) / 1000
    };
    HarnessUsage {
        cpu_user_ms: ms(usage.ru_utime),
        cpu_system_ms: ms(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    }
}

/// How the run ended, and what the customer load saw.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The verdict.
    pub verdict: Verdict,
    /// Wall time of the run.
    pub wall: Duration,
    /// Every checked expectation.
    pub expectations: Vec<ExpectationResult>,
    /// Request counters and latency over the whole run.
    pub load: LoadReport,
    /// Writes acknowledged.
    pub acknowledged_writes: u64,
    /// The read-back check, if it ran.
    pub writes: Option<&'a WriteCheck>,
    /// The fixes that were on, and what each did.
    pub fixes: Vec<FixReport>,
    /// The customer accounts, when the scenario has them.
    pub customers: Option<CustomersReport>,
    /// How late the run's scheduled work fired.
    pub lag: LagReport,
}

fn mib(b: f64) -> String {
    format!("{:.1}MiB", b / (1024.0 * 1024.0))
}

/// One line of numbers for the person watching: memory of stale and fresh agents, alarms. An
/// `external` agent tells nothing of its reports: the replacement collector's count stands in.
pub fn status_line(now_ms: u64, plan: &Plan, state: &RunState, external: bool) -> String {
    let mut groups = [(0usize, 0f64, 0usize), (0usize, 0f64, 0usize)]; // (count, rss sum, leak alarms)
    let mut other_alarms = 0;
    let mut failed = 0;
    let mut ok = 0;
    for p in &plan.servers {
        let Some(s) = state.servers.get(&p.id) else {
            continue;
        };
        failed += s.failed_reports();
        ok += s.ok_reports();
        let g = &mut groups[usize::from(p.stale)];
        if let Some(last) = s.agents.last().and_then(|a| a.rss.last()) {
            g.0 += 1;
            g.1 += last.1 as f64;
        }
        if s.leak_at_ms.is_some() {
            g.2 += 1;
        }
        if s.storage_leak_at_ms.is_some() {
            other_alarms += 1;
        }
    }
    let mean = |g: (usize, f64, usize)| {
        if g.0 == 0 {
            "-".to_owned()
        } else {
            mib(g.1 / g.0 as f64)
        }
    };
    let stale_n = plan.stale_servers().count();
    let aggregate = state
        .servers
        .values()
        .filter(|s| s.aggregate_at_ms.is_some())
        .count();
    let unhealthy = state
        .servers
        .values()
        .filter(|s| s.unhealthy_at_ms.is_some())
        .count();
    let v = &state.volumes;
    let reports = if external {
        let counted: u64 = (state.servers.values())
            .map(|s| s.reports_to_new_collector_by(u64::MAX))
            .sum();
        format!("collector-new counted {counted} reports")
    } else {
        format!("reports ok {ok}, failed {failed}")
    };
    format!(
        "t={:>5.1}s  agent RSS mean: stale {} / fresh {} | leak alarms: {}/{stale_n} stale, {} fresh, {other_alarms} storage | aggregate (2012) alarms: {aggregate} | {reports} | volumes stuck {}/{} (peak {}), servers ever unhealthy {unhealthy}",
        now_ms as f64 / 1000.0,
        mean(groups[1]),
        mean(groups[0]),
        groups[1].2,
        groups[0].2,
        v.stuck_now,
        v.states.len(),
        v.stuck_peak,
    )
}

/// The verdict table printed at the end of a run.
pub fn verdict_table(report: &Report) -> String {
    let notes: Vec<String> = report.lag.iter().map(|lag| lag.summary()).collect();
    outage_lab_engine::checks::verdict_table(&report.expectations, &notes)
}

/// `junit.xml`: one test case per expectation, so CI systems show the verdict natively; a failed
/// expectation is a `<failure>` carrying its evidence.
pub fn junit(report: &Report) -> String {
    let properties = [
        ("seed", report.seed.to_string()),
        ("servers", report.servers.len().to_string()),
    ];
    outage_lab_engine::checks::junit(
        &report.scenario,
        &report.expectations,
        report.wall_ms,
        &properties,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(expectations: Vec<ExpectationResult>) -> Report {
        Report {
            scenario: "ebs-2012-10-22".into(),
            seed: 7,
            verdict: Verdict::Fail,
            wall_ms: 45_250,
            servers: Vec::new(),
            expectations,
            volumes: VolumesReport::default(),
            load: LoadReport::default(),
            harness: HarnessUsage::default(),
            fixes: Vec::new(),
            customers: None,
            lag: None,
        }
    }

    #[test]
    fn junit_has_one_case_per_expectation_and_failures_carry_the_evidence() {
        let xml = junit(&report(vec![
            ExpectationResult {
                name: "leak_alarm".into(),
                passed: true,
                detail: "fired on 4/4".into(),
            },
            ExpectationResult {
                name: "stale_share".into(),
                passed: false,
                detail: "1 of 3 < expected \"2\" & more".into(),
            },
        ]));
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert!(
            xml.contains("<failure message=\"1 of 3 &lt; expected &quot;2&quot; &amp; more\""),
            "{xml}"
        );
        assert!(xml.contains("time=\"45.250\""));
        assert!(!xml.contains("& more"), "unescaped ampersand: {xml}");
    }

    #[test]
    fn control_characters_are_dropped_from_xml() {
        assert_eq!(outage_lab_proto::markup::escape("a\u{1}b\tc"), "ab\tc");
    }
}

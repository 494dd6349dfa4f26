//! Turning the run state into `report.json`, the periodic status line and the verdict table.

use std::time::Duration;

use outage_lab_proto::report::{
    AgentReport, ExpectationResult, Report, ServerAlarms, ServerReport, StorageReport, Verdict,
};

use super::state::{RunState, ServerState};
use crate::plan::Plan;

/// Builds the report from what happened.
pub fn build(
    scenario: &str,
    seed: u64,
    verdict: Verdict,
    wall: Duration,
    plan: &Plan,
    state: &RunState,
    expectations: Vec<ExpectationResult>,
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
            }
        })
        .collect();
    Report {
        scenario: scenario.to_owned(),
        seed,
        verdict,
        wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
        servers,
        expectations,
    }
}

fn mib(b: f64) -> String {
    format!("{:.1}MiB", b / (1024.0 * 1024.0))
}

/// One line of numbers for the person watching: memory of stale and fresh agents, alarms.
pub fn status_line(now_ms: u64, plan: &Plan, state: &RunState) -> String {
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
    format!(
        "t={:>5.1}s  agent RSS mean: stale {} / fresh {} | leak alarms: {}/{stale_n} stale, {} fresh, {other_alarms} storage | aggregate (2012) alarms: {aggregate} | reports ok {ok}, failed {failed}",
        now_ms as f64 / 1000.0,
        mean(groups[1]),
        mean(groups[0]),
        groups[1].2,
        groups[0].2,
    )
}

/// The verdict table printed at the end of a run.
pub fn verdict_table(report: &Report) -> String {
    let width = report
        .expectations
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(10)
        .max(11);
    let mut out = format!("{:<width$}  {:<6}  evidence\n", "expectation", "held");
    for e in &report.expectations {
        out.push_str(&format!(
            "{:<width$}  {:<6}  {}\n",
            e.name,
            if e.passed { "yes" } else { "NO" },
            e.detail
        ));
    }
    let failed = report.expectations.iter().filter(|e| !e.passed).count();
    out.push_str(&match report.verdict {
        Verdict::Pass => format!(
            "verdict: PASS ({} expectations held)",
            report.expectations.len()
        ),
        Verdict::Fail => format!(
            "verdict: FAIL ({failed} of {} expectations did not hold)",
            report.expectations.len()
        ),
    });
    out
}

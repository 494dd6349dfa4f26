//! What the 2012 fleet does on a schedule, for the run's own measure of its pace (the engine's
//! `lag`): the watchdog's sweeps, every `watchdog.sample_interval`, and each built-in agent's
//! stats, every agent's `stats_interval`. The gap between two firings of one process beyond
//! its period is how late the machine let it fire. An agent the lab did not write tells no
//! stats, so it adds nothing.

use outage_lab_ebs_events::{Event, JournalEntry};
use outage_lab_engine::lag::LagMeter;

use crate::scenario::Scenario;

/// The watchdog's sweeps.
pub const WATCHDOG_SWEEPS: &str = "watchdog_sweeps";
/// The built-in agents' stats ticks.
pub const AGENT_STATS: &str = "agent_stats";

/// Counts `entry` if it is a firing of something the fleet does on a schedule.
pub fn observe(meter: &mut LagMeter, entry: &JournalEntry, scenario: &Scenario) {
    let (source, period) = match &entry.event {
        Event::RssSweep { .. } => (WATCHDOG_SWEEPS, scenario.watchdog.sample_interval.get()),
        Event::AgentStats { .. } => (
            AGENT_STATS,
            outage_lab_agent::Config::default().stats_interval.get(),
        ),
        _ => return,
    };
    // A restarted process is a new one: its first firing starts a new count.
    let key = format!("{}:{}", entry.source, entry.source_pid.unwrap_or_default());
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    meter.tick(source, &key, entry.t_ms, period_ms);
}

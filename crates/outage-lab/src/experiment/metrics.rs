//! What one finished run came to, in numbers an experiment compares: read from the run
//! directory (`report.json`, and `journal.jsonl` folded into the same `RunState` the harness
//! judges with).

use std::path::Path;

use outage_lab_proto::report::Report;
use outage_lab_proto::{AlarmKind, Event, JournalEntry, RunPhase};
use serde::Serialize;

use super::ExperimentError;
use crate::run_state::RunState;

/// The metrics, by the name `--metric` and the tables use.
pub const NAMES: &[&str] = &[
    "stuck_peak",
    "stuck_volume_seconds",
    "error_rate",
    "writes_lost",
    "first_leak_alarm_s",
    "first_aggregate_alarm_s",
    "first_cache_aware_alarm_s",
    "leaking_until_s",
    "bystander_api_success",
];

/// One run's numbers. Times are seconds after the timeline's first step; `None` when the
/// thing never happened (no leak alarm, no agent ever leaked).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Most volumes stuck at once.
    pub stuck_peak: f64,
    /// Stuck volumes integrated over time: how much I/O customers could not do.
    pub stuck_volume_seconds: f64,
    /// Share of customer requests that failed.
    pub error_rate: f64,
    /// Acknowledged writes that did not read back.
    pub writes_lost: f64,
    /// The first leak alarm.
    pub first_leak_alarm_s: Option<f64>,
    /// The first 2012 aggregate alarm.
    pub first_aggregate_alarm_s: Option<f64>,
    /// The first cache-aware aggregate alarm (the `cache_aware_aggregate_alarm` fix's, which
    /// replaces the 2012 one in a run that has it).
    pub first_cache_aware_alarm_s: Option<f64>,
    /// The last moment an agent's retained (leaked) memory grew.
    pub leaking_until_s: Option<f64>,
    /// The lowest share of API calls answered among customers with no stuck volume (none for
    /// a scenario without customer accounts, or with no bystander).
    pub bystander_api_success: Option<f64>,
}

impl Metrics {
    /// The value of metric `name` (one of [`NAMES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "stuck_peak" => Some(self.stuck_peak),
            "stuck_volume_seconds" => Some(self.stuck_volume_seconds),
            "error_rate" => Some(self.error_rate),
            "writes_lost" => Some(self.writes_lost),
            "first_leak_alarm_s" => self.first_leak_alarm_s,
            "first_aggregate_alarm_s" => self.first_aggregate_alarm_s,
            "first_cache_aware_alarm_s" => self.first_cache_aware_alarm_s,
            "leaking_until_s" => self.leaking_until_s,
            "bystander_api_success" => self.bystander_api_success,
            _ => None,
        }
    }

    /// Reads a finished run's directory.
    pub fn read(run_dir: &Path) -> Result<Self, ExperimentError> {
        let report = read_report(&run_dir.join("report.json"))?;
        let journal = std::fs::read_to_string(run_dir.join("journal.jsonl"))
            .map_err(|source| ExperimentError::ReadJournal { source })?;
        let entries: Vec<JournalEntry> = (journal.lines())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(Self::from_run(&report, &entries))
    }

    /// The numbers of a run from its report and journal.
    pub fn from_run(report: &Report, entries: &[JournalEntry]) -> Self {
        let mut state = RunState::default();
        for e in entries {
            state.apply(e);
        }
        let end_ms = entries.last().map_or(0, |e| e.t_ms);
        let origin = state.first_injected_ms().unwrap_or(0);
        let since = |t: u64| t.saturating_sub(origin) as f64 / 1000.0;
        let load = &report.load;
        let first = |kind| state.first_alarm_ms.get(&kind).copied();
        Self {
            stuck_peak: report.volumes.stuck_peak as f64,
            stuck_volume_seconds: stuck_volume_seconds(&state.volumes.stuck_series, end_ms),
            error_rate: if load.requests == 0 {
                0.0
            } else {
                load.errors as f64 / load.requests as f64
            },
            writes_lost: report.volumes.lost_acknowledged_writes as f64,
            first_leak_alarm_s: state.first_leak_alarm_ms.map(since),
            first_aggregate_alarm_s: first(AlarmKind::Aggregate).map(since),
            first_cache_aware_alarm_s: first(AlarmKind::CacheAwareAggregate).map(since),
            leaking_until_s: last_growth(entries).map(since),
            bystander_api_success: (report.customers.iter())
                .flat_map(|c| &c.accounts)
                .filter(|a| !a.affected)
                .map(|a| a.api_success)
                .reduce(f64::min),
        }
    }
}

impl outage_lab_engine::experiment::CellMetrics for Metrics {
    fn read(run_dir: &Path) -> Result<Self, String> {
        Metrics::read(run_dir).map_err(|e| e.to_string())
    }

    fn headline(&self) -> String {
        format!("stuck peak {}", self.stuck_peak)
    }
}

/// The integral of the stuck count over time, to `end_ms`.
fn stuck_volume_seconds(series: &[(u64, u64)], end_ms: u64) -> f64 {
    let mut total = 0.0;
    for (i, (t, count)) in series.iter().enumerate() {
        let until = series.get(i + 1).map_or(end_ms, |(next, _)| *next);
        total += *count as f64 * until.saturating_sub(*t) as f64 / 1000.0;
    }
    total
}

/// The last time any agent's retained bytes grew (per process, from its own counters), until the
/// harness began to stop the run (its collector stopping then makes every agent fail once more).
fn last_growth(entries: &[JournalEntry]) -> Option<u64> {
    let mut retained: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let mut last = None;
    let stopping = |e: &JournalEntry| {
        matches!(
            &e.event,
            Event::Phase {
                name: RunPhase::Stopping,
                ..
            }
        )
    };
    for e in entries.iter().take_while(|e| !stopping(e)) {
        if let (Event::AgentStats { retained_bytes, .. }, Some(pid)) = (&e.event, e.source_pid) {
            let before = retained.insert(pid, *retained_bytes).unwrap_or(0);
            if *retained_bytes > before {
                last = Some(e.t_ms);
            }
        }
    }
    last
}

fn read_report(path: &Path) -> Result<Report, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::ReadReport {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ExperimentError::NotAReport {
        path: path.to_owned(),
        source,
    })
}

/// The median, smallest and largest of some values, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many values (seeds where the metric had one).
    pub n: usize,
}

impl Summary {
    /// Of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// A metric's value for people: counts as integers, rates as percentages, times in seconds.
pub fn show(name: &str, value: f64) -> String {
    match name {
        "error_rate" | "bystander_api_success" => format!("{:.1}%", value * 100.0),
        "stuck_peak" | "writes_lost" => format!("{value:.0}"),
        "stuck_volume_seconds" => format!("{value:.0}"),
        _ => format!("{value:.1}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_has_the_median_and_the_range() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Summary::of(&[1.0, 4.0]).expect("values").median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn shares_show_as_percentages_and_times_as_seconds() {
        assert_eq!(show("bystander_api_success", 0.995), "99.5%");
        assert_eq!(show("error_rate", 0.077), "7.7%");
        assert_eq!(show("first_leak_alarm_s", 3.94), "3.9s");
    }

    #[test]
    fn stuck_volume_seconds_integrate_the_stuck_count() {
        // 2 stuck from 1s to 3s, then 1 until 4s, then none; the run ends at 10s.
        let series = [(1_000, 2), (3_000, 1), (4_000, 0)];
        assert_eq!(stuck_volume_seconds(&series, 10_000), 5.0);
    }
}

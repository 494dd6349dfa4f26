//! What one finished run came to, in numbers an experiment compares: read from the run
//! directory (`report.json`, and `journal.jsonl` folded into the same `RunState` the harness
//! judges with).

use std::path::Path;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry};
use outage_lab_proto::RunPhase;
use outage_lab_proto::report::Report;
use serde::Serialize;

use super::ExperimentError;
use crate::kinds::FixName;
use crate::run_state::RunState;
pub use outage_lab_engine::experiment::grid::{GridMetric, Spread};

/// Declares [`Metric`] once: each variant, its name and how people read its value.
macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $kind:ident;)*) => {
        /// A number an experiment compares, one per run.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
        }

        impl Metric {
            /// Every metric, in table order.
            pub const ALL: &[Metric] = &[$(Metric::$variant,)*];
            /// Their names, as `--metric` and the tables write them.
            pub const NAMES: &[&str] = &[$($name,)*];

            /// The name `--metric` and the tables use.
            pub fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => $name,)*
                }
            }

            fn kind(self) -> Kind {
                match self {
                    $(Metric::$variant => Kind::$kind,)*
                }
            }
        }
    };
}

/// How a metric's value reads: a count, a share or a time.
enum Kind {
    Count,
    Share,
    Seconds,
}

metrics! {
    /// Most volumes stuck at once.
    StuckPeak = "stuck_peak", Count;
    /// Stuck volumes integrated over time.
    StuckVolumeSeconds = "stuck_volume_seconds", Count;
    /// Share of customer requests that failed.
    ErrorRate = "error_rate", Share;
    /// Acknowledged writes that did not read back.
    WritesLost = "writes_lost", Count;
    /// The first leak alarm.
    FirstLeakAlarmS = "first_leak_alarm_s", Seconds;
    /// The first 2012 aggregate alarm.
    FirstAggregateAlarmS = "first_aggregate_alarm_s", Seconds;
    /// The first cache-aware aggregate alarm.
    FirstCacheAwareAlarmS = "first_cache_aware_alarm_s", Seconds;
    /// The last moment an agent's retained memory grew.
    LeakingUntilS = "leaking_until_s", Seconds;
    /// The lowest share of API calls answered among customers with no stuck volume.
    BystanderApiSuccess = "bystander_api_success", Share;
}

impl Metric {
    /// A value for people: counts as integers, shares as percentages, times in seconds.
    pub fn show(self, value: f64) -> String {
        match self.kind() {
            Kind::Share => format!("{:.1}%", value * 100.0),
            Kind::Count => format!("{value:.0}"),
            Kind::Seconds => format!("{value:.1}s"),
        }
    }
}

impl GridMetric for Metric {
    type Of = Metrics;

    fn all() -> &'static [Self] {
        Self::ALL
    }

    fn name(self) -> &'static str {
        Metric::name(self)
    }

    fn show(self, value: f64) -> String {
        Metric::show(self, value)
    }

    fn value(self, of: &Metrics) -> Option<f64> {
        of.get(self)
    }

    fn applies(self, of: &Metrics) -> bool {
        of.applies(self)
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one run had, which decides the metrics that apply to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Customer I/O ran (an error rate means something).
    pub load: bool,
    /// Some customer account had no stuck volume (a bystander).
    pub bystanders: bool,
    /// The cache-aware aggregate alarm replaced the 2012 one.
    pub cache_aware: bool,
}

/// One run's numbers. Times are seconds after the timeline's first step; `None` when the
/// thing never happened (no leak alarm, no agent ever leaked) or does not apply to the run
/// ([`Metrics::applies`] tells which).
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
    /// What the run had, which decides the metrics that apply to it.
    pub scope: Scope,
}

impl Metrics {
    /// The value of `metric`; `None` when it never happened or does not apply.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        if !self.applies(metric) {
            return None;
        }
        match metric {
            Metric::StuckPeak => Some(self.stuck_peak),
            Metric::StuckVolumeSeconds => Some(self.stuck_volume_seconds),
            Metric::ErrorRate => Some(self.error_rate),
            Metric::WritesLost => Some(self.writes_lost),
            Metric::FirstLeakAlarmS => self.first_leak_alarm_s,
            Metric::FirstAggregateAlarmS => self.first_aggregate_alarm_s,
            Metric::FirstCacheAwareAlarmS => self.first_cache_aware_alarm_s,
            Metric::LeakingUntilS => self.leaking_until_s,
            Metric::BystanderApiSuccess => self.bystander_api_success,
        }
    }

    /// Whether `metric` means anything for this run: an error rate needs customer I/O, a
    /// bystander's API success a bystander, and each aggregate alarm the run that has it.
    pub fn applies(&self, metric: Metric) -> bool {
        match metric {
            Metric::ErrorRate => self.scope.load,
            Metric::BystanderApiSuccess => self.scope.bystanders,
            Metric::FirstAggregateAlarmS => !self.scope.cache_aware,
            Metric::FirstCacheAwareAlarmS => self.scope.cache_aware,
            _ => true,
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
            scope: Scope::of(report),
        }
    }
}

impl Scope {
    /// What a run's report says it had.
    fn of(report: &Report) -> Self {
        Self {
            load: report.load.requests > 0,
            bystanders: (report.customers.iter())
                .flat_map(|c| &c.accounts)
                .any(|a| !a.affected),
            cache_aware: (report.fixes.iter())
                .any(|f| FixName::from_name(&f.name) == Some(FixName::CacheAwareAggregateAlarm)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use outage_lab_engine::experiment::grid::Summary;

    #[test]
    fn shares_show_as_percentages_and_times_as_seconds() {
        assert_eq!(Metric::BystanderApiSuccess.show(0.995), "99.5%");
        assert_eq!(Metric::ErrorRate.show(0.077), "7.7%");
        assert_eq!(Metric::FirstLeakAlarmS.show(3.94), "3.9s");
        assert_eq!(Metric::StuckPeak.show(17.0), "17");
    }

    #[test]
    fn every_metric_is_found_by_its_name() {
        for &m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(Metric::NAMES.len(), Metric::ALL.len());
        assert_eq!(Metric::from_name("luck"), None);
    }

    #[test]
    fn an_alarm_that_never_fired_is_never_and_one_the_runs_lacked_is_not_applicable() {
        let plain = Metrics::default();
        let cache_aware = Metrics {
            scope: Scope {
                cache_aware: true,
                ..Scope::default()
            },
            first_cache_aware_alarm_s: Some(4.0),
            ..Metrics::default()
        };
        let aggregate = Metric::FirstAggregateAlarmS;
        assert_eq!(Spread::over(aggregate, [&plain, &plain]), Spread::Never);
        assert_eq!(
            Spread::over(aggregate, [&cache_aware]),
            Spread::NotApplicable
        );
        assert_eq!(
            Spread::over(Metric::FirstCacheAwareAlarmS, [&cache_aware, &plain]).summary(),
            Summary::of(&[4.0])
        );
        assert_eq!(
            Spread::over(Metric::ErrorRate, [&plain]).show(Metric::ErrorRate),
            "not applicable"
        );
        assert_eq!(
            Spread::over(Metric::StuckPeak, [&plain]).show(Metric::StuckPeak),
            "0 (0..0)"
        );
    }

    #[test]
    fn stuck_volume_seconds_integrate_the_stuck_count() {
        // 2 stuck from 1s to 3s, then 1 until 4s, then none; the run ends at 10s.
        let series = [(1_000, 2), (3_000, 1), (4_000, 0)];
        assert_eq!(stuck_volume_seconds(&series, 10_000), 5.0);
    }
}

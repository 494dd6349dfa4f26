//! How late a run's scheduled work fired against its schedule: the run's own measure of whether
//! the machine kept its pace. A verdict that rests on timing (an alarm within a window, a probe
//! before its deadline) is evidence only when the timers behind it fired on time; a run whose
//! lateness went over the scenario's tolerance is *disturbed*, and says so (a `kept_pace` row,
//! `disturbed` in report.json), so that neither a person nor the experiment runner counts it
//! as a result.
//!
//! Three kinds of source feed a [`LagMeter`]: the harness's own timer ([`Heartbeat`]: sleeps a
//! fixed period and measures the overshoot, which is how long the machine kept the harness
//! waiting for a core), the timeline's steps (how long after its time each was injected), and
//! whatever an incident's processes do on a schedule ([`LagMeter::tick`]: the gap between two
//! firings of one process, beyond its period).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outage_lab_proto::report::{LagReport, LagSource};

/// The harness's own timer.
pub const HARNESS_TIMER: &str = "harness_timer";
/// The timeline's steps, against their `at`.
pub const TIMELINE_STEPS: &str = "timeline_steps";
/// The most a source's p99 lateness may be before a run is disturbed, unless the scenario
/// says otherwise (`lag_tolerance`).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(100);
/// [`DEFAULT_TOLERANCE`] as a scenario's `lag_tolerance` default.
pub fn default_tolerance() -> outage_lab_proto::HumanDuration {
    outage_lab_proto::HumanDuration(DEFAULT_TOLERANCE)
}
/// How often the harness's timer fires.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(100);
/// The percentile held against the tolerance: one late firing in a hundred is noise, a
/// hundredth of a run's firings late is not.
const PERCENTILE: f64 = 0.99;

/// Lateness samples by source, taken while the meter is open (the timeline: start-up and
/// shutdown are not the run's pace).
#[derive(Debug, Default)]
pub struct LagMeter {
    open: bool,
    late: BTreeMap<String, Vec<u64>>,
    /// The last firing of each (source, process), lab ms.
    last: HashMap<(String, String), u64>,
}

impl LagMeter {
    /// Starts taking samples.
    pub fn open(&mut self) {
        self.open = true;
    }

    /// Stops taking samples; a gap across a close is never counted.
    pub fn close(&mut self) {
        self.open = false;
        self.last.clear();
    }

    /// One firing of `source` that came `ms` after its time.
    pub fn late(&mut self, source: &str, ms: u64) {
        if self.open {
            self.late.entry(source.to_owned()).or_default().push(ms);
        }
    }

    /// One firing, at lab time `t_ms`, of something `key` (a process) does every `period_ms`:
    /// it is late by however much the gap since its last firing exceeds the period. A key's
    /// first firing only starts its count.
    pub fn tick(&mut self, source: &str, key: &str, t_ms: u64, period_ms: u64) {
        if !self.open {
            return;
        }
        let slot = (source.to_owned(), key.to_owned());
        if let Some(prev) = self.last.insert(slot, t_ms) {
            let gap = t_ms.saturating_sub(prev);
            self.late(source, gap.saturating_sub(period_ms));
        }
    }

    /// What the run came to against `tolerance`.
    pub fn report(&self, tolerance: Duration) -> LagReport {
        let tolerance_ms = u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX);
        let sources: Vec<LagSource> = (self.late.iter())
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(name, samples)| summarize(name, samples))
            .collect();
        LagReport {
            tolerance_ms,
            disturbed: sources.iter().any(|s| s.p99_ms > tolerance_ms),
            sources,
        }
    }
}

fn summarize(name: &str, samples: &[u64]) -> LagSource {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    LagSource {
        name: name.to_owned(),
        samples: sorted.len() as u64,
        p50_ms: at(0.5),
        p99_ms: at(PERCENTILE),
        max_ms: sorted[sorted.len() - 1],
    }
}

/// Why a run is disturbed, in words for its `kept_pace` row; `None` when it kept its pace.
pub fn disturbance(report: &LagReport) -> Option<String> {
    let late: Vec<String> = (report.sources.iter())
        .filter(|s| s.p99_ms > report.tolerance_ms)
        .map(|s| {
            format!(
                "{} fired up to {} ms late (p99 {} ms of {} firings)",
                s.name, s.max_ms, s.p99_ms, s.samples
            )
        })
        .collect();
    (!late.is_empty()).then(|| {
        format!(
            "{}, over the scenario's lag_tolerance of {} ms: the machine did not keep this run's pace, so its timing is not evidence; run it on a quieter machine, or fewer at once",
            late.join("; "),
            report.tolerance_ms
        )
    })
}

/// The harness's own timer: a task that sleeps [`HEARTBEAT_PERIOD`] again and again and
/// records how much later than asked it woke.
#[derive(Debug)]
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    samples: Arc<Mutex<Vec<u64>>>,
}

impl Heartbeat {
    /// Starts the timer on the current runtime.
    pub fn start() -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            loop {
                let due = tokio::time::Instant::now() + HEARTBEAT_PERIOD;
                tokio::time::sleep_until(due).await;
                let late = tokio::time::Instant::now().saturating_duration_since(due);
                let late = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
                out.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(late);
            }
        });
        Self { task, samples }
    }

    /// The worst lateness of the last `n` firings, ms (0 before the first).
    pub fn recent_worst(&self, n: usize) -> u64 {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let from = samples.len().saturating_sub(n);
        samples[from..].iter().copied().max().unwrap_or(0)
    }

    /// Stops the timer and hands what it measured to `meter` (which must still be open).
    pub fn finish(self, meter: &mut LagMeter) {
        self.task.abort();
        let samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        for ms in samples {
            meter.late(HARNESS_TIMER, ms);
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> LagMeter {
        let mut meter = LagMeter::default();
        meter.open();
        meter
    }

    #[test]
    fn nothing_is_counted_while_the_meter_is_closed_nor_across_a_close() {
        let mut meter = open();
        meter.tick("sweeps", "watchdog", 0, 250);
        meter.close();
        meter.late(HARNESS_TIMER, 9_000);
        meter.tick("sweeps", "watchdog", 5_000, 250);
        meter.open();
        meter.tick("sweeps", "watchdog", 5_250, 250);
        assert!(meter.report(Duration::from_secs(1)).sources.is_empty());
    }

    #[test]
    fn a_process_that_fires_on_its_period_is_never_late() {
        let mut meter = open();
        for t in [0, 250, 500, 750, 1000] {
            meter.tick("sweeps", "watchdog", t, 250);
        }
        let report = meter.report(Duration::from_millis(100));
        assert_eq!(report.sources[0].samples, 4);
        assert_eq!(report.sources[0].max_ms, 0);
        assert!(!report.disturbed);
    }

    #[test]
    fn a_gap_beyond_the_period_is_lateness_and_each_process_counts_apart() {
        let mut meter = open();
        meter.tick("ticks", "a", 0, 1000);
        meter.tick("ticks", "b", 900, 1000);
        meter.tick("ticks", "a", 1300, 1000);
        meter.tick("ticks", "b", 1900, 1000);
        let s = &meter.report(Duration::from_secs(1)).sources[0];
        assert_eq!((s.samples, s.p50_ms, s.max_ms), (2, 0, 300));
    }

    #[test]
    fn one_late_firing_in_two_hundred_does_not_disturb_a_run_but_two_in_a_hundred_do() {
        let mut meter = open();
        (0..199).for_each(|_| meter.late(HARNESS_TIMER, 2));
        meter.late(HARNESS_TIMER, 5_000);
        let quiet = meter.report(Duration::from_millis(500));
        assert_eq!(quiet.sources[0].max_ms, 5_000);
        assert!(!quiet.disturbed, "{quiet:?}");
        assert_eq!(disturbance(&quiet), None);

        (0..4).for_each(|_| meter.late(HARNESS_TIMER, 900));
        let noisy = meter.report(Duration::from_millis(500));
        assert!(noisy.disturbed, "{noisy:?}");
        assert!(
            noisy
                .summary()
                .starts_with("pace: DISTURBED (p99 lateness: harness_timer 900 ms")
        );
        let why = disturbance(&noisy).expect("a reason");
        assert!(
            why.contains("harness_timer fired up to 5000 ms late"),
            "{why}"
        );
        assert!(why.contains("lag_tolerance of 500 ms"), "{why}");
    }

    #[test]
    fn a_source_with_no_firings_is_left_out() {
        let mut meter = open();
        meter.tick("ticks", "a", 0, 1000);
        assert!(meter.report(Duration::from_secs(1)).sources.is_empty());
    }
}

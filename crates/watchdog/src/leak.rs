//! The fixed monitoring: a per-process detector for sustained memory growth.
//!
//! After 2012 AWS said it would alarm on *this specific leak*, per process, rather than on a
//! server's aggregate memory. The hard part is not seeing growth (RSS is one read away) but not
//! crying wolf: a storage process legitimately jumps by tens of MiB when its cache warms up or
//! refills after the agent restarts, and any busy process churns memory up and down. This module
//! is the rule that tells those apart from a leak, as a pure state machine fed with samples.

use std::collections::VecDeque;
use std::time::Duration;

use outage_lab_proto::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// Settings of the leak rule: over the last `window`, RSS must climb from each segment to the
/// next by `min_segment_growth` and, overall, by `min_total_growth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakConfig {
    /// How much history the rule looks at.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    /// The window is cut into this many equal segments (at least 2); RSS must climb from every
    /// segment to the next.
    #[serde(default = "default_segments")]
    pub segments: u32,
    /// The least climb from one segment to the next that counts.
    #[serde(default = "default_min_segment_growth")]
    pub min_segment_growth: ByteSize,
    /// The least climb across the whole window (first segment to last) that counts.
    #[serde(default = "default_min_total_growth")]
    pub min_total_growth: ByteSize,
    /// How long after a process is first seen its samples are not judged: an interpreter that
    /// loads its libraries (Python takes seconds on a busy machine) climbs like a leak.
    #[serde(default = "default_warmup")]
    pub warmup: HumanDuration,
}

fn default_window() -> HumanDuration {
    HumanDuration::secs(4)
}
fn default_segments() -> u32 {
    4
}
fn default_min_segment_growth() -> ByteSize {
    ByteSize::kib(128)
}
fn default_min_total_growth() -> ByteSize {
    ByteSize::mib(1)
}
fn default_warmup() -> HumanDuration {
    HumanDuration::secs(0)
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            window: default_window(),
            segments: default_segments(),
            min_segment_growth: default_min_segment_growth(),
            min_total_growth: default_min_total_growth(),
            warmup: default_warmup(),
        }
    }
}

impl LeakConfig {
    /// Checks ranges serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.segments < 2 {
            return Err(format!(
                "leak.segments must be at least 2 (growth is measured between segments), got {}",
                self.segments
            ));
        }
        if self.window.get() < Duration::from_millis(u64::from(self.segments)) {
            return Err(format!(
                "leak.window {} is too short for {} segments",
                self.window, self.segments
            ));
        }
        Ok(())
    }
}

/// The largest rise between two segment floors may be at most this many times the smallest: a
/// leak raises memory at a steady pace, a step does not.
pub const MAX_RISE_RATIO: u64 = 4;

/// Detects a sustained rise in one process's resident memory. One detector per process: a new
/// pid (a restarted agent) gets a fresh detector, and a detector fires at most once.
///
/// # The rule
///
/// Keep the samples of the last `window`. Cut the window into `segments` equal segments and take
/// each segment's **floor**, its lowest sample. Fire when every floor is at least
/// `min_segment_growth` above the floor before it, no rise is more than [`MAX_RISE_RATIO`] times
/// another, and the last floor is at least `min_total_growth` above the first. With the defaults (4 s, 4 segments, 128 KiB, 1 MiB) that
/// is: memory that never drops back, climbing second after second for three seconds straight, by
/// at least a mebibyte. Why this shape:
///
/// * **A leak** raises the floor everywhere: memory that is never freed lifts the lowest point of
///   each successive segment. A steady leak passes every segment test, and the total test once
///   it has added a mebibyte. It fires one window after the leak starts (about 17 samples at the
///   250 ms default sampling), then stays latched.
/// * **A cache warm-up, or a refill after the agent restarts**, is a *step*: one big jump, then
///   flat. Only the one segment boundary the step crosses shows a rise; the others are flat, so
///   "rise between *every* pair of segments" rejects it however large the step. This is why
///   storage resizes its cache in one step rather than ramping: a ramp lasting a whole window
///   would be indistinguishable from a leak.
/// * **A step caught mid-way**: on a loaded machine the refill of a 25 MiB cache can take longer
///   than one sample, so a sample lands half-way up and the step crosses two boundaries; a small
///   genuine rise after it (a replica arriving) crosses the third. The rises are then wildly
///   uneven (+16, +7, +1.4 MiB, seen at 200 servers), while a leak's are even: the ratio test
///   rejects it, at the cost of a leak whose first segment caught only its start being seen one
///   segment later.
/// * **Churn** (allocate, free, allocate: a sawtooth) moves the peaks but not the floors: every
///   segment that contains a trough has the same floor. Comparing floors rather than the last
///   sample of each segment also avoids aliasing, where a sawtooth sampled in step with the
///   segment boundaries would look like a staircase.
/// * **Noise** of a few hundred KiB cannot add up to `min_total_growth`, and a short burst (say
///   1 MiB within one second, then flat) spans at most two segment boundaries, not three.
/// * **Falling memory** (storage giving cache back to a growing agent) never rises at all.
/// * **A process starting up** (an interpreter loading its libraries, for seconds on a busy
///   machine) climbs steadily, like a leak. `warmup` (0 s by default: the lab's own agent starts
///   in milliseconds) keeps a new process's first samples out of every window.
///
/// The price is latency and a floor on the leak rate it can see: `min_segment_growth` per
/// segment and `min_total_growth` over `window * (segments - 1) / segments` (with the defaults,
/// about 341 KiB/s). Churn on top of a leak is tolerated while its amplitude stays below what
/// the leak adds per segment; heavier churn makes the floors land at random points in their
/// segments, and the leak shows only once a longer window is configured. The 2012 leak was far
/// slower on a far longer time scale; the lab compresses both, and the window scales with them.
#[derive(Debug, Clone)]
pub struct LeakDetector {
    window: Duration,
    segments: u32,
    min_segment_growth: u64,
    min_total_growth: u64,
    warmup: Duration,
    /// When the first sample came; samples until `first + warmup` are not judged.
    first: Option<Duration>,
    /// `(time since the watchdog started, rss)`, oldest first, covering at most `window`.
    samples: VecDeque<(Duration, u64)>,
    /// Latched: once fired, the detector stays silent for the life of the process.
    fired: bool,
}

impl LeakDetector {
    /// A fresh detector with no history.
    pub fn new(config: &LeakConfig) -> Self {
        Self {
            window: config.window.get(),
            segments: config.segments.max(2),
            min_segment_growth: config.min_segment_growth.bytes(),
            min_total_growth: config.min_total_growth.bytes(),
            warmup: config.warmup.get(),
            first: None,
            samples: VecDeque::new(),
            fired: false,
        }
    }

    /// Whether this detector has fired.
    pub fn fired(&self) -> bool {
        self.fired
    }

    /// Feeds one sample taken at `at` (any monotonic clock; only differences matter). Returns the
    /// alarm detail, with the numbers that made it fire, the first time the rule holds; `None`
    /// otherwise and forever after.
    pub fn observe(&mut self, at: Duration, rss: u64) -> Option<String> {
        if self.fired {
            return None;
        }
        // A sample from the past would corrupt the segment arithmetic; drop it.
        if self.samples.back().is_some_and(|&(last, _)| at < last) {
            return None;
        }
        // Still warming up: not part of any window.
        if at < *self.first.get_or_insert(at) + self.warmup {
            return None;
        }
        self.samples.push_back((at, rss));
        // Not a full window of history yet: nothing to judge.
        let start = at.checked_sub(self.window)?;
        while self.samples.front().is_some_and(|&(t, _)| t < start) {
            self.samples.pop_front();
        }
        let floors = self.floors(start)?;

        let rises: Vec<u64> = floors
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .collect();
        let rises_everywhere = floors
            .windows(2)
            .all(|pair| pair[1] >= pair[0].saturating_add(self.min_segment_growth));
        let (first, last) = (floors[0], floors[floors.len() - 1]);
        let total = last.saturating_sub(first);
        if !(rises_everywhere && total >= self.min_total_growth) {
            return None;
        }
        // Steady: no rise may dwarf another (a step caught mid-way, then a small legitimate rise,
        // is not a leak).
        let (smallest, largest) = (
            rises.iter().copied().min().unwrap_or(0),
            rises.iter().copied().max().unwrap_or(0),
        );
        if largest > smallest.saturating_mul(MAX_RISE_RATIO) {
            return None;
        }
        self.fired = true;
        self.samples = VecDeque::new();
        let window_s = self.window.as_secs_f64();
        let span_s = window_s * f64::from(self.segments - 1) / f64::from(self.segments);
        let floors_mib: Vec<String> = floors.iter().map(|&f| format!("{:.2}", mib(f))).collect();
        Some(format!(
            "RSS floor climbed through all {} segments of the last {window_s:.1}s: \
             {} MiB (+{:.2} MiB, {:.0} KiB/s); now {:.2} MiB",
            self.segments,
            floors_mib.join(" -> "),
            mib(total),
            total as f64 / 1024.0 / span_s,
            mib(rss),
        ))
    }

    /// The lowest sample of each segment of the window that begins at `start`, or `None` if the
    /// samples do not cover the window: the oldest must lie in the first half of the first
    /// segment (sampling jitter aside, that is a full window), and no segment may be empty.
    fn floors(&self, start: Duration) -> Option<Vec<u64>> {
        let segments = self.segments as usize;
        let window_ns = self.window.as_nanos();
        let &(oldest, _) = self.samples.front()?;
        if (oldest - start).as_nanos() * 2 * segments as u128 > window_ns {
            return None;
        }
        let mut floors = vec![u64::MAX; segments];
        for &(t, rss) in &self.samples {
            // Segment k covers [start + k*w/S, start + (k+1)*w/S); the last also takes `now`.
            let k = ((t - start).as_nanos() * segments as u128 / window_ns.max(1)) as usize;
            let floor = &mut floors[k.min(segments - 1)];
            *floor = (*floor).min(rss);
        }
        floors.iter().all(|&f| f != u64::MAX).then_some(floors)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const BASE: u64 = 40 * MIB;
    /// The watchdog's default sampling interval.
    const STEP: Duration = Duration::from_millis(250);

    /// Feeds `series(t_seconds)` sampled every 250 ms for `secs` seconds; returns the times at
    /// which the detector fired.
    fn run(secs: f64, series: impl Fn(f64) -> u64) -> Vec<Duration> {
        run_with(&LeakConfig::default(), secs, series)
    }

    fn run_with(config: &LeakConfig, secs: f64, series: impl Fn(f64) -> u64) -> Vec<Duration> {
        let mut d = LeakDetector::new(config);
        let mut fired = Vec::new();
        let n = (secs / STEP.as_secs_f64()) as u32;
        for i in 0..=n {
            let at = STEP * i;
            if d.observe(at, series(at.as_secs_f64())).is_some() {
                fired.push(at);
            }
        }
        fired
    }

    #[test]
    fn a_linear_leak_of_640_kib_per_second_fires_one_window_after_it_starts() {
        let fired = run(20.0, |t| BASE + (640.0 * KIB as f64 * t) as u64);
        assert_eq!(fired.len(), 1, "fired at {fired:?}");
        // The window is 4 s; allow one sample of slack.
        assert!(
            fired[0] <= Duration::from_secs(4) + STEP,
            "fired at {:?}",
            fired[0]
        );
    }

    #[test]
    fn a_leak_that_starts_late_fires_within_a_window_and_a_sample_of_its_start() {
        let fired = run(30.0, |t| {
            if t < 10.0 {
                BASE
            } else {
                BASE + (640.0 * KIB as f64 * (t - 10.0)) as u64
            }
        });
        assert_eq!(fired.len(), 1, "fired at {fired:?}");
        let after = fired[0] - Duration::from_secs(10);
        assert!(
            after <= Duration::from_secs(4) + STEP,
            "fired {after:?} after the leak began"
        );
    }

    #[test]
    fn the_alarm_detail_carries_the_numbers() {
        let mut d = LeakDetector::new(&LeakConfig::default());
        let detail = (0..=40)
            .find_map(|i| d.observe(STEP * i, BASE + u64::from(i) * 160 * KIB))
            .expect("fires");
        assert!(
            detail.contains("MiB") && detail.contains("KiB/s"),
            "{detail}"
        );
        assert!(d.fired());
    }

    #[test]
    fn a_cache_refill_caught_mid_way_then_a_small_rise_is_silent() {
        // Seen at 200 servers after the agent restart: the storage process's samples went
        // 10.35 -> 26.25 -> 35.23 MiB within two sweeps (the refill spanning a boundary), down to
        // 33.56 as the new agent grew, and up to 35.0 as re-mirrored replicas arrived.
        let fired = run(12.0, |t| {
            let mib = match t {
                t if t < 4.0 => 10.35,
                t if t < 4.6 => 26.25,
                t if t < 5.4 => 35.23,
                t if t < 6.0 => 33.56,
                _ => 35.0,
            };
            (mib * MIB as f64) as u64
        });
        assert_eq!(fired, vec![], "a refill is not a leak");
    }

    #[test]
    fn a_one_off_36_mib_step_up_like_a_cache_warm_up_is_silent() {
        assert!(run(30.0, |t| if t < 7.3 { 4 * MIB } else { 40 * MIB }).is_empty());
        // ...whatever its phase against the segments.
        for offset_ms in (0..1000).step_by(125) {
            let at = 7.0 + f64::from(offset_ms) / 1000.0;
            assert!(run(20.0, |t| if t < at { 4 * MIB } else { 40 * MIB }).is_empty());
        }
    }

    #[test]
    fn a_sawtooth_of_allocation_churn_is_silent() {
        // Rise 4 MiB over most of a period, then free it all, for several periods, including
        // ones that are not a whole number of samples or segments long.
        for period in [0.75, 0.9, 1.0, 1.1, 2.0, 3.0] {
            let fired = run(30.0, |t| {
                let phase = (t % period) / period;
                BASE + (4.0 * MIB as f64 * phase) as u64
            });
            assert!(fired.is_empty(), "period {period}s fired at {fired:?}");
        }
    }

    #[test]
    fn flat_noise_of_plus_minus_300_kib_is_silent() {
        // A tiny deterministic generator, so the test needs no rand crate and never flakes.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut noise = Vec::new();
        for _ in 0..=400 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            noise.push(((unit * 2.0 - 1.0) * 300.0 * KIB as f64) as i64);
        }
        let fired = run(100.0, |t| {
            let i = (t / STEP.as_secs_f64()).round() as usize;
            BASE.saturating_add_signed(noise[i])
        });
        assert!(fired.is_empty(), "fired at {fired:?}");
    }

    #[test]
    fn a_one_mib_burst_within_one_second_then_flat_is_silent() {
        for start_ms in (5000..6000).step_by(125) {
            let start = f64::from(start_ms) / 1000.0;
            let fired = run(20.0, |t| {
                let progress = ((t - start) / 1.0).clamp(0.0, 1.0);
                BASE + (MIB as f64 * progress) as u64
            });
            assert!(fired.is_empty(), "burst at {start}s fired at {fired:?}");
        }
    }

    #[test]
    fn a_decreasing_series_is_silent() {
        assert!(run(30.0, |t| BASE - (640.0 * KIB as f64 * t) as u64).is_empty());
    }

    #[test]
    fn it_fires_only_once_however_long_the_leak_goes_on() {
        let fired = run(120.0, |t| BASE + (2.0 * MIB as f64 * t) as u64);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn a_leak_slower_than_the_rule_can_see_is_silent() {
        // 100 KiB/s: below 128 KiB per 1 s segment.
        assert!(run(60.0, |t| BASE + (100.0 * KIB as f64 * t) as u64).is_empty());
    }

    #[test]
    fn a_leak_on_top_of_churn_smaller_than_its_growth_per_segment_still_fires() {
        let fired = run(30.0, |t| {
            let churn = (256.0 * KIB as f64 * ((t % 0.6) / 0.6)) as u64;
            BASE + (640.0 * KIB as f64 * t) as u64 + churn
        });
        assert_eq!(fired.len(), 1, "fired at {fired:?}");
    }

    #[test]
    fn samples_from_the_past_and_gaps_do_not_fire() {
        let mut d = LeakDetector::new(&LeakConfig::default());
        assert!(d.observe(Duration::from_secs(10), BASE).is_none());
        assert!(d.observe(Duration::from_secs(5), BASE + 50 * MIB).is_none());
        // Two samples 4 s apart leave segments empty: no judgement.
        assert!(
            d.observe(Duration::from_secs(14), BASE + 50 * MIB)
                .is_none()
        );
        assert!(!d.fired());
    }

    #[test]
    fn a_config_with_fewer_than_two_segments_is_rejected() {
        let mut c = LeakConfig::default();
        c.validate().expect("defaults are valid");
        c.segments = 1;
        assert!(c.validate().is_err());
    }

    /// Python loading its libraries on a busy machine, as measured: 3 MiB to 21 MiB over 4 s.
    fn interpreter_start(t: f64) -> u64 {
        3 * MIB + (18.0 * MIB as f64 * (t / 4.0).min(1.0)) as u64
    }

    #[test]
    fn an_interpreter_loading_its_libraries_looks_like_a_leak_without_a_warmup() {
        assert_eq!(run(20.0, interpreter_start).len(), 1);
    }

    #[test]
    fn a_warmup_keeps_the_start_of_a_process_out_of_every_window() {
        let config = LeakConfig {
            warmup: HumanDuration::secs(5),
            ..LeakConfig::default()
        };
        assert_eq!(run_with(&config, 20.0, interpreter_start), vec![]);
    }

    #[test]
    fn a_leak_that_starts_after_the_warmup_still_fires_one_window_later() {
        let config = LeakConfig {
            warmup: HumanDuration::secs(5),
            ..LeakConfig::default()
        };
        let fired = run_with(&config, 20.0, |t| {
            interpreter_start(t) + (640.0 * KIB as f64 * (t - 6.0).max(0.0)) as u64
        });
        assert_eq!(fired.len(), 1, "fired at {fired:?}");
        assert!(fired[0] <= Duration::from_secs(10) + STEP, "{fired:?}");
    }
}

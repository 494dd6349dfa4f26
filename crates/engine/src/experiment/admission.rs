//! When the runner may start another cell: as many run at once as the machine holds without
//! changing a result, measured rather than guessed from the core count. A cell starts when
//! fewer than the cap run (`--jobs`, or as many as the memory limit fits), the last cell
//! started at least [`SETTLE`] ago (a fleet's start-up is a burst the readings must see
//! first), the machine's CPU was less than [`BUSY_BOUND`] busy over the last second, and the
//! runner's own timer (the engine's [`Heartbeat`], the same measure every cell takes of
//! itself) fired at most [`ADMIT_LAG`] late over the last [`RECENT`] firings: average CPU hides
//! what hurts a run, hundreds of processes waking at once, and the timer sees it. A cell that
//! comes back disturbed (its own lag over its tolerance) lowers the cap below the number that
//! ran beside it, so the runner backs off.

use std::time::{Duration, Instant};

use crate::lag::Heartbeat;

/// The share of all cores busy over which no further cell starts. Measured (BENCHMARKS.md):
/// 12 default cells at once keep every verdict, with the CPU short of saturated; 24 do not.
pub const BUSY_BOUND: f64 = 0.7;
/// The least time between two cells' starts.
pub const SETTLE: Duration = Duration::from_secs(5);
/// The most the runner's own timer may have fired late, recently, for another cell to start: a
/// quarter of the default lag tolerance, so the cells already running keep their headroom.
pub const ADMIT_LAG: u64 = 25;
/// How many of the runner's timer firings are recent (3 s of them).
pub const RECENT: usize = 30;
/// How often the runner looks again, when a cell waits.
pub const POLL: Duration = Duration::from_millis(200);

/// The machine's CPU, read from `/proc/stat`: the busy share since the reading before last
/// that is at least a second old.
#[derive(Debug)]
pub struct Cpu {
    /// Readings (when, busy jiffies, total jiffies), oldest first, the oldest about a second back.
    readings: Vec<(Instant, u64, u64)>,
}

impl Cpu {
    /// Starts reading.
    pub fn new() -> Self {
        let mut cpu = Self {
            readings: Vec::new(),
        };
        cpu.read();
        cpu
    }

    /// Takes a reading; keeps the newest one that is over a second old as the base.
    pub fn read(&mut self) {
        let Some((busy, total)) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            return;
        };
        let now = Instant::now();
        self.readings.push((now, busy, total));
        let old = (self.readings.iter())
            .rposition(|(t, _, _)| now.duration_since(*t) >= Duration::from_secs(1));
        if let Some(base) = old {
            self.readings.drain(..base);
        }
    }

    /// The busy share of all cores over the last second or so (0 when it cannot be read).
    pub fn busy(&self) -> f64 {
        match (self.readings.first(), self.readings.last()) {
            (Some(&(_, b0, t0)), Some(&(_, b1, t1))) if t1 > t0 => {
                b1.saturating_sub(b0) as f64 / (t1 - t0) as f64
            }
            _ => 0.0,
        }
    }
}

impl Default for Cpu {
    fn default() -> Self {
        Self::new()
    }
}

/// `(busy, total)` jiffies from the `cpu` line of `/proc/stat`: idle and iowait are not busy.
/// Niced work is: with the kernel's autogroups (the default on most distributions) a niced
/// process in another session takes its share all the same.
pub fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = (line.split_whitespace().skip(1))
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let room = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(room), total))
}

/// The runner's side of the policy: the cap, and when the last cell started.
#[derive(Debug)]
pub struct Admission {
    /// Most cells at once; lowered when a cell comes back disturbed.
    pub cap: usize,
    last_start: Option<Instant>,
    cpu: Cpu,
    timer: Heartbeat,
}

impl Admission {
    /// At most `cap` at once. Starts the runner's timer on the current runtime.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            last_start: None,
            cpu: Cpu::new(),
            timer: Heartbeat::start(),
        }
    }

    /// Whether another cell may start beside `running` cells now.
    pub fn may_start(&mut self, running: usize) -> bool {
        self.cpu.read();
        if running == 0 {
            return true;
        }
        let settled = self.last_start.is_none_or(|t| t.elapsed() >= SETTLE);
        running < self.cap
            && settled
            && self.cpu.busy() < BUSY_BOUND
            && self.timer.recent_worst(RECENT) <= ADMIT_LAG
    }

    /// A cell started.
    pub fn started(&mut self) {
        self.last_start = Some(Instant::now());
    }

    /// A cell came back disturbed after running beside at most `beside` others: the machine
    /// cannot hold `beside + 1` at once, so no more than `beside` (and one fewer than the cap
    /// was) from now on. The cap never grows back within an experiment: a disturbance found
    /// the limit.
    pub fn disturbed(&mut self, beside: usize) {
        self.cap = (self.cap.saturating_sub(1)).min(beside).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_total_are_read_from_the_cpu_line() {
        let stat = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_stat(stat), Some((155, 1000)), "niced time is busy");
        assert_eq!(parse_stat("intr 1 2 3\n"), None);
    }

    #[tokio::test]
    async fn the_first_cell_always_starts_and_the_next_waits_for_the_settle_time() {
        let mut a = Admission::new(4);
        assert!(a.may_start(0));
        a.started();
        assert!(!a.may_start(1), "a second cell started at once");
    }

    #[tokio::test]
    async fn a_disturbed_cell_lowers_the_cap_below_what_ran_beside_it() {
        let mut a = Admission::new(12);
        a.disturbed(5);
        assert_eq!(a.cap, 5);
        a.disturbed(9);
        assert_eq!(
            a.cap, 4,
            "a cell that ran beside more than the cap still lowers it"
        );
        a.disturbed(0);
        assert_eq!(a.cap, 1);
        assert!(!a.may_start(1));
    }
}

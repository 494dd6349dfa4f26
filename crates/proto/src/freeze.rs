//! Living through a freeze: what a process does when the harness stops it (SIGSTOP) and
//! continues it (SIGCONT), as `outage-lab workshop` does at each stop.
//!
//! A stopped process does not notice being stopped, but its monotonic clock keeps running. On
//! resume every deadline that passed while it was stopped fires at once: a request in flight
//! "times out" although its peer, stopped too, never had a chance to answer, and a detector that
//! measures growth over time sees a long gap with no growth. Two tools fix that:
//!
//! * [`stops`] counts the SIGCONTs this process received. The handler runs before the process
//!   executes anything else after a resume, so an outcome that completes with the count changed
//!   spanned a freeze: callers drop it ([`Attempt`]) instead of counting a failure that did not
//!   happen.
//! * [`ActiveClock`] is a clock that does not advance across a freeze (to within one call's
//!   spacing): the watchdog stamps its samples with it, so its alarms judge the same growth over
//!   the same active time as without a freeze.
//!
//! [`install`] sets the handler; every role process calls it once at start.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static STOPS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

extern "C" fn on_continue(_: libc::c_int) {
    // Async-signal-safe: one atomic add.
    STOPS.fetch_add(1, Ordering::SeqCst);
}

/// Installs the SIGCONT handler (idempotent). Without it [`stops`] stays 0, which is only
/// wrong for a process that is actually frozen.
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a plain sigaction with a handler that only touches an atomic. SA_RESTART keeps
        // interrupted system calls transparent to the rest of the process.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_continue as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGCONT, &action, std::ptr::null_mut());
        }
    });
}

/// How many times this process was continued after being stopped.
pub fn stops() -> u64 {
    STOPS.load(Ordering::SeqCst)
}

/// One operation that may span a freeze: note it before, ask after.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    stops_before: u64,
}

impl Attempt {
    /// Starts watching (call it right before the operation).
    pub fn start() -> Self {
        Self {
            stops_before: stops(),
        }
    }

    /// Whether the process was stopped and continued since [`Attempt::start`]: the outcome is
    /// not evidence of anything (a timeout that fired on resume).
    pub fn spanned_a_freeze(&self) -> bool {
        stops() != self.stops_before
    }
}

/// A clock of the time this process was running (to within the spacing of its calls): across a
/// freeze it advances by at most `max_step`, the caller's normal spacing between calls.
#[derive(Debug)]
pub struct ActiveClock {
    last_wall: Instant,
    active: Duration,
    stops_seen: u64,
    max_step: Duration,
}

impl ActiveClock {
    /// A clock at zero now; `max_step` is how far it moves over a freeze.
    pub fn new(max_step: Duration) -> Self {
        Self {
            last_wall: Instant::now(),
            active: Duration::ZERO,
            stops_seen: stops(),
            max_step,
        }
    }

    /// Active time since [`ActiveClock::new`].
    pub fn now(&mut self) -> Duration {
        let wall = Instant::now();
        let stops = stops();
        let step = wall.saturating_duration_since(self.last_wall);
        self.active += advance(step, stops != self.stops_seen, self.max_step);
        self.last_wall = wall;
        self.stops_seen = stops;
        self.active
    }
}

/// How far active time moves over `step` of wall time: all of it, unless the process was frozen
/// meanwhile, then no more than one normal step.
fn advance(step: Duration, frozen_meanwhile: bool, max_step: Duration) -> Duration {
    if frozen_meanwhile {
        step.min(max_step)
    } else {
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_without_a_freeze_counts_whole() {
        let step = Duration::from_secs(7);
        assert_eq!(advance(step, false, Duration::from_millis(250)), step);
    }

    #[test]
    fn a_step_across_a_freeze_counts_as_one_normal_step() {
        let max = Duration::from_millis(250);
        assert_eq!(advance(Duration::from_secs(30), true, max), max);
        assert_eq!(
            advance(Duration::from_millis(10), true, max),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_process_that_is_continued_sees_its_attempt_span_a_freeze_and_its_clock_hold() {
        install();
        let attempt = Attempt::start();
        let mut clock = ActiveClock::new(Duration::from_millis(50));
        assert!(!attempt.spanned_a_freeze());
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signals this very thread (the handler runs before `raise` returns); SIGCONT to
        // a running process only runs the handler.
        unsafe { libc::raise(libc::SIGCONT) };
        assert!(attempt.spanned_a_freeze());
        assert!(clock.now() <= Duration::from_millis(50));
    }
}

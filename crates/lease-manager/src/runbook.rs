//! Fix `recovery_runbook`: what the operators did by hand in October 2025, done by the lease
//! manager itself. When its state checks come back after failing, it drops the backlog they left
//! (work whose requesters gave up long ago) and admits renewals at a bounded rate; once the
//! leases are back it lifts that bound. As pure logic: the manager tells it each check's outcome
//! and each second's leases, and does what it answers.

use std::sync::atomic::{AtomicBool, Ordering};

/// Leases count as back when this share of the servers hold one (a throttle only a little
/// above the renewals' rate refuses a few in its bursts, and their leases lapse a moment).
pub const BACK_SHARE: f64 = 0.95;

/// The runbook's state.
#[derive(Debug)]
pub struct Runbook {
    per_second: u32,
    /// A state check has failed since the last one that succeeded.
    failing: AtomicBool,
    /// The bound is on, until the leases are back.
    bounding: AtomicBool,
}

impl Runbook {
    /// A runbook that admits `per_second` renewals while the leases come back.
    pub fn new(per_second: u32) -> Self {
        Runbook {
            per_second,
            failing: AtomicBool::new(false),
            bounding: AtomicBool::new(false),
        }
    }

    /// A state check failed.
    pub fn check_failed(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    /// A state check succeeded: the rate to bound renewals to if the runbook starts now (the
    /// checks were failing until this one), when the manager also drops its backlog.
    pub fn check_succeeded(&self) -> Option<u32> {
        if !self.failing.swap(false, Ordering::Relaxed) {
            return None;
        }
        self.bounding.store(true, Ordering::Relaxed);
        Some(self.per_second)
    }

    /// A second's leases: whether to lift the bound now (they are back).
    pub fn leases(&self, valid: u64, servers: u64) -> bool {
        let back = servers > 0 && valid as f64 >= servers as f64 * BACK_SHARE;
        back && self.bounding.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_starts_once_when_the_checks_come_back_and_ends_when_the_leases_are_back() {
        let runbook = Runbook::new(120);
        assert_eq!(
            runbook.check_succeeded(),
            None,
            "nothing failed: nothing to do"
        );
        runbook.check_failed();
        runbook.check_failed();
        assert_eq!(runbook.check_succeeded(), Some(120));
        assert_eq!(runbook.check_succeeded(), None, "once per outage");
        assert!(!runbook.leases(200, 300), "not back yet");
        assert!(runbook.leases(290, 300));
        assert!(!runbook.leases(300, 300), "already lifted");
    }
}

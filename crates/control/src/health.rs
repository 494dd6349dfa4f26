//! Control's judgement of a storage server from its recent probes. Pure logic.

use std::collections::VecDeque;

/// The recent probe results of one server and the verdict they add up to.
///
/// A server becomes unhealthy when `fail_threshold` of its last `window` probes failed, and
/// healthy again only after `recover_after` probes in a row succeeded: a server on the edge
/// (its cache half gone, some probes in time and some not) does not flap between the two.
#[derive(Debug, Clone)]
pub(crate) struct ProbeWindow {
    results: VecDeque<bool>,
    window: usize,
    fail_threshold: usize,
    recover_after: usize,
    ok_streak: usize,
    healthy: bool,
}

impl ProbeWindow {
    pub(crate) fn new(window: u32, fail_threshold: u32, recover_after: u32) -> Self {
        Self {
            results: VecDeque::with_capacity(window as usize),
            window: window.max(1) as usize,
            fail_threshold: fail_threshold.max(1) as usize,
            recover_after: recover_after.max(1) as usize,
            ok_streak: 0,
            healthy: true,
        }
    }

    /// Whether the server counts as serving I/O.
    pub(crate) fn healthy(&self) -> bool {
        self.healthy
    }

    /// Failed probes in the window.
    pub(crate) fn failures(&self) -> usize {
        self.results.iter().filter(|ok| !**ok).count()
    }

    /// Records one probe; returns `Some(new verdict)` when the verdict changed.
    pub(crate) fn record(&mut self, ok: bool) -> Option<bool> {
        if self.results.len() == self.window {
            self.results.pop_front();
        }
        self.results.push_back(ok);
        self.ok_streak = if ok { self.ok_streak + 1 } else { 0 };
        let was = self.healthy;
        if self.healthy && self.failures() >= self.fail_threshold {
            self.healthy = false;
        } else if !self.healthy && self.ok_streak >= self.recover_after {
            self.healthy = true;
            self.results.clear();
        }
        (was != self.healthy).then_some(self.healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_turns_unhealthy_after_enough_failures_in_the_window() {
        let mut w = ProbeWindow::new(5, 3, 3);
        assert_eq!(w.record(false), None);
        assert_eq!(w.record(true), None);
        assert_eq!(w.record(false), None);
        assert_eq!(w.record(false), Some(false));
        assert!(!w.healthy());
    }

    #[test]
    fn old_failures_slide_out_of_the_window() {
        let mut w = ProbeWindow::new(3, 2, 1);
        for ok in [false, true, true, false, true, true, false] {
            assert_eq!(w.record(ok), None, "never two failures within three probes");
        }
        assert!(w.healthy());
    }

    #[test]
    fn recovery_needs_a_streak_of_successes() {
        let mut w = ProbeWindow::new(3, 1, 3);
        assert_eq!(w.record(false), Some(false));
        assert_eq!(w.record(true), None);
        assert_eq!(w.record(true), None);
        assert_eq!(w.record(false), None, "the streak is broken");
        assert_eq!(w.record(true), None);
        assert_eq!(w.record(true), None);
        assert_eq!(w.record(true), Some(true));
        assert_eq!(
            w.failures(),
            0,
            "a recovered server starts with a clean window"
        );
    }
}

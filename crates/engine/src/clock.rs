//! The lab clock: milliseconds since the run started, not counting the time the run was frozen
//! (`outage-lab workshop` stops every process at each link of the chain). Every journal stamp
//! and every step's time is read from it, so a freeze moves nothing on the timeline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Cheap to clone; every clone reads the same clock.
#[derive(Debug, Clone)]
pub struct LabClock {
    inner: Arc<Mutex<Held>>,
}

#[derive(Debug)]
struct Held {
    t0: Instant,
    /// Total time spent frozen before the current freeze.
    held: Duration,
    /// When the current freeze started.
    frozen_at: Option<Instant>,
    /// Freezes so far.
    freezes: u64,
}

impl Held {
    fn lab_at(&self, wall: Instant) -> Duration {
        let wall = self.frozen_at.map_or(wall, |f| f.min(wall));
        wall.saturating_duration_since(self.t0)
            .saturating_sub(self.held)
    }
}

impl LabClock {
    /// A clock at zero now.
    pub fn start() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Held {
                t0: Instant::now(),
                held: Duration::ZERO,
                frozen_at: None,
                freezes: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lab time now.
    pub fn now(&self) -> Duration {
        self.lock().lab_at(Instant::now())
    }

    /// Lab time now, in milliseconds (the journal's `t_ms`).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wall time since the clock started, freezes included.
    pub fn wall(&self) -> Duration {
        self.lock().t0.elapsed()
    }

    /// Stops lab time (idempotent).
    pub fn hold(&self) {
        let mut h = self.lock();
        if h.frozen_at.is_none() {
            h.frozen_at = Some(Instant::now());
            h.freezes += 1;
        }
    }

    /// How many freezes have started: an outcome awaited across a change of it spanned one.
    pub fn freezes(&self) -> u64 {
        self.lock().freezes
    }

    /// Lets lab time run again; returns how long it was held (zero if it was not).
    pub fn release(&self) -> Duration {
        let mut h = self.lock();
        let Some(since) = h.frozen_at.take() else {
            return Duration::ZERO;
        };
        let frozen = since.elapsed();
        h.held += frozen;
        frozen
    }

    /// Whether lab time is held.
    pub fn is_held(&self) -> bool {
        self.lock().frozen_at.is_some()
    }

    /// The wall instant at which lab time reaches `lab`, if it runs from now on (for a frozen
    /// clock: as if released now).
    pub fn instant_at(&self, lab: Duration) -> Instant {
        let now = Instant::now();
        let lab_now = self.lock().lab_at(now);
        now + lab.saturating_sub(lab_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_time_does_not_move_while_held_and_resumes_where_it_stopped() {
        let clock = LabClock::start();
        std::thread::sleep(Duration::from_millis(30));
        clock.hold();
        let at_hold = clock.now();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(clock.now(), at_hold, "held");
        assert!(clock.release() >= Duration::from_millis(60));
        let after = clock.now();
        assert!(after >= at_hold && after < at_hold + Duration::from_millis(30));
        assert!(clock.wall() >= Duration::from_millis(90));
    }

    #[test]
    fn a_step_time_is_pushed_back_by_a_freeze() {
        let clock = LabClock::start();
        clock.hold();
        std::thread::sleep(Duration::from_millis(50));
        let due = clock.instant_at(Duration::from_millis(100));
        clock.release();
        let left = due.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(80), "{left:?}");
    }
}

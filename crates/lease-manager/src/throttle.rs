//! The operators' throttle: at most so many renewals admitted per second, the rest refused at
//! once (`429 request limit exceeded`, come back in a second), as AWS engineers throttled incoming work on 20 October. A
//! token bucket holding a tenth of a second's worth: the rate is kept within every tenth of a
//! second, so a throttle never lets a whole second's renewals in at one instant.

use std::time::Instant;

/// A token bucket of `per_second` tokens, refilled continuously.
#[derive(Debug, Clone)]
pub struct Throttle {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Throttle {
    /// A full bucket for `per_second`, at `now`.
    pub fn new(per_second: u32, now: Instant) -> Self {
        let burst = (f64::from(per_second) / 10.0).max(1.0);
        Self {
            per_second: f64::from(per_second),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Whether one more renewal may come in at `now`.
    pub fn admit(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn at_once_a_tenth_of_the_rate_gets_in_and_over_a_second_the_rate() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(100, t0);
        let admitted_at = |throttle: &mut Throttle, ms: u64| {
            let now = t0 + Duration::from_millis(ms);
            (0..50).filter(|_| throttle.admit(now)).count()
        };
        assert_eq!(admitted_at(&mut throttle, 0), 10);
        assert_eq!(admitted_at(&mut throttle, 50), 5);
        let over_a_second: usize = (1..=10)
            .map(|k| admitted_at(&mut throttle, 50 + 100 * k))
            .sum();
        assert_eq!(over_a_second, 100);
        assert_eq!(
            admitted_at(&mut throttle, 60_000),
            10,
            "idle time does not pile up"
        );
    }
}

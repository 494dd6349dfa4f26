//! Who gets into the control plane's API: the throttling policy (token buckets) and the count
//! of what it decided per customer. Pure logic with the clock passed in, so the policies are
//! unit-tested on their own.
//!
//! 2012's policy was one bucket for the whole region: once a storm of recovery calls from the
//! customers with stuck volumes emptied it, every customer was throttled alike, including those
//! whose volumes were fine. The fix AWS announced was a bucket per customer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which calls the API refuses before they reach its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// No throttling: only the API's capacity limits it.
    #[default]
    None,
    /// One bucket for the whole region (the 2012 policy).
    Global,
    /// One bucket per customer account (the fix).
    PerCustomer,
}

impl Policy {
    /// Its name as a scenario writes it.
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Global => "global",
            Policy::PerCustomer => "per_customer",
        }
    }
}

/// A throttling policy and the region's allowance: `rate` calls per second, up to `burst` at
/// once. With `global` that is one bucket for everyone; with `per_customer` it is divided evenly
/// among the accounts, each with its own bucket (the same total, shared fairly).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// `none`, `global` or `per_customer`.
    #[serde(default)]
    pub policy: Policy,
    /// Calls per second the region admits.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Calls the region admits at once.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_rate() -> f64 {
    20.0
}
fn default_burst() -> u32 {
    20
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            policy: Policy::None,
            rate: default_rate(),
            burst: default_burst(),
        }
    }
}

impl ThrottleConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate > 0.0 && self.rate <= 1_000_000.0) {
            return Err(format!(
                "api.throttle.rate must be in (0, 1000000] calls per second, got {}",
                self.rate
            ));
        }
        if self.burst == 0 {
            return Err("api.throttle.burst must be at least 1".into());
        }
        Ok(())
    }
}

/// A token bucket on a caller's clock (`now` is any monotonic time since a fixed start).
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Duration,
}

impl Bucket {
    fn full(size: f64, now: Duration) -> Self {
        Self {
            tokens: size,
            last: now,
        }
    }

    /// Takes one token from a bucket of `size` refilled at `rate`, or says how long until one
    /// is there.
    fn take(&mut self, (rate, size): (f64, f64), now: Duration) -> Result<(), Duration> {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(size);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// The throttle: the policy in force and its buckets.
#[derive(Debug)]
pub struct Gate {
    config: ThrottleConfig,
    /// Accounts the region's allowance is divided among under `per_customer`.
    accounts: usize,
    region: Bucket,
    customers: BTreeMap<String, Bucket>,
}

impl Gate {
    /// A gate for `accounts` customers with full buckets at `now`.
    pub fn new(config: ThrottleConfig, accounts: usize, now: Duration) -> Self {
        Self {
            region: Bucket::full(f64::from(config.burst), now),
            customers: BTreeMap::new(),
            accounts: accounts.max(1),
            config,
        }
    }

    /// One customer's bucket under `per_customer`: `(rate, size)`, an even share of the
    /// region's, and room for at least one call.
    fn share(&self) -> (f64, f64) {
        let n = self.accounts as f64;
        (
            self.config.rate / n,
            (f64::from(self.config.burst) / n).max(1.0),
        )
    }

    /// The policy in force.
    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// Switches to another policy (buckets start full), as 2012 did mid-event.
    pub fn switch(&mut self, config: ThrottleConfig, now: Duration) {
        *self = Self::new(config, self.accounts, now);
    }

    /// Whether `customer`'s call at `now` may go on; if not, when to retry.
    pub fn admit(&mut self, customer: &str, now: Duration) -> Result<(), Duration> {
        let config = self.config;
        match config.policy {
            Policy::None => Ok(()),
            Policy::Global => (self.region).take((config.rate, f64::from(config.burst)), now),
            Policy::PerCustomer => {
                let share = self.share();
                (self.customers.entry(customer.to_owned()))
                    .or_insert_with(|| Bucket::full(share.1, now))
                    .take(share, now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(policy: Policy, rate: f64, burst: u32) -> Gate {
        Gate::new(
            ThrottleConfig {
                policy,
                rate,
                burst,
            },
            2,
            Duration::ZERO,
        )
    }

    /// Calls `customer` makes every `every` for `secs` seconds; returns how many were admitted.
    fn admitted(g: &mut Gate, customer: &str, every: Duration, secs: u64) -> u32 {
        let mut t = Duration::ZERO;
        let mut n = 0;
        while t < Duration::from_secs(secs) {
            n += u32::from(g.admit(customer, t).is_ok());
            t += every;
        }
        n
    }

    #[test]
    fn no_policy_admits_everything() {
        let mut g = gate(Policy::None, 1.0, 1);
        assert_eq!(admitted(&mut g, "c1", Duration::from_millis(1), 1), 1000);
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let mut g = gate(Policy::Global, 10.0, 5);
        // 1,000 calls in 2 s: 5 at once, then 10 per second.
        let n = admitted(&mut g, "c1", Duration::from_millis(2), 2);
        assert!((24..=26).contains(&n), "admitted {n}");
    }

    #[test]
    fn a_refused_call_learns_when_a_token_will_be_there() {
        let mut g = gate(Policy::Global, 4.0, 1);
        assert!(g.admit("c1", Duration::ZERO).is_ok());
        let wait = g.admit("c1", Duration::ZERO).expect_err("bucket is empty");
        assert_eq!(wait, Duration::from_millis(250));
    }

    /// `n` calls from `customer` at `t`; how many were admitted.
    fn burst_of(g: &mut Gate, customer: &str, n: u32, t: Duration) -> u32 {
        (0..n)
            .map(|_| u32::from(g.admit(customer, t).is_ok()))
            .sum()
    }

    #[test]
    fn under_the_global_policy_a_storm_from_one_customer_throttles_a_bystander() {
        let mut g = gate(Policy::Global, 10.0, 10);
        assert_eq!(burst_of(&mut g, "affected", 20, Duration::ZERO), 10);
        assert!(
            g.admit("bystander", Duration::from_millis(10)).is_err(),
            "the region's bucket is empty for everyone"
        );
    }

    #[test]
    fn under_the_per_customer_policy_a_bystander_keeps_its_own_bucket() {
        // Two accounts: each gets half the region's 10 per second and burst of 10.
        let mut g = gate(Policy::PerCustomer, 10.0, 10);
        assert_eq!(burst_of(&mut g, "affected", 20, Duration::ZERO), 5);
        assert!(g.admit("affected", Duration::from_millis(10)).is_err());
        assert!(g.admit("bystander", Duration::from_millis(10)).is_ok());
    }

    #[test]
    fn switching_policy_starts_with_full_buckets() {
        let mut g = gate(Policy::Global, 1.0, 2);
        admitted(&mut g, "c1", Duration::from_millis(10), 1);
        g.switch(
            ThrottleConfig {
                policy: Policy::PerCustomer,
                rate: 1.0,
                burst: 4,
            },
            Duration::from_secs(1),
        );
        assert_eq!(g.config().policy, Policy::PerCustomer);
        assert!(g.admit("c1", Duration::from_secs(1)).is_ok());
        assert!(g.admit("c1", Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn rates_and_bursts_out_of_range_are_named() {
        let bad = ThrottleConfig {
            policy: Policy::Global,
            rate: 0.0,
            burst: 1,
        };
        assert!(
            bad.validate()
                .expect_err("rate 0")
                .contains("api.throttle.rate")
        );
        let bad = ThrottleConfig {
            rate: 1.0,
            burst: 0,
            ..bad
        };
        assert!(
            bad.validate()
                .expect_err("burst 0")
                .contains("api.throttle.burst")
        );
    }
}

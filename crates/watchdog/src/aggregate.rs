//! The 2012 monitoring: one server's aggregate memory against a fraction of its budget.
//!
//! This is the alarm that did not fire in October 2012. A storage server uses whatever memory the
//! agent leaves for its cache, so agent + storage sits near `fill_fraction` of the budget whether
//! or not the agent leaks: set the threshold above that and it stays silent while the cache is
//! squeezed out; set it below and it fires all the time on healthy servers. The lab runs it
//! beside the leak detector to show exactly that.

use serde::{Deserialize, Serialize};

/// Settings of the aggregate alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Fire when agent + storage RSS exceeds this share of the server's budget...
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// ...for this many consecutive sweeps.
    #[serde(default = "default_for_samples")]
    pub for_samples: u32,
    /// Count memory in use minus what the storage cache could give back (each storage process
    /// tells its cache size at its target's `cache_url`): better general monitoring, one of the
    /// fixes announced after 2012. Off: the 2012 alarm, RSS as it is.
    #[serde(default)]
    pub net_of_cache: bool,
}

fn default_threshold() -> f64 {
    0.95
}
fn default_for_samples() -> u32 {
    4
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            for_samples: default_for_samples(),
            net_of_cache: false,
        }
    }
}

impl AggregateConfig {
    /// Checks ranges serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!(
                "aggregate.threshold must be a positive share of the budget, got {}",
                self.threshold
            ));
        }
        if self.for_samples == 0 {
            return Err("aggregate.for_samples must be at least 1".into());
        }
        Ok(())
    }
}

/// The aggregate alarm of one server: fires once after `for_samples` consecutive sweeps above the
/// threshold, and re-arms after a sweep at or below it (like a Prometheus rule with `for:`).
#[derive(Debug, Clone)]
pub struct AggregateAlarm {
    threshold: f64,
    for_samples: u32,
    /// Consecutive sweeps above the threshold so far.
    above: u32,
    /// Whether it has fired in the current excursion above the threshold.
    fired: bool,
}

impl AggregateAlarm {
    /// A fresh, armed alarm.
    pub fn new(config: &AggregateConfig) -> Self {
        Self {
            threshold: config.threshold,
            for_samples: config.for_samples.max(1),
            above: 0,
            fired: false,
        }
    }

    /// Feeds one sweep in which both of the server's processes were sampled: `total` is agent +
    /// storage RSS, `budget` the server's budget. Sweeps missing a process (one of them is being
    /// restarted) should not be fed at all: they neither count nor reset. Returns the alarm
    /// detail when it fires.
    pub fn observe(&mut self, total: u64, budget: u64) -> Option<String> {
        self.observe_net(total, None, budget)
    }

    /// [`AggregateAlarm::observe`] for memory net of the storage cache: `cache` bytes of `total`
    /// could be given back, so only the rest counts.
    pub fn observe_net(&mut self, total: u64, cache: Option<u64>, budget: u64) -> Option<String> {
        let counted = total.saturating_sub(cache.unwrap_or(0));
        let limit = self.threshold * budget as f64;
        let what = match cache {
            None => format!("agent + storage RSS {:.2} MiB", mib(total)),
            Some(cache) => format!(
                "agent + storage RSS {:.2} MiB minus {:.2} MiB of storage cache = {:.2} MiB",
                mib(total),
                mib(cache),
                mib(counted)
            ),
        };
        let total = counted;
        if total as f64 <= limit {
            self.above = 0;
            self.fired = false;
            return None;
        }
        self.above = self.above.saturating_add(1);
        if self.fired || self.above < self.for_samples {
            return None;
        }
        self.fired = true;
        Some(format!(
            "{what} above {:.0}% of the {:.2} MiB budget ({:.2} MiB) for {} consecutive sweeps",
            self.threshold * 100.0,
            mib(budget),
            limit / (1024.0 * 1024.0),
            self.above,
        ))
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 48 << 20;
    const HIGH: u64 = 47 << 20; // 97.9%
    const LOW: u64 = 43 << 20; // 89.6%: a healthy, full server

    fn alarm() -> AggregateAlarm {
        AggregateAlarm::new(&AggregateConfig::default())
    }

    #[test]
    fn it_fires_after_for_samples_consecutive_sweeps_above_the_threshold() {
        let mut a = alarm();
        assert!(a.observe(HIGH, BUDGET).is_none());
        assert!(a.observe(HIGH, BUDGET).is_none());
        assert!(a.observe(HIGH, BUDGET).is_none());
        let detail = a.observe(HIGH, BUDGET).expect("fires on the 4th sweep");
        assert!(detail.contains("4 consecutive sweeps"), "{detail}");
        assert!(
            a.observe(HIGH, BUDGET).is_none(),
            "fires once per excursion"
        );
    }

    #[test]
    fn a_single_spike_does_not_fire() {
        let mut a = alarm();
        for _ in 0..10 {
            assert!(a.observe(LOW, BUDGET).is_none());
            assert!(a.observe(HIGH, BUDGET).is_none());
            assert!(a.observe(HIGH, BUDGET).is_none());
            assert!(a.observe(HIGH, BUDGET).is_none());
        }
    }

    #[test]
    fn it_rearms_after_dropping_below_the_threshold() {
        let mut a = alarm();
        let fired = (0..4).filter_map(|_| a.observe(HIGH, BUDGET)).count();
        assert_eq!(fired, 1);
        assert!(a.observe(LOW, BUDGET).is_none());
        let again = (0..4).filter_map(|_| a.observe(HIGH, BUDGET)).count();
        assert_eq!(again, 1, "fires again after re-arming");
    }

    #[test]
    fn a_full_but_healthy_server_at_its_fill_fraction_never_fires() {
        let mut a = alarm();
        assert!((0..1000).all(|_| a.observe(LOW, BUDGET).is_none()));
    }

    #[test]
    fn exactly_at_the_threshold_is_not_above_it() {
        let mut a = AggregateAlarm::new(&AggregateConfig {
            threshold: 0.5,
            for_samples: 1,
            net_of_cache: false,
        });
        assert!(a.observe(BUDGET / 2, BUDGET).is_none());
        assert!(a.observe(BUDGET / 2 + 1, BUDGET).is_some());
    }

    #[test]
    fn net_of_cache_only_what_the_cache_cannot_give_back_counts() {
        let config = AggregateConfig {
            for_samples: 1,
            threshold: 0.6,
            net_of_cache: true,
        };
        let mut a = AggregateAlarm::new(&config);
        // A full, healthy server: 47 MiB in use, 26 of them cache.
        assert!(a.observe_net(HIGH, Some(26 << 20), BUDGET).is_none());
        // The agent has leaked the cache away: 47 MiB in use, 8 of them cache.
        let detail = (a.observe_net(HIGH, Some(8 << 20), BUDGET)).expect("fires");
        assert!(
            detail.contains("minus 8.00 MiB of storage cache = 39.00 MiB"),
            "{detail}"
        );
    }

    #[test]
    fn bad_settings_are_rejected() {
        AggregateConfig::default()
            .validate()
            .expect("defaults are valid");
        for threshold in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let c = AggregateConfig {
                threshold,
                for_samples: 4,
                net_of_cache: false,
            };
            assert!(c.validate().is_err(), "{threshold}");
        }
        let c = AggregateConfig {
            threshold: 0.95,
            for_samples: 0,
            net_of_cache: false,
        };
        assert!(c.validate().is_err());
    }
}

//! The expectations about customer accounts: what the API's throttling did to bystanders, and
//! how fast the affected customers got a working volume again. Judged on what each account's
//! automation really saw ([`CustomersReport`]).

use std::time::Duration;

use outage_lab_proto::report::{ApiCalls, CustomerReport, CustomersReport, ExpectationResult};

use crate::check::{CheckInput, first_few, result};
use crate::scenario::expect::ThrottledExpectation;

fn accounts<'a>(input: &'a CheckInput<'_>) -> &'a [CustomerReport] {
    input
        .customers
        .map_or(&[], |c: &CustomersReport| &c.accounts)
}

fn split<'a>(input: &'a CheckInput<'_>) -> (Vec<&'a CustomerReport>, Vec<&'a CustomerReport>) {
    accounts(input).iter().partition(|c| c.affected)
}

fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Every bystander's API success is at least `least`.
pub fn bystander_api_success(input: &CheckInput<'_>, least: f64) -> ExpectationResult {
    const NAME: &str = "bystander_api_success_at_least";
    let (affected, bystanders) = split(input);
    let Some(worst) = bystanders
        .iter()
        .min_by(|a, b| a.api_success.total_cmp(&b.api_success))
    else {
        return result(
            NAME,
            false,
            format!(
                "no bystanders: all {} customers had a stuck volume",
                affected.len()
            ),
        );
    };
    let mut all = ApiCalls::default();
    bystanders.iter().for_each(|c| all.add(&c.calls));
    let detail = format!(
        "{} bystanders: lowest API success {} ({}: {} of {} calls, {} throttled, {} over capacity), all together {}; expected at least {}",
        bystanders.len(),
        pct(worst.api_success),
        worst.name,
        worst.calls.ok,
        worst.calls.total(),
        worst.calls.throttled,
        worst.calls.overloaded,
        pct(all.success()),
        pct(least)
    );
    result(NAME, worst.api_success >= least, detail)
}

/// Every stuck episode of every affected customer ends within `within`.
pub fn affected_customers_recover(input: &CheckInput<'_>, within: Duration) -> ExpectationResult {
    const NAME: &str = "affected_customers_recover_within";
    let (affected, _) = split(input);
    if affected.is_empty() {
        return result(
            NAME,
            false,
            "no customer had a stuck volume: nothing to recover from".into(),
        );
    }
    let limit = within.as_millis() as u64;
    let mut slowest: Option<(u64, &str, &str)> = None;
    let mut late = Vec::new();
    let mut replaced = 0;
    for c in &affected {
        for e in &c.episodes {
            replaced += usize::from(e.replacement.is_some());
            let Some(took) = e.recovered_ms.map(|r| r.saturating_sub(e.stuck_ms)) else {
                late.push(format!("{} never recovered {}", c.name, e.volume));
                continue;
            };
            if slowest.is_none_or(|(t, _, _)| took > t) {
                slowest = Some((took, c.name.as_str(), e.volume.as_str()));
            }
            if took > limit {
                late.push(format!(
                    "{} took {:.1}s for {}",
                    c.name,
                    took as f64 / 1e3,
                    e.volume
                ));
            }
        }
    }
    let episodes: usize = affected.iter().map(|c| c.episodes.len()).sum();
    let mut detail = format!(
        "{} affected customers, {episodes} stuck volumes, {replaced} replaced through the API",
        affected.len()
    );
    if let Some((took, name, volume)) = slowest {
        detail.push_str(&format!(
            "; slowest recovery {:.1}s ({name}, {volume})",
            took as f64 / 1e3
        ));
    }
    detail.push_str(&format!("; expected within {:.1}s", within.as_secs_f64()));
    if !late.is_empty() {
        detail.push_str(&format!(": {}", first_few(&late, 3)));
    }
    result(NAME, late.is_empty(), detail)
}

/// Whether the throttle refused bystanders' calls.
pub fn api_calls_throttled(
    input: &CheckInput<'_>,
    rule: ThrottledExpectation,
) -> ExpectationResult {
    let (affected, bystanders) = split(input);
    let throttled = |group: &[&CustomerReport]| -> (u64, usize) {
        let calls = group.iter().map(|c| c.calls.throttled).sum();
        let hit = group.iter().filter(|c| c.calls.throttled > 0).count();
        (calls, hit)
    };
    let (a_calls, a_hit) = throttled(&affected);
    let (b_calls, b_hit) = throttled(&bystanders);
    let detail = format!(
        "throttled {a_calls} calls of {a_hit}/{} affected customers and {b_calls} calls of {b_hit}/{} bystanders (policy {})",
        affected.len(),
        bystanders.len(),
        input
            .customers
            .map_or("none", |c| c.throttle_policy.as_str())
    );
    let passed = match rule {
        ThrottledExpectation::BystandersHit => b_calls > 0,
        ThrottledExpectation::OnlyAffected => a_calls > 0 && b_calls == 0,
    };
    result("api_calls_throttled", passed, detail)
}

#[cfg(test)]
mod tests {
    use outage_lab_proto::report::RecoveryEpisode;

    use super::*;
    use crate::plan::Plan;
    use crate::run_state::RunState;

    fn customer(
        name: &str,
        ok: u64,
        throttled: u64,
        episodes: Vec<RecoveryEpisode>,
    ) -> CustomerReport {
        let calls = ApiCalls {
            ok,
            throttled,
            ..ApiCalls::default()
        };
        CustomerReport {
            name: name.into(),
            affected: !episodes.is_empty(),
            api_success: calls.success(),
            calls,
            calls_per_second: Vec::new(),
            episodes,
            ..CustomerReport::default()
        }
    }

    fn stuck(volume: &str, stuck_ms: u64, recovered_ms: Option<u64>) -> RecoveryEpisode {
        RecoveryEpisode {
            volume: volume.into(),
            stuck_ms,
            recovered_ms,
            replacement: recovered_ms.map(|_| "v0100".into()),
        }
    }

    fn judge<T>(accounts: Vec<CustomerReport>, f: impl Fn(&CheckInput<'_>) -> T) -> T {
        let report = CustomersReport {
            throttle_policy: "global".into(),
            accounts,
        };
        let plan = Plan::new(
            42,
            7,
            2,
            &["dns-a".to_owned()],
            &std::collections::BTreeSet::new(),
        );
        let state = RunState::default();
        f(&CheckInput {
            plan: &plan,
            state: &state,
            end_ms: 0,
            writes: None,
            customers: Some(&report),
            external_agent: false,
        })
    }

    #[test]
    fn a_throttled_bystander_fails_the_success_bar_and_is_named() {
        let accounts = vec![
            customer("c01", 50, 50, vec![stuck("v0001", 1000, Some(3000))]),
            customer("c02", 99, 1, vec![]),
            customer("c03", 90, 10, vec![]),
        ];
        let r = judge(accounts, |i| bystander_api_success(i, 0.99));
        assert!(!r.passed);
        assert!(
            r.detail.contains("lowest API success 90.0% (c03"),
            "{}",
            r.detail
        );
        let r = judge(vec![customer("c02", 99, 1, vec![])], |i| {
            bystander_api_success(i, 0.99)
        });
        assert!(r.passed, "{}", r.detail);
    }

    #[test]
    fn a_customer_that_never_recovered_fails_the_recovery_bar() {
        let accounts = vec![
            customer("c01", 1, 0, vec![stuck("v0001", 1000, Some(4000))]),
            customer("c02", 1, 0, vec![stuck("v0002", 1000, None)]),
        ];
        let r = judge(accounts, |i| {
            affected_customers_recover(i, Duration::from_secs(5))
        });
        assert!(!r.passed);
        assert!(
            r.detail.contains("c02 never recovered v0002"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn recovery_within_the_bar_holds_and_reports_the_slowest() {
        let accounts = vec![customer(
            "c01",
            1,
            0,
            vec![stuck("v0001", 1000, Some(4500))],
        )];
        let r = judge(accounts, |i| {
            affected_customers_recover(i, Duration::from_secs(5))
        });
        assert!(r.passed, "{}", r.detail);
        assert!(
            r.detail.contains("slowest recovery 3.5s (c01, v0001)"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn throttling_only_affected_customers_is_told_apart_from_hitting_bystanders() {
        let only_affected = vec![
            customer("c01", 5, 40, vec![stuck("v0001", 0, Some(1))]),
            customer("c02", 10, 0, vec![]),
        ];
        let r = judge(only_affected, |i| {
            api_calls_throttled(i, ThrottledExpectation::OnlyAffected)
        });
        assert!(r.passed, "{}", r.detail);
        let hit = vec![customer("c02", 10, 3, vec![])];
        let r = judge(hit, |i| {
            api_calls_throttled(i, ThrottledExpectation::OnlyAffected)
        });
        assert!(!r.passed, "{}", r.detail);
    }

    #[test]
    fn a_run_where_nothing_was_throttled_does_not_pass_as_only_affected() {
        let calm = vec![
            customer("c01", 5, 0, vec![stuck("v0001", 0, Some(1))]),
            customer("c02", 10, 0, vec![]),
        ];
        let r = judge(calm, |i| {
            api_calls_throttled(i, ThrottledExpectation::OnlyAffected)
        });
        assert!(!r.passed, "{}", r.detail);
    }
}

//! The control plane's API as the customers saw it, on the run's time axis: calls answered and
//! refused per second, and the share answered for affected customers beside bystanders.

use std::collections::BTreeMap;

use outage_lab_proto::report::CustomersReport;

use crate::series::Phases;
use outage_lab_engine::plot::{Frame, legend, trim};

/// Colours of the API plots, as CSS.
pub(crate) const CSS: &str = "svg .apiok{stroke:#2ca02c;stroke-width:2}svg .apithr{stroke:#e377c2;stroke-width:2}\
svg .apiover{stroke:#7f7f7f;stroke-width:2}svg .affected{stroke:#8c564b;stroke-width:2}\
svg .bystander{stroke:#1f77b4;stroke-width:2}";

/// Per second of the run (points at the middle of each second): calls answered, throttled and
/// refused at capacity over every account, and the share answered for affected accounts and
/// for bystanders (in %, only for seconds in which that group called).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiSeries {
    pub(crate) ok: Vec<(u64, f64)>,
    pub(crate) throttled: Vec<(u64, f64)>,
    pub(crate) overloaded: Vec<(u64, f64)>,
    pub(crate) affected_success: Vec<(u64, f64)>,
    pub(crate) bystander_success: Vec<(u64, f64)>,
}

pub(crate) fn series(customers: &CustomersReport) -> ApiSeries {
    // second -> [ok, throttled, overloaded, failed] for (all, affected, bystanders).
    let mut by_second: BTreeMap<u64, [[u64; 4]; 3]> = BTreeMap::new();
    for account in &customers.accounts {
        let group = if account.affected { 1 } else { 2 };
        for at in &account.calls_per_second {
            let c = at.calls;
            let (second, counts) = (at.second, [c.ok, c.throttled, c.overloaded, c.failed]);
            let slot = by_second.entry(second).or_default();
            for i in 0..4 {
                slot[0][i] += counts[i];
                slot[group][i] += counts[i];
            }
        }
    }
    let mut s = ApiSeries::default();
    let share = |c: &[u64; 4]| {
        let total: u64 = c.iter().sum();
        (total > 0).then(|| c[0] as f64 * 100.0 / total as f64)
    };
    for (second, [all, affected, bystanders]) in by_second {
        let t = second * 1000 + 500;
        s.ok.push((t, all[0] as f64));
        s.throttled.push((t, all[1] as f64));
        s.overloaded.push((t, all[2] as f64));
        if let Some(p) = share(&affected) {
            s.affected_success.push((t, p));
        }
        if let Some(p) = share(&bystanders) {
            s.bystander_success.push((t, p));
        }
    }
    s
}

/// The two API plots.
pub(crate) fn plots(out: &mut String, customers: &CustomersReport, phases: &Phases, end_ms: u64) {
    let s = series(customers);
    let top = (s.ok.iter().chain(&s.throttled).chain(&s.overloaded))
        .map(|p| p.1)
        .fold(1.0, f64::max);
    let f = Frame::new(200.0, end_ms as f64, 0.0, top * 1.1);
    f.open(out, "plot api", "API calls per second by outcome");
    f.phases(out, phases);
    f.value_axis(out, trim);
    f.time_axis(out);
    f.polyline(out, "apiok", &s.ok, "calls answered per second");
    f.polyline(
        out,
        "apithr",
        &s.throttled,
        "calls throttled (429) per second",
    );
    f.polyline(
        out,
        "apiover",
        &s.overloaded,
        "calls refused at capacity (503) per second",
    );
    out.push_str("</svg>\n");
    legend(
        out,
        &[
            ("#2ca02c".into(), "answered / s".into()),
            (
                "#e377c2".into(),
                format!(
                    "throttled (429) / s; policy at the end: {}",
                    customers.throttle_policy
                ),
            ),
            ("#7f7f7f".into(), "over capacity (503) / s".into()),
        ],
    );
    let f = Frame::new(160.0, end_ms as f64, 0.0, 100.0);
    f.open(out, "plot apisuccess", "share of API calls answered");
    f.phases(out, phases);
    f.value_axis(out, |v| format!("{}%", trim(v)));
    f.time_axis(out);
    f.polyline(
        out,
        "affected",
        &s.affected_success,
        "affected customers: calls answered",
    );
    f.polyline(
        out,
        "bystander",
        &s.bystander_success,
        "bystanders: calls answered",
    );
    out.push_str("</svg>\n");
    let (affected, bystanders): (Vec<_>, Vec<_>) =
        customers.accounts.iter().partition(|a| a.affected);
    legend(
        out,
        &[
            (
                "#8c564b".into(),
                format!(
                    "affected customers ({}): % of calls answered",
                    affected.len()
                ),
            ),
            (
                "#1f77b4".into(),
                format!(
                    "bystanders ({}, no stuck volume): % of calls answered",
                    bystanders.len()
                ),
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use outage_lab_proto::report::{ApiCalls, CallsInSecond, CustomerReport};

    use super::*;

    /// An account with `[second, ok, throttled, overloaded, failed]` rows.
    fn account(name: &str, affected: bool, per_second: Vec<[u64; 5]>) -> CustomerReport {
        let row = |[second, ok, throttled, overloaded, failed]: [u64; 5]| CallsInSecond {
            second,
            calls: ApiCalls {
                ok,
                throttled,
                overloaded,
                failed,
            },
        };
        CustomerReport {
            name: name.into(),
            affected,
            calls_per_second: per_second.into_iter().map(row).collect(),
            ..CustomerReport::default()
        }
    }

    #[test]
    fn seconds_add_up_over_accounts_and_split_success_by_group() {
        let customers = CustomersReport {
            throttle_policy: "global".into(),
            accounts: vec![
                account("c01", true, vec![[3, 1, 9, 0, 0], [4, 2, 0, 0, 0]]),
                account("c02", false, vec![[3, 1, 1, 0, 0]]),
            ],
        };
        let s = series(&customers);
        assert_eq!(s.ok, vec![(3500, 2.0), (4500, 2.0)]);
        assert_eq!(s.throttled, vec![(3500, 10.0), (4500, 0.0)]);
        assert_eq!(s.affected_success, vec![(3500, 10.0), (4500, 100.0)]);
        assert_eq!(
            s.bystander_success,
            vec![(3500, 50.0)],
            "c02 called only in second 3"
        );
    }
}

use std::time::Duration;

use super::*;

fn ran(empty_s: f64, failed: u64, passed: bool) -> Outcome<CellResult> {
    Outcome::Ran {
        exit: i32::from(!passed),
        metrics: CellResult {
            passed,
            measures: Measures {
                endpoint_empty_s: empty_s,
                requests_failed: failed,
                requests_ok: 100,
                served_stale: 0,
                outage_s: if failed > 0 { 14.0 } else { 0.0 },
                collapsed_s: 0.0,
                ..Measures::default()
            },
        },
        wall_s: 30.0,
        reruns: 0,
    }
}

fn compared(outcomes: Vec<Outcome<CellResult>>) -> Vec<Variant> {
    let fixes = ["serve_stale".to_owned()];
    let cells = summary::compare_cells(&fixes, &[1, 2, 3], Path::new("out"));
    let results = Results {
        outcomes,
        interrupted: None,
        wall: Duration::from_secs(60),
        most_at_once: 4,
    };
    variants(
        &cells,
        &results,
        &[Harm::EmptyEndpoint, Harm::FailedRequests],
    )
}

#[test]
fn a_fix_that_keeps_requests_working_on_an_empty_endpoint_prevents_only_the_failures() {
    let variants = compared(vec![
        ran(14.0, 300, true),
        ran(13.0, 280, true),
        ran(15.0, 320, true),
        ran(14.0, 0, true),
        ran(14.5, 0, true),
        ran(13.5, 0, true),
    ]);
    let stale = &variants[1];
    assert_eq!(stale.median.endpoint_empty_s, 14.0);
    assert!(stale.prevents(Harm::FailedRequests));
    assert!(!stale.prevents(Harm::EmptyEndpoint));
    assert_eq!(
        stale.verdict_line(),
        "serve_stale alone: the endpoint emptied on 3 of 3 seeds, requests failed on 0 of 3 seeds"
    );
    assert_eq!(variants[0].median.requests_failed, 300.0);
}

#[test]
fn an_expectation_holds_only_when_every_seed_ran_and_none_had_the_harm() {
    let expect = Expect::parse("serve_stale prevents failed_requests").expect("parses");
    let held = compared(
        vec![ran(14.0, 300, true); 3]
            .into_iter()
            .chain(vec![ran(14.0, 0, true); 3])
            .collect(),
    );
    assert!(expect.check(&held).is_ok());
    let mut outcomes = vec![ran(14.0, 300, true); 3];
    outcomes.extend([ran(14.0, 0, true), ran(14.0, 0, true)]);
    outcomes.push(Outcome::Failed {
        reason: "no".into(),
    });
    let one_missing = compared(outcomes);
    let line = expect.check(&one_missing).expect_err("a seed did not run");
    assert!(line.ends_with("(1 seed could not run)"), "{line}");
    let nobody = Expect::parse("dns_magic prevents failed_requests").expect("parses");
    assert!(nobody.check(&held).is_err());
}

#[test]
fn an_expectation_names_a_variant_and_a_harm_it_knows() {
    let parsed = Expect::parse("all fixes prevents empty_endpoint").expect("parses");
    assert_eq!(parsed.variant, "all fixes");
    assert_eq!(parsed.harm, Harm::EmptyEndpoint);
    for bad in [
        "serve_stale prevents outages",
        "prevents failed_requests",
        "serve_stale",
    ] {
        let e = Expect::parse(bad).expect_err(bad);
        assert!(
            e.contains("expected 'VARIANT prevents empty_endpoint'"),
            "{e}"
        );
    }
}

#[test]
fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(Vec::new()), 0.0);
}

#[test]
fn with_a_lease_manager_a_fix_that_keeps_it_working_prevents_the_collapse() {
    let with_collapse = |collapsed_s| match ran(14.0, 300, true) {
        Outcome::Ran {
            exit,
            mut metrics,
            wall_s,
            reruns,
        } => {
            metrics.measures.collapsed_s = collapsed_s;
            Outcome::Ran {
                exit,
                metrics,
                wall_s,
                reruns,
            }
        }
        other => other,
    };
    let fixes = ["admission_control".to_owned()];
    let cells = summary::compare_cells(&fixes, &[1, 2, 3], Path::new("out"));
    let results = Results {
        outcomes: [7.0, 7.0, 8.0, 0.0, 0.0, 0.0].map(with_collapse).to_vec(),
        interrupted: None,
        wall: Duration::from_secs(60),
        most_at_once: 4,
    };
    let Outcome::Ran { metrics, .. } = &results.outcomes[0] else {
        unreachable!("every cell ran")
    };
    assert!(
        metrics
            .headline()
            .ends_with("failed, lease manager collapsed 7.0s"),
        "{}",
        metrics.headline()
    );
    let harms = [Harm::EmptyEndpoint, Harm::FailedRequests, Harm::Collapse];
    let variants = variants(&cells, &results, &harms);
    assert_eq!(variants[0].median.collapsed_s, 7.0);
    assert!(!variants[0].prevents(Harm::Collapse));
    assert!(variants[1].prevents(Harm::Collapse));
    assert!(
        variants[1]
            .verdict_line()
            .ends_with("the lease manager collapsed on 0 of 3 seeds"),
        "{}",
        variants[1].verdict_line()
    );
}

#[test]
fn refused_launches_are_a_harm_only_where_customers_launch() {
    let shipped = crate::scenario::Scenario::parse(
        include_str!("../../../../fixtures/scenarios/dynamodb-2025-10-20.yaml"),
        "fixture",
    )
    .expect("the fixture parses");
    assert!(Harm::of(&shipped).contains(&Harm::RefusedLaunches));
    let mut quiet = shipped.clone();
    if let Some(leases) = quiet.leases.as_mut() {
        leases.launches = None;
    }
    assert!(!Harm::of(&quiet).contains(&Harm::RefusedLaunches));
    assert!(Harm::of(&quiet).contains(&Harm::Collapse));
    let e = Expect::parse("admission_control prevents refused_launches").expect("a harm");
    assert_eq!(e.harm, Harm::RefusedLaunches);
    let refused = |n| CellResult {
        passed: true,
        measures: Measures {
            launches_refused: Some(n),
            ..Measures::default()
        },
    };
    assert!(Harm::RefusedLaunches.happened(&refused(3).measures));
    assert!(!Harm::RefusedLaunches.happened(&refused(0).measures));
}

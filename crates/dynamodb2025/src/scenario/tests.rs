use super::*;

const FIXTURE: &str = include_str!("../../../../fixtures/scenarios/dynamodb-2025-10-20.yaml");

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, "s.yaml").map_err(|e| e.to_string())
}

/// The fixture with `from` replaced by `to` (which must be there).
fn edited(from: &str, to: &str) -> String {
    assert!(FIXTURE.contains(from), "the fixture has no {from:?}");
    FIXTURE.replacen(from, to, 1)
}

#[test]
fn the_shipped_scenario_is_valid_and_plays_its_steps_in_time_order() {
    let scenario = parse(FIXTURE).expect("valid");
    let names: Vec<&str> = scenario.steps().iter().map(|(_, s)| s.name()).collect();
    assert_eq!(
        names,
        [
            "slow_enactor",
            "disable_automation",
            "manual_repair",
            "throttle_renewals",
            "restart_lease_manager"
        ]
    );
    assert!(scenario.leases.is_some());
    assert!(scenario.fixes.on().is_empty());
}

#[test]
fn a_step_must_name_exactly_one_action_and_says_where_it_is() {
    let two = edited(
        "    disable_automation: {}",
        "    disable_automation: {}\n    manual_repair: {}",
    );
    let err = parse(&two).expect_err("two actions");
    assert!(err.starts_with("s.yaml:"), "{err}");
    assert!(err.contains("exactly one of slow_enactor"), "{err}");
}

#[test]
fn a_slowed_enactor_must_exist_and_vary_less_than_its_delay() {
    let unknown = edited("enactor: enactor-a", "enactor: enactor-z");
    let err = parse(&unknown).expect_err("no such enactor");
    assert!(
        err.contains("expected one of enactor-a, enactor-b, enactor-c"),
        "{err}"
    );
    let wild = edited("jitter: 50ms", "jitter: 2s");
    assert!(
        parse(&wild)
            .expect_err("too much")
            .contains("no larger than the delay")
    );
}

#[test]
fn a_step_after_the_end_or_a_misspelt_field_is_refused_with_its_line() {
    let late = edited("  - at: 18s", "  - at: 40s");
    let err = parse(&late).expect_err("after the end");
    assert!(err.contains("before the end of the run (36s)"), "{err}");
    let typo = edited("  ttl: 1s", "  tll: 1s");
    let err = parse(&typo).expect_err("unknown field");
    assert!(err.starts_with("s.yaml:") && err.contains("tll"), "{err}");
}

#[test]
fn a_scenario_for_another_incident_or_an_endpoint_outside_the_zone_is_refused() {
    let other = edited("incident: dynamodb-2025-10-20", "incident: ebs-2012-10-22");
    assert!(
        parse(&other)
            .expect_err("other")
            .contains("expected `incident: dynamodb-2025-10-20`")
    );
    let outside = edited(
        "endpoint: dynamodb.us-east-1.lab.internal.",
        "endpoint: dynamodb.example.com.",
    );
    assert!(
        parse(&outside)
            .expect_err("outside")
            .contains("in lab.internal.")
    );
}

#[test]
fn fixes_turn_on_by_name_and_say_which_are_on() {
    let mut fixes = Fixes::default();
    assert!(fixes.turn_on("serve_stale"));
    assert!(!fixes.turn_on("retry_harder"));
    assert_eq!(fixes.on(), ["serve_stale"]);
    assert!(!fixes.automation().enactor_checks_at_write);
}

#[test]
fn the_lease_managers_steps_and_fix_need_a_lease_manager() {
    let start = FIXTURE.find("leases:").expect("a leases section");
    let end = FIXTURE[start..]
        .find("\ntimeline:")
        .expect("the timeline after it")
        + start;
    let without = format!("{}{}", &FIXTURE[..start], &FIXTURE[end + 1..]);
    let err = parse(&without).expect_err("a restart with no manager");
    assert!(err.contains("this step acts on the lease manager"), "{err}");
    let first_half = (without.lines())
        .filter(|l| !l.contains("throttle_renewals") && !l.contains("restart_lease_manager"))
        .collect::<Vec<_>>()
        .join("\n");
    let first_half = first_half.replace("  - at: 27s\n  - at: 28s\n", "");
    let scenario = parse(&first_half).expect("the first half alone is valid");
    assert!(!scenario.fix_applies("admission_control"));
    let fixed = format!("{first_half}\nfixes: {{ admission_control: {{}} }}\n");
    let err = parse(&fixed).expect_err("admission control with no manager");
    assert!(
        err.contains("admission_control is the lease manager's fix"),
        "{err}"
    );
}

#[test]
fn a_lease_renewed_less_often_than_it_lasts_is_refused_with_its_field() {
    let slow = edited("renew_every: 3s", "renew_every: 5s");
    let err = parse(&slow).expect_err("lapses between renewals");
    assert!(
        err.starts_with("s.yaml:") && err.contains("a renewal more often than a lease lasts (4s)"),
        "{err}"
    );
    let none = edited("workers: 4", "workers: 0");
    assert!(
        parse(&none)
            .expect_err("no workers")
            .contains("expected 1 to 64, got 0")
    );
}

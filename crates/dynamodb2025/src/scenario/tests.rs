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
        ["slow_enactor", "disable_automation", "manual_repair"]
    );
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
    let late = edited("  - at: 18s", "  - at: 30s");
    let err = parse(&late).expect_err("after the end");
    assert!(err.contains("before the end of the run (26s)"), "{err}");
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

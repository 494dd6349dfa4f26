//! The CI recipe a team copies (docs/src/ci.md, docs/ci/outage-lab-agent.yml) is a workflow that
//! actionlint accepts, with shellcheck run on its scripts.

use std::process::Command;

use crate::support::repo;

#[test]
fn the_example_workflow_passes_actionlint_and_shellcheck() {
    let install = Command::new(repo().join("scripts/install-actionlint"))
        .output()
        .expect("run scripts/install-actionlint");
    assert!(
        install.status.success(),
        "scripts/install-actionlint failed (it needs python3 and PyPI):\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let bin = String::from_utf8_lossy(&install.stdout).trim().to_owned();
    let workflow = repo().join("docs/ci/outage-lab-agent.yml");
    let lint = Command::new(format!("{bin}/actionlint"))
        .args(["-verbose", "-shellcheck", &format!("{bin}/shellcheck")])
        .arg(&workflow)
        .output()
        .expect("run actionlint");
    let said =
        String::from_utf8_lossy(&lint.stdout).into_owned() + &String::from_utf8_lossy(&lint.stderr);
    assert!(lint.status.success(), "{said}");
    assert!(
        said.contains("Found total 0 errors")
            && !said.contains(r#"Rule "shellcheck" was disabled"#),
        "actionlint ran shellcheck on the run: scripts and found nothing: {said}"
    );
    let guide = std::fs::read_to_string(repo().join("docs/src/ci.md")).expect("docs/src/ci.md");
    assert!(
        guide.contains("docs/ci/outage-lab-agent.yml"),
        "the guide points at the workflow"
    );
}

//! The CI recipe a team copies (docs/src/ci.md, docs/ci/outage-lab-agent.yml) is a workflow that
//! actionlint accepts, with shellcheck run on its scripts; the action it uses (action.yml) is
//! well formed, documented, and its script passes shellcheck.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::repo;

/// Runs `command` to its end: whether it succeeded, and its stdout then its stderr.
fn run(command: &mut Command, what: &str) -> (bool, String, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The directory scripts/install-actionlint puts actionlint and shellcheck in.
fn lint_tools() -> PathBuf {
    let install = &mut Command::new(repo().join("scripts/install-actionlint"));
    let (ok, dir, said) = run(install, "scripts/install-actionlint");
    assert!(
        ok,
        "scripts/install-actionlint failed (it needs python3 and PyPI):\n{said}"
    );
    PathBuf::from(dir.trim())
}

/// Copies the repository's `files` into `dir` at the same paths, and makes `dir` a project as
/// actionlint finds one (a `.git` and a `.github/workflows` directory).
///
/// actionlint does not lint an action's metadata file given alone: it reads any YAML file as a
/// workflow. It does read action.yml where a workflow in a project `uses: ./`, and there checks
/// the metadata's steps (a `run:` needs its `shell:`), that every input the workflow passes
/// exists and every required one is passed, and the outputs the workflow reads. The repository
/// has no `.github/workflows`, so that project is made here.
fn project(dir: &Path, files: &[&str]) {
    for sub in [".git", ".github/workflows"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    for file in files {
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(repo().join(file), &to).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
}

#[test]
fn the_example_workflow_and_the_action_it_uses_pass_actionlint_and_shellcheck() {
    let bin = lint_tools();
    let tmp = tempfile::tempdir().expect("temp dir");
    project(tmp.path(), &["docs/ci/outage-lab-agent.yml", "action.yml"]);
    let mut lint = Command::new(bin.join("actionlint"));
    lint.args(["-verbose", "-shellcheck"])
        .arg(bin.join("shellcheck"))
        .arg("docs/ci/outage-lab-agent.yml")
        .current_dir(tmp.path());
    let (ok, out, err) = run(&mut lint, "actionlint");
    let said = out + &err;
    assert!(ok, "{said}");
    assert!(
        said.contains("Found total 0 errors")
            && said.contains("Using project at")
            && !said.contains(r#"Rule "shellcheck" was disabled"#),
        "actionlint read the action in its project and ran shellcheck on the run: scripts: {said}"
    );
    // The action's shell logic, as actionlint would check a `run:` script (-x: it sources
    // scripts/lib.sh, which shellcheck reads from the repository root).
    let mut shellcheck = Command::new(bin.join("shellcheck"));
    shellcheck
        .args(["-x", "scripts/action-run"])
        .current_dir(repo());
    let (ok, said, _) = run(&mut shellcheck, "shellcheck");
    assert!(ok, "{said}");
    let guide = std::fs::read_to_string(repo().join("docs/src/ci.md")).expect("docs/src/ci.md");
    assert!(
        guide.contains("docs/ci/outage-lab-agent.yml"),
        "the guide points at the workflow"
    );
}

#[test]
fn the_action_has_the_documented_inputs_and_outputs_and_runs_its_script() {
    let text = std::fs::read_to_string(repo().join("action.yml")).expect("action.yml");
    let action: serde_json::Value = serde_saphyr::from_str(&text).expect("action.yml is YAML");
    let names = |key: &str| -> Vec<String> {
        (action[key].as_object())
            .unwrap_or_else(|| panic!("action.yml has {key}"))
            .keys()
            .cloned()
            .collect()
    };
    let inputs = names("inputs");
    let want = [
        "scenario",
        "seed",
        "servers",
        "fix",
        "args",
        "working-directory",
    ];
    for input in want {
        assert!(
            inputs.iter().any(|i| i == input),
            "input {input} in {inputs:?}"
        );
    }
    assert_eq!(action["inputs"]["scenario"]["required"], true);
    let mut outputs = names("outputs");
    outputs.sort();
    assert_eq!(outputs, ["run-dir", "verdict"]);
    assert_eq!(action["runs"]["using"], "composite");
    let steps = action["runs"]["steps"].as_array().expect("steps");
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        !runs.is_empty() && runs.iter().all(|r| r.contains("scripts/action-run")),
        "every shell step is scripts/action-run: {runs:?}"
    );
    let guide = std::fs::read_to_string(repo().join("docs/src/ci.md")).expect("docs/src/ci.md");
    for name in inputs.iter().chain(&outputs) {
        assert!(
            guide.contains(&format!("`{name}`")),
            "docs/src/ci.md names `{name}`"
        );
    }
}

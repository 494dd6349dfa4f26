//! Bad scenarios: every file under fixtures/scenarios/bad/ is refused with exit 2 and a located
//! message before anything starts.
//!
//! Each text fixture breaks one thing in an otherwise valid scenario and says, on its first line
//! (`# expect: ...`), a piece of the message it must get. Every one of them has a position
//! (`file:line:column:`), even binary garbage (the first byte that is not UTF-8) and an empty file
//! (1:1). The two cases that genuinely have no position are made here at run time rather than
//! stored in git: a file over the size limit (refused before it is read) and a directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Finished, repo, run};

/// Fixtures with no room for an `# expect:` line, and what their message must say instead.
const NO_EXPECT_LINE: &[(&str, &str)] = &[
    ("empty.yaml", "the file is empty"),
    ("binary-garbage.yaml", "is not UTF-8"),
];

/// The corpus must keep at least this many distinct mistakes.
const AT_LEAST: usize = 22;

const LIMIT: Duration = Duration::from_secs(20);

fn bad_dir() -> PathBuf {
    repo().join("fixtures/scenarios/bad")
}

/// The `# expect:` text of a fixture, or the stand-in for one that cannot carry it.
fn expected_text(path: &Path, bytes: &[u8]) -> Result<String, String> {
    let name = path.file_name().unwrap().to_string_lossy();
    if let Some((_, text)) = NO_EXPECT_LINE.iter().find(|(n, _)| *n == name) {
        return Ok((*text).to_owned());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        "is not UTF-8 but is not listed in NO_EXPECT_LINE with its expected message".to_owned()
    })?;
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| "has no `# expect: <part of the message>` first line".to_owned())
}

/// Whether `stderr` has `path:LINE:COLUMN:` with a real (non-zero) line and column.
fn has_location(stderr: &str, path: &str) -> bool {
    let prefix = format!("{path}:");
    stderr.match_indices(&prefix).any(|(i, _)| {
        let rest = &stderr[i + prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let number = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                && p.and_then(|p| p.parse::<u64>().ok()).is_some_and(|n| n > 0)
        };
        number(parts.next()) && number(parts.next()) && parts.next().is_some()
    })
}

/// What is wrong with how `outage-lab` refused `path` (empty when it was refused properly).
fn problems(
    done: &Finished,
    path: &str,
    expected: &str,
    located: bool,
    run_dir: Option<&Path>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    if done.code() != Some(2) {
        wrong.push(format!("exit {:?}, expected 2", done.code()));
    }
    if done.stderr.contains("panicked") {
        wrong.push("panicked".into());
    }
    if !done.stderr.contains(path) {
        wrong.push("stderr does not name the file".into());
    }
    if located && !has_location(&done.stderr, path) {
        wrong.push("no `file:line:column:` in stderr".into());
    }
    if !done.stderr.contains(expected) {
        wrong.push(format!("stderr does not say {expected:?}"));
    }
    if let Some(dir) = run_dir.filter(|d| d.exists()) {
        wrong.push(format!("the run directory {} was created", dir.display()));
    }
    wrong
}

/// `support::run`, with a timeout turned into an error (its panic message, with the output, is
/// printed) so one stuck case does not hide the others.
fn run_bounded(args: &[&str]) -> Result<Finished, String> {
    std::panic::catch_unwind(|| run(args, LIMIT))
        .map_err(|_| format!("did not exit within {LIMIT:?} (its output is printed above)"))
}

/// Runs `validate PATH` and `run PATH --out <tmp>/run`; returns every problem, each prefixed
/// with the command it came from.
fn refuse_both_ways(path: &Path, expected: &str, located: bool) -> Vec<String> {
    let shown = path.to_str().expect("utf-8 path");
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let mut wrong = Vec::new();
    let mut said = String::new();
    match run_bounded(&["validate", shown]) {
        Ok(done) => {
            let accepted = done.code() == Some(0);
            for p in problems(&done, shown, expected, located, None) {
                wrong.push(format!("validate: {p}"));
            }
            let _ = write!(said, "validate said:\n{}\n", done.output());
            if accepted {
                // It would start a real fleet; that it is accepted is the failure.
                wrong.push("run: not tried, validate accepted the scenario".into());
                return with_output(wrong, &said);
            }
        }
        Err(e) => wrong.push(format!("validate: {e}")),
    }
    let out_arg = out.to_str().expect("utf-8 path");
    match run_bounded(&["run", shown, "--out", out_arg]) {
        Ok(done) => {
            for p in problems(&done, shown, expected, located, Some(&out)) {
                wrong.push(format!("run: {p}"));
            }
            let _ = write!(said, "run said:\n{}\n", done.output());
        }
        Err(e) => wrong.push(format!("run: {e}")),
    }
    with_output(wrong, &said)
}

/// `wrong`, followed by what the commands printed when anything is wrong.
fn with_output(mut wrong: Vec<String>, said: &str) -> Vec<String> {
    if !wrong.is_empty() && !said.is_empty() {
        wrong.push(said.trim_end().to_owned());
    }
    wrong
}

#[test]
fn every_bad_scenario_is_refused_with_exit_2_and_a_located_message() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(bad_dir())
        .expect("fixtures/scenarios/bad exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= AT_LEAST,
        "expected at least {AT_LEAST} bad scenarios, found {}",
        paths.len()
    );
    for (name, _) in NO_EXPECT_LINE {
        assert!(
            paths.iter().any(|p| p.ends_with(name)),
            "{name} is missing from the corpus"
        );
    }

    let mut report = String::new();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).expect("read fixture");
        let wrong = match expected_text(path, &bytes) {
            Ok(expected) => refuse_both_ways(path, &expected, true),
            Err(e) => vec![e],
        };
        if !wrong.is_empty() {
            let _ = writeln!(report, "\n== {name}\n{}", wrong.join("\n"));
        }
    }
    assert!(
        report.is_empty(),
        "bad scenarios not refused properly:{report}"
    );
}

#[test]
fn a_scenario_over_one_mebibyte_is_refused_before_it_is_parsed() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = tmp.path().join("huge.yaml");
    // A valid scenario padded with comments: the size is its only mistake.
    let mut text =
        std::fs::read_to_string(repo().join("fixtures/scenarios/ebs-2012-10-22.yaml")).unwrap();
    let pad = format!("# {}\n", "padding ".repeat(16));
    while text.len() <= 1024 * 1024 {
        text.push_str(&pad);
    }
    std::fs::write(&huge, &text).unwrap();
    let wrong = refuse_both_ways(&huge, "a scenario may be at most 1048576 bytes", false);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_scenario_path_that_never_ends_is_refused_after_one_mebibyte() {
    // A character device reports size 0; reading it must still stop at the limit.
    let wrong = refuse_both_ways(
        Path::new("/dev/zero"),
        "a scenario may be at most 1048576 bytes",
        false,
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_directory_given_as_a_scenario_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenario.yaml");
    std::fs::create_dir(&dir).unwrap();
    let wrong = refuse_both_ways(&dir, "is a directory; expected a scenario file", false);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

//! The engine names no incident: none of its files, source or tests, says what only an incident
//! knows (its roles, its faults, its resources). This is the test that the next incident can
//! plug in without the engine changing for it.

use std::path::{Path, PathBuf};

/// Words that belong to an incident package (the 2012 EBS outage's), matched as whole words
/// without regard to case.
const INCIDENT_WORDS: &[&str] = &[
    "collector",
    "stale",
    "volume",
    "volumes",
    "ebs",
    "leak",
    "storage",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read the engine's directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            out.push(path);
        }
    }
}

fn words(line: &str) -> impl Iterator<Item = String> + '_ {
    (line.split(|c: char| !c.is_ascii_alphanumeric())).map(str::to_ascii_lowercase)
}

#[test]
fn no_file_of_the_engine_names_what_an_incident_owns() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    files(root, &mut all);
    assert!(all.len() >= 5, "found only {all:?}");
    let mut found = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).expect("read");
        for (i, line) in text.lines().enumerate() {
            // This file lists the words it forbids.
            if path.ends_with("tests/incident_free.rs") {
                break;
            }
            for word in words(line).filter(|w| INCIDENT_WORDS.contains(&w.as_str())) {
                found.push(format!("{}:{}: {word}", path.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine names an incident:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_word_check_finds_a_word_inside_punctuation_and_case() {
    let hit = |line: &str| words(line).any(|w| INCIDENT_WORDS.contains(&w.as_str()));
    assert!(hit("a `Storage` server"));
    assert!(hit("leak_alarm"));
    assert!(!hit("stalemate leaking"));
}

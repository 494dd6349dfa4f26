//! Replays every file of every fuzz/corpus/TARGET/ through its target, as afl ran it: the seeds,
//! what the campaigns kept, and each input that ever crashed or hung a target. A target that
//! panics on one fails this test, naming the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Target = fn(&[u8]);

/// Every target, by its corpus directory's name (fuzz/corpus/NAME, fuzz/src/bin/NAME.rs).
const TARGETS: &[(&str, Target)] = &[
    ("scenario", outage_lab_fuzz_targets::scenario),
    ("journal", outage_lab_fuzz_targets::journal),
    ("control_api", outage_lab_fuzz_targets::control_api),
    ("collector", outage_lab_fuzz_targets::collector),
    ("dns_admin", outage_lab_fuzz_targets::dns_admin),
];

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    files.retain(|path| path.is_file());
    files.sort();
    files
}

/// Longer than any input takes in a debug build (the slowest, about a second), far shorter
/// than the hang that 2001 `--set` values once caused (65 s; hang-2001-set-values).
const HANG: Duration = Duration::from_secs(20);

/// Runs every file of fuzz/corpus/TARGET through its target; a panic or an input slower than
/// [`HANG`] fails the test naming the file (a panic's own message, printed above, says what
/// broke).
fn replay(target: &str, run: Target) {
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} has no input");
    for path in files {
        let data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let start = Instant::now();
        let ran = std::panic::catch_unwind(|| run(&data));
        assert!(ran.is_ok(), "{target} fails on {}", path.display());
        let took = start.elapsed();
        assert!(took < HANG, "{target} took {took:?} on {}", path.display());
    }
}

#[test]
fn every_input_of_every_corpus_is_accepted_or_refused_the_documented_way() {
    for (target, run) in TARGETS {
        replay(target, *run);
    }
}

#[test]
fn every_corpus_directory_is_a_target_and_every_target_has_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()));
    dirs.sort();
    let mut names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    assert_eq!(dirs, names);
}

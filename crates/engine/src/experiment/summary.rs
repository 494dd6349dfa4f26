//! What every incident's experiment shares, whatever its metrics: the seeds, where it writes,
//! a comparison's cells, each cell's record for the JSON summary, how the cells ran, what was
//! not counted, and the exit code.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Cell, Outcome, RERUNS, Results};
use crate::exit;

/// `n` seeds from `base` on: the scenario's seed, then the next ones.
pub fn seeds(base: u64, n: u32) -> Vec<u64> {
    (0..u64::from(n)).map(|i| base.wrapping_add(i)).collect()
}

/// Where an experiment writes unless told: `runs/<kind>-<scenario file's stem>-<UTC time>`.
pub fn default_out(kind: &str, scenario: &Path) -> PathBuf {
    use crate::run_dir::{now_secs, utc_stamp};
    let name = scenario
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("runs").join(format!("{kind}-{name}-{}", utc_stamp(now_secs())))
}

/// The cells of a comparison: no fix (`baseline`), each fix alone and, with more than one, all
/// of them (`all fixes`), each over `seeds`, in `<out>/cells/<variant>-seed<seed>`.
pub fn compare_cells(fixes: &[String], seeds: &[u64], out: &Path) -> Vec<Cell> {
    let mut variants: Vec<(String, Vec<String>)> = vec![("baseline".into(), Vec::new())];
    variants.extend(fixes.iter().map(|f| (f.clone(), vec![f.clone()])));
    if fixes.len() > 1 {
        variants.push(("all fixes".into(), fixes.to_vec()));
    }
    let mut cells = Vec::new();
    for (name, on) in &variants {
        for &seed in seeds {
            let args = (on.iter())
                .flat_map(|f| ["--fix".to_owned(), f.clone()])
                .collect();
            let dir_name = format!("{}-seed{seed}", name.replace(' ', "-"));
            cells.push(Cell {
                group: name.clone(),
                seed,
                args,
                dir: out.join("cells").join(dir_name),
            });
        }
    }
    cells
}

/// Every cell, its outcome and how to re-run it alone, for the JSON summaries.
pub fn cell_records<M: Serialize>(
    scenario: &Path,
    cells: &[Cell],
    results: &Results<M>,
) -> Vec<serde_json::Value> {
    #[derive(Serialize)]
    struct Record<'a, M> {
        group: &'a str,
        seed: u64,
        dir: String,
        rerun: String,
        #[serde(flatten)]
        outcome: &'a Outcome<M>,
    }
    (cells.iter().zip(&results.outcomes))
        .map(|(c, o)| {
            serde_json::to_value(Record {
                group: &c.group,
                seed: c.seed,
                dir: c.dir.display().to_string(),
                rerun: c.command(scenario),
                outcome: o,
            })
            .unwrap_or_default()
        })
        .collect()
}

/// The exit code of an experiment: 130 interrupted, 3 when a cell could not run or was
/// disturbed on every try (a result is missing), else 0.
pub fn exit_code<M>(results: &Results<M>) -> u8 {
    if results.interrupted.is_some() {
        return exit::INTERRUPTED;
    }
    let missing = |o: &Outcome<M>| matches!(o, Outcome::Failed { .. } | Outcome::Disturbed { .. });
    if results.outcomes.iter().any(missing) {
        return exit::HARNESS_FAILED;
    }
    0
}

/// `n` and the noun, plural unless `n` is 1: `1 seed`, `2 seeds`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// What a variant or a point left out, in words: ` (1 seed could not run; 2 seeds disturbed on
/// every try)`, or nothing.
pub fn not_counted(failed: usize, disturbed: usize, unit: &str) -> String {
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!("{} could not run", plural(failed, unit)));
    }
    if disturbed > 0 {
        parts.push(format!(
            "{} disturbed on every try",
            plural(disturbed, unit)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// One line on how the cells ran: how many at once, and how many were run again.
pub fn pace_line<M>(results: &Results<M>) -> String {
    let again: u32 = (results.outcomes.iter())
        .map(|o| match o {
            Outcome::Ran { reruns, .. } => *reruns,
            Outcome::Disturbed { .. } => RERUNS,
            _ => 0,
        })
        .sum();
    format!(
        "{} cells in {:.0}s, at most {} at once; {} came back disturbed and ran again",
        results.outcomes.len(),
        results.wall.as_secs_f64(),
        results.most_at_once,
        plural(again as usize, "run")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_start_at_the_scenarios_and_count_up() {
        assert_eq!(seeds(20251020, 3), [20251020, 20251021, 20251022]);
        assert_eq!(seeds(u64::MAX, 2), [u64::MAX, 0]);
    }

    #[test]
    fn a_comparison_runs_the_baseline_each_fix_alone_and_all_together_on_every_seed() {
        let fixes = ["a".to_owned(), "b".to_owned()];
        let cells = compare_cells(&fixes, &[7, 8], Path::new("out"));
        let groups: Vec<&str> = cells.iter().map(|c| c.group.as_str()).collect();
        let expected = [
            "baseline",
            "baseline",
            "a",
            "a",
            "b",
            "b",
            "all fixes",
            "all fixes",
        ];
        assert_eq!(groups, expected);
        assert_eq!(cells[6].args, ["--fix", "a", "--fix", "b"]);
        assert_eq!(cells[7].dir, Path::new("out/cells/all-fixes-seed8"));
        let one = compare_cells(&fixes[..1], &[7], Path::new("out"));
        assert_eq!(one.len(), 2, "one fix: no 'all fixes' variant");
    }

    #[test]
    fn what_was_not_counted_is_said_only_when_there_is_some() {
        assert_eq!(not_counted(0, 0, "seed"), "");
        assert_eq!(
            not_counted(1, 2, "seed"),
            " (1 seed could not run; 2 seeds disturbed on every try)"
        );
    }

    #[test]
    fn a_missing_result_exits_3_and_an_interrupted_experiment_130() {
        let ran = Outcome::Ran {
            exit: 1,
            metrics: (),
            wall_s: 1.0,
            reruns: 0,
        };
        let results = |outcomes, interrupted| Results {
            outcomes,
            interrupted,
            wall: std::time::Duration::from_secs(1),
            most_at_once: 1,
        };
        assert_eq!(exit_code(&results(vec![ran.clone()], None)), 0);
        let failed = Outcome::Failed { reason: "x".into() };
        assert_eq!(
            exit_code(&results(vec![ran.clone(), failed], None)),
            exit::HARNESS_FAILED
        );
        assert_eq!(
            exit_code(&results(vec![ran], Some("SIGINT"))),
            exit::INTERRUPTED
        );
    }
}

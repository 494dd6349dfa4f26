//! `outage-lab compare`: the same failure with each fix alone, all fixes together and none, each
//! over several seeds; which fix alone prevents the stuck volumes, and what each changes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::{self, Metric, Spread};
use super::runner::{Cell, Outcome, Results};
use super::summary;
use super::{Experiment, ExperimentError, page};
use crate::scenario::overrides::Setting;

/// One variant: its name, the `--fix` arguments it adds, and how its cells went.
#[derive(Debug, Serialize)]
pub struct Variant {
    /// `baseline`, a fix's name, or `all fixes`.
    pub name: String,
    /// The fixes on.
    pub fixes: Vec<String>,
    /// Per metric, over the seeds that ran.
    pub summary: Vec<(Metric, Spread)>,
    /// Seeds that ran, and of those, seeds with no stuck volume.
    pub seeds_ran: usize,
    /// Seeds with no stuck volume at all.
    pub seeds_without_stuck: usize,
    /// Seeds that could not run (never counted as results).
    pub seeds_failed: usize,
    /// Seeds whose run was disturbed on every try (never counted as results).
    pub seeds_disturbed: usize,
}

/// The variants, summarised from the cells' outcomes.
pub fn variants(cells: &[Cell], results: &Results) -> Vec<Variant> {
    let mut out: Vec<Variant> = Vec::new();
    for (cell, outcome) in cells.iter().zip(&results.outcomes) {
        if out.last().is_none_or(|v| v.name != cell.group) {
            out.push(Variant {
                name: cell.group.clone(),
                fixes: (cell.args.iter())
                    .filter(|a| *a != "--fix")
                    .cloned()
                    .collect(),
                summary: Vec::new(),
                seeds_ran: 0,
                seeds_without_stuck: 0,
                seeds_failed: 0,
                seeds_disturbed: 0,
            });
        }
        let Some(v) = out.last_mut() else { continue };
        match outcome {
            Outcome::Ran { metrics, .. } => {
                v.seeds_ran += 1;
                v.seeds_without_stuck += usize::from(metrics.stuck_peak == 0.0);
            }
            Outcome::Failed { .. } => v.seeds_failed += 1,
            Outcome::Disturbed { .. } => v.seeds_disturbed += 1,
            Outcome::Interrupted => {}
        }
    }
    for v in &mut out {
        let ran: Vec<&metrics::Metrics> = (cells.iter().zip(&results.outcomes))
            .filter(|(c, _)| c.group == v.name)
            .filter_map(|(_, o)| match o {
                Outcome::Ran { metrics, .. } => Some(metrics),
                _ => None,
            })
            .collect();
        v.summary = (Metric::ALL.iter())
            .map(|&m| (m, Spread::over(m, ran.iter().copied())))
            .collect();
    }
    out
}

/// One plain line per variant: does it prevent the stuck volumes, and on how many seeds.
pub fn verdict_line(v: &Variant) -> String {
    let alone = match v.name.as_str() {
        "baseline" => "with no fix".to_owned(),
        "all fixes" => "all fixes together".to_owned(),
        name => format!("{name} alone"),
    };
    let failed = super::not_counted(v.seeds_failed, v.seeds_disturbed, "seed");
    if v.seeds_without_stuck == v.seeds_ran && v.seeds_ran > 0 {
        format!(
            "{alone} prevents stuck volumes on {} of {} seeds{failed}",
            v.seeds_without_stuck, v.seeds_ran
        )
    } else if v.seeds_without_stuck == 0 {
        format!(
            "{alone}: stuck volumes on every seed ({} of {}){failed}",
            v.seeds_ran, v.seeds_ran
        )
    } else {
        format!(
            "{alone} prevents stuck volumes on {} of {} seeds{failed}",
            v.seeds_without_stuck, v.seeds_ran
        )
    }
}

/// The metrics that apply to some variant, in table order: the others are left out of the
/// table and the page.
pub fn applicable(variants: &[Variant]) -> Vec<Metric> {
    (Metric::ALL.iter().copied())
        .filter(|&m| {
            (variants.iter().flat_map(|v| &v.summary))
                .any(|(n, s)| *n == m && *s != Spread::NotApplicable)
        })
        .collect()
}

/// The terminal table: one row per variant, each applicable metric's median and range.
pub fn table(variants: &[Variant]) -> String {
    let shown = applicable(variants);
    let mut out = format!("{:<28}", "variant");
    for m in &shown {
        out.push_str(&format!(" {:>22}", m.name()));
    }
    out.push('\n');
    for v in variants {
        out.push_str(&format!("{:<28}", v.name));
        for (m, s) in v.summary.iter().filter(|(m, _)| shown.contains(m)) {
            out.push_str(&format!(" {:>22}", s.show(*m)));
        }
        out.push('\n');
    }
    out
}

/// An `--expect` assertion: `VARIANT prevents stuck_volumes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The variant (a fix's name, `baseline` or `all fixes`).
    pub variant: String,
}

/// Why an `--expect` did not hold (the comparison exits 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectFailed {
    /// It names a variant the comparison does not have.
    #[error("{variant} prevents stuck_volumes: there is no such variant in this comparison")]
    NoSuchVariant {
        /// The variant named.
        variant: String,
    },
    /// The variant had a stuck volume on some seed, or some seed could not run.
    #[error("{line}")]
    DidNotHold {
        /// The variant's verdict line (see [`verdict_line`]).
        line: String,
    },
}

impl Expect {
    /// Parses `NAME prevents stuck_volumes`.
    pub fn parse(text: &str) -> Result<Self, ExperimentError> {
        let variant = text
            .strip_suffix(" prevents stuck_volumes")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ExperimentError::Expect {
                text: text.to_owned(),
            })?;
        Ok(Self {
            variant: variant.to_owned(),
        })
    }

    /// Whether it holds: the variant ran on every seed and none had a stuck volume. Either way,
    /// the variant's verdict line.
    pub fn check(&self, variants: &[Variant]) -> Result<String, ExpectFailed> {
        let Some(v) = variants.iter().find(|v| v.name == self.variant) else {
            return Err(ExpectFailed::NoSuchVariant {
                variant: self.variant.clone(),
            });
        };
        let line = verdict_line(v);
        if v.seeds_failed + v.seeds_disturbed == 0
            && v.seeds_ran > 0
            && v.seeds_without_stuck == v.seeds_ran
        {
            Ok(line)
        } else {
            Err(ExpectFailed::DidNotHold { line })
        }
    }
}

/// Writes compare.json, compare.csv and compare.html into the experiment's directory.
pub fn write(
    exp: &Experiment,
    cells: &[Cell],
    results: &Results,
    variants: &[Variant],
) -> Result<PathBuf, ExperimentError> {
    let json = serde_json::json!({
        "scenario": exp.scenario.display().to_string(),
        "seeds": exp.seeds,
        "variants": variants,
        "cells": summary::cell_records(&exp.scenario, cells, results),
        "wall_s": results.wall.as_secs_f64(),
        "most_at_once": results.most_at_once,
        "interrupted": results.interrupted,
    });
    exp.write(
        "compare.json",
        &serde_json::to_string_pretty(&json).map_err(ExperimentError::Encode)?,
    )?;
    exp.write("compare.csv", &super::csv(exp, cells, results))?;
    let lines: Vec<String> = variants.iter().map(verdict_line).collect();
    exp.write("compare.html", &page::compare(exp, variants, &lines))
}

/// `outage-lab compare`: returns the exit code of the comparison that ran.
pub fn command(
    args: &outage_lab_engine::args::CompareArgs,
    exe: &Path,
) -> Result<u8, ExperimentError> {
    let known = crate::kinds::FixName::NAMES;
    let fixes: Vec<String> = if args.fix.is_empty() {
        let scenario = crate::scenario::Scenario::load(&args.common.scenario, &[])?;
        let applies = crate::fixes::Applicability {
            has_customers: scenario.customers.active(),
            built_in_agent: scenario.agent.command.is_none(),
        };
        (crate::kinds::FixName::applicable(applies).iter())
            .map(|f| f.name().to_owned())
            .collect()
    } else {
        args.fix.clone()
    };
    let mut per_variant = vec![Vec::new()];
    for f in &fixes {
        per_variant.push(vec![Setting::fix(f, known)?]);
    }
    let expects: Vec<Expect> =
        (args.expect.iter().map(|e| Expect::parse(e))).collect::<Result<_, _>>()?;
    let c = &args.common;
    let exp = Experiment::plan(
        c.scenario.clone(),
        c.out.clone(),
        "compare",
        c.seeds,
        c.jobs.map(|j| j as usize),
        c.memory_limit,
        &per_variant,
    )?;
    let cells = summary::compare_cells(&fixes, &exp.seeds, &exp.out);
    let results = super::run_blocking(&exp, exe, &cells)?;
    eprintln!("{}", super::pace_line(&results));
    let variants = variants(&cells, &results);
    println!("{}", table(&variants));
    for v in &variants {
        println!("{}", verdict_line(v));
    }
    let page = write(&exp, &cells, &results, &variants)?;
    println!(
        "compare.html, compare.json, compare.csv in {}",
        page.parent().unwrap_or(&exp.out).display()
    );
    let code = super::exit_code(&results);
    if code != 0 {
        return Ok(code);
    }
    let mut held = true;
    for e in &expects {
        match e.check(&variants) {
            Ok(line) => println!("expect held: {line}"),
            Err(failed) => {
                held = false;
                println!("expect FAILED: {failed}");
            }
        }
    }
    Ok(if held {
        0
    } else {
        crate::exit::EXPECTATION_FAILED
    })
}

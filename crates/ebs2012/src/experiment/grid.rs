//! `outage-lab grid`: one or two scenario fields swept over values, every point over several
//! seeds, and one metric mapped over the grid: where the fleet tips over.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::{Metric, Spread};
use super::runner::{Cell, Outcome, Results};
use super::summary::{self, plural};
use super::{Experiment, ExperimentError, page};
use crate::scenario::overrides::Setting;

/// Most values on one axis.
const MAX_VALUES: usize = 20;

/// One axis: a scenario field and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    /// The field's dotted path (`volumes.placement_fill`).
    pub path: String,
    /// Its values, as YAML.
    pub values: Vec<String>,
}

/// What is wrong with a `--vary` argument (the error names the argument:
/// [`ExperimentError::Vary`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AxisProblem {
    /// No `=` between the path and the values.
    #[error("expected PATH=VALUES, e.g. volumes.placement_fill=0.5,0.75,0.875")]
    NoEquals,
    /// `=1,2`, `a..b=1`.
    #[error("the path is empty or has an empty part")]
    EmptyPath,
    /// `LO..HI` without `:COUNT`.
    #[error("a range needs a count: LO..HI:COUNT, e.g. 0.1..0.5:5")]
    RangeWithoutCount,
    /// An end of a range that is not a finite number.
    #[error("{text:?} is not a number")]
    NotANumber {
        /// The end as given.
        text: String,
    },
    /// A range's count that is not a whole number of at least 2.
    #[error("{text:?} is not a count of at least 2")]
    NotACount {
        /// The count as given.
        text: String,
    },
    /// An empty value in a list (`1,,2`), or no value at all.
    #[error("an empty value; expected a list such as 1,2,3 or a range such as 0.1..0.5:5")]
    EmptyValue,
    /// More values than [`MAX_VALUES`].
    #[error("{count} values; at most {MAX_VALUES} per axis")]
    TooManyValues {
        /// How many were given.
        count: usize,
    },
}

impl Axis {
    /// `PATH=VALUES`: a list (`0.5,0.75,0.875`; `;` between values that are YAML lists or
    /// mappings themselves, `[dns-a];[dns-a,dns-b]`) or a range with a count (`0.1..0.5:5`,
    /// both ends included).
    pub fn parse(arg: &str) -> Result<Self, ExperimentError> {
        let bad = |problem: AxisProblem| ExperimentError::Vary {
            arg: arg.to_owned(),
            problem,
        };
        let (path, values) = arg
            .split_once('=')
            .ok_or_else(|| bad(AxisProblem::NoEquals))?;
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(bad(AxisProblem::EmptyPath));
        }
        let separator = if values.contains(['[', '{']) {
            ';'
        } else {
            ','
        };
        let values = match values.split_once("..") {
            Some((lo, rest)) if separator == ',' => range(lo, rest).map_err(bad)?,
            _ => values
                .split(separator)
                .map(|v| v.trim().to_owned())
                .collect(),
        };
        if values.is_empty() || values.iter().any(String::is_empty) {
            return Err(bad(AxisProblem::EmptyValue));
        }
        if values.len() > MAX_VALUES {
            return Err(bad(AxisProblem::TooManyValues {
                count: values.len(),
            }));
        }
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

/// `LO..HI:COUNT` as COUNT evenly spaced numbers from LO to HI.
fn range(lo: &str, rest: &str) -> Result<Vec<String>, AxisProblem> {
    let (hi, count) = rest.split_once(':').ok_or(AxisProblem::RangeWithoutCount)?;
    let number = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| AxisProblem::NotANumber { text: s.to_owned() })
    };
    let (lo, hi) = (number(lo)?, number(hi)?);
    let count: usize = (count.trim().parse().ok())
        .filter(|n| *n >= 2)
        .ok_or_else(|| AxisProblem::NotACount {
            text: count.to_owned(),
        })?;
    Ok((0..count)
        .map(|i| {
            let x = lo + (hi - lo) * i as f64 / (count - 1) as f64;
            // Short, exact-looking values: 0.1, 0.2, not 0.30000000000000004.
            let text = format!("{x:.6}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        })
        .collect())
}

/// The grid's points: every combination of the axes' values.
pub fn points(axes: &[Axis]) -> Vec<Vec<String>> {
    let mut points: Vec<Vec<String>> = vec![Vec::new()];
    for axis in axes {
        points = (points.iter())
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut next = p.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
    }
    points
}

/// The `--set` arguments of one point.
pub fn point_args(axes: &[Axis], point: &[String]) -> Vec<String> {
    (axes.iter().zip(point))
        .flat_map(|(a, v)| ["--set".to_owned(), format!("{}={v}", a.path)])
        .collect()
}

/// The cells: every point over every seed, with `base` (the command line's own `--set` and
/// `--fix`) first.
pub fn cells(axes: &[Axis], base: &[String], seeds: &[u64], out: &Path) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (i, point) in points(axes).iter().enumerate() {
        for &seed in seeds {
            let mut args = base.to_vec();
            args.extend(point_args(axes, point));
            cells.push(Cell {
                group: point.join(" x "),
                seed,
                args,
                dir: out.join("cells").join(format!("point{i:03}-seed{seed}")),
            });
        }
    }
    cells
}

/// One point of the map: its values and the metric over its seeds.
#[derive(Debug, Serialize)]
pub struct Point {
    /// The axes' values.
    pub values: Vec<String>,
    /// The metric over the seeds that ran.
    pub summary: Spread,
    /// Seeds that could not run.
    pub failed: usize,
    /// Seeds whose run was disturbed on every try.
    pub disturbed: usize,
}

/// The map: each point's metric.
pub fn map(axes: &[Axis], metric: Metric, cells: &[Cell], results: &Results) -> Vec<Point> {
    (points(axes).into_iter())
        .map(|values| {
            let group = values.join(" x ");
            let of_point = (cells.iter().zip(&results.outcomes)).filter(|(c, _)| c.group == group);
            let mut ran = Vec::new();
            let (mut failed, mut disturbed) = (0, 0);
            for (_, o) in of_point {
                match o {
                    Outcome::Ran { metrics, .. } => ran.push(metrics),
                    Outcome::Failed { .. } => failed += 1,
                    Outcome::Disturbed { .. } => disturbed += 1,
                    Outcome::Interrupted => {}
                }
            }
            Point {
                values,
                summary: Spread::over(metric, ran),
                failed,
                disturbed,
            }
        })
        .collect()
}

/// The terminal table: one line per point.
pub fn table(axes: &[Axis], metric: Metric, points: &[Point]) -> String {
    let names: Vec<&str> = axes.iter().map(|a| a.path.as_str()).collect();
    let mut out = format!("{:<40} {metric}\n", names.join(" x "));
    for p in points {
        let value = match p.summary {
            Spread::Values(s) => format!(
                "{} ({}..{}, {})",
                metric.show(s.median),
                metric.show(s.min),
                metric.show(s.max),
                plural(s.n, "seed")
            ),
            other => other.show(metric),
        };
        let failed = super::not_counted(p.failed, p.disturbed, "seed");
        out.push_str(&format!("{:<40} {value}{failed}\n", p.values.join(" x ")));
    }
    out
}

/// Writes grid.json, grid.csv and grid.html.
pub fn write(
    exp: &Experiment,
    axes: &[Axis],
    metric: Metric,
    cells: &[Cell],
    results: &Results,
    points: &[Point],
) -> Result<PathBuf, ExperimentError> {
    let json = serde_json::json!({
        "scenario": exp.scenario.display().to_string(),
        "seeds": exp.seeds,
        "axes": axes,
        "metric": metric,
        "points": points,
        "cells": summary::cell_records(&exp.scenario, cells, results),
        "wall_s": results.wall.as_secs_f64(),
        "most_at_once": results.most_at_once,
        "interrupted": results.interrupted,
    });
    exp.write(
        "grid.json",
        &serde_json::to_string_pretty(&json).map_err(ExperimentError::Encode)?,
    )?;
    exp.write("grid.csv", &super::csv(exp, cells, results))?;
    exp.write("grid.html", &page::grid(exp, axes, metric, points))
}

/// `outage-lab grid`: returns the exit code of the experiment that ran.
pub fn command(
    args: &outage_lab_engine::args::GridArgs,
    exe: &Path,
) -> Result<u8, ExperimentError> {
    let axes: Vec<Axis> = (args.vary.iter().map(|a| Axis::parse(a))).collect::<Result<_, _>>()?;
    if axes.len() > 2 {
        return Err(ExperimentError::TooManyAxes { count: axes.len() });
    }
    let name = args.metric.as_deref().unwrap_or(Metric::NAMES[0]);
    let metric = Metric::from_name(name).ok_or_else(|| ExperimentError::UnknownMetric {
        name: name.to_owned(),
    })?;
    let mut base = Vec::new();
    let mut base_settings = Vec::new();
    for s in &args.set {
        base_settings.push(Setting::parse(s).map_err(ExperimentError::Set)?);
        base.extend(["--set".to_owned(), s.clone()]);
    }
    for f in &args.fix {
        base_settings.push(Setting::fix(f, crate::kinds::FixName::NAMES)?);
        base.extend(["--fix".to_owned(), f.clone()]);
    }
    let per_point: Vec<Vec<Setting>> = (points(&axes).iter())
        .map(|p| {
            let mut settings = base_settings.clone();
            for (a, v) in axes.iter().zip(p) {
                settings.push(Setting::parse(&format!("{}={v}", a.path))?);
            }
            Ok(settings)
        })
        .collect::<Result<_, ExperimentError>>()?;
    let c = &args.common;
    let exp = Experiment::plan(
        c.scenario.clone(),
        c.out.clone(),
        "grid",
        c.seeds,
        c.jobs.map(|j| j as usize),
        c.memory_limit,
        &per_point,
    )?;
    let cells = cells(&axes, &base, &exp.seeds, &exp.out);
    let results = super::run_blocking(&exp, exe, &cells)?;
    eprintln!("{}", super::pace_line(&results));
    let points = map(&axes, metric, &cells, &results);
    println!("{}", table(&axes, metric, &points));
    let page = write(&exp, &axes, metric, &cells, &results, &points)?;
    println!(
        "grid.html, grid.json, grid.csv in {}",
        page.parent().unwrap_or(&exp.out).display()
    );
    Ok(super::exit_code(&results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_is_a_list_or_a_range_with_a_count() {
        let a = Axis::parse("volumes.placement_fill=0.5,0.75,0.875").expect("a list");
        assert_eq!(a.values, ["0.5", "0.75", "0.875"]);
        let a = Axis::parse("volumes.placement_fill=0.1..0.5:5").expect("a range");
        assert_eq!(a.values, ["0.1", "0.2", "0.3", "0.4", "0.5"]);
        let a = Axis::parse("t.1.to=[a];[a, b]").expect("YAML lists");
        assert_eq!(a.values, ["[a]", "[a, b]"]);
        for bad in [
            "x",
            "=1,2",
            "a.b=1..2",
            "a.b=1..2:1",
            "a.b=x..2:3",
            "a.b=1,,2",
        ] {
            let e = Axis::parse(bad).expect_err(bad).to_string();
            assert!(e.starts_with(&format!("--vary {bad}: ")), "{e}");
        }
    }

    #[test]
    fn two_axes_make_every_combination_in_order() {
        let axes = [
            Axis::parse("a=1,2").expect("valid"),
            Axis::parse("b=x,y,z").expect("valid"),
        ];
        let p = points(&axes);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], ["1", "x"]);
        assert_eq!(p[5], ["2", "z"]);
        assert_eq!(point_args(&axes, &p[4]), ["--set", "a=2", "--set", "b=y"]);
    }
}

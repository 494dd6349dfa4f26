//! `outage-lab grid` for any incident: one or two scenario fields swept over values
//! ([`axis`]), every point over several seeds, and one of the incident's metrics mapped over
//! the grid ([`GridMetric`]): where the system tips over. The incident says how a cell's
//! settings are checked and reads what a cell came to; the axes, the cells, the map, its table,
//! `grid.json`, `grid.csv` and the heat map ([`page`]) are the same for every incident.

pub mod axis;
pub mod page;
pub mod spread;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use self::axis::{Axis, AxisProblem};
pub use self::spread::{Spread, Summary};
use super::summary::{self, not_counted, plural};
use super::{Cell, CellMetrics, Outcome, Results};
use crate::args::GridArgs;

/// A number a grid maps, one per run, read from what the incident's [`CellMetrics`] read.
pub trait GridMetric: Copy + Eq + std::fmt::Debug + 'static {
    /// What a cell came to.
    type Of: CellMetrics;

    /// Every metric, in table order; the first is `--metric`'s default.
    fn all() -> &'static [Self];

    /// The name `--metric` and the tables use.
    fn name(self) -> &'static str;

    /// A value for people (`17`, `7.7%`, `3.9s`).
    fn show(self, value: f64) -> String;

    /// Its value for a run; `None` when it never happened or does not apply.
    fn value(self, of: &Self::Of) -> Option<f64>;

    /// Whether it means anything for a run (a `None` then reads `never`, else `not
    /// applicable`).
    fn applies(self, _of: &Self::Of) -> bool {
        true
    }

    /// Its name for people: `wall s` for `wall_s`.
    fn title(self) -> String {
        self.name().replace('_', " ")
    }

    /// The metric named `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|m| m.name() == name)
    }

    /// Every metric's name.
    fn names() -> Vec<&'static str> {
        Self::all().iter().map(|m| m.name()).collect()
    }
}

/// Why a grid cannot be made of its arguments, or its summaries not written.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// A `--vary` argument that is not an axis.
    #[error("--vary {arg}: {problem}")]
    Vary {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        problem: AxisProblem,
    },
    /// More `--vary` axes than a grid has.
    #[error("{count} --vary axes; a grid has one or two")]
    TooManyAxes {
        /// How many were given.
        count: usize,
    },
    /// A `--metric` that is not one of the incident's.
    #[error("--metric {name}: unknown metric; expected one of {}", .known.join(", "))]
    UnknownMetric {
        /// The name as given.
        name: String,
        /// The incident's metrics.
        known: Vec<&'static str>,
    },
    /// A summary could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The summary's path (or its directory).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl GridError {
    /// Whether the user's arguments were wrong (exit 2), not the machine (exit 3).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, GridError::Write { .. })
    }
}

/// What a grid was asked: its axes and its metric.
#[derive(Debug, Clone)]
pub struct Request<M> {
    /// One or two axes.
    pub axes: Vec<Axis>,
    /// The metric mapped.
    pub metric: M,
}

impl<M: GridMetric> Request<M> {
    /// The axes of `--vary` and the metric of `--metric` (the incident's first unless named).
    pub fn parse(args: &GridArgs) -> Result<Self, GridError> {
        let axes: Vec<Axis> =
            (args.vary.iter().map(|a| Axis::parse(a))).collect::<Result<_, _>>()?;
        if axes.len() > 2 {
            return Err(GridError::TooManyAxes { count: axes.len() });
        }
        let metric = match &args.metric {
            None => M::all()[0],
            Some(name) => M::from_name(name).ok_or_else(|| GridError::UnknownMetric {
                name: name.clone(),
                known: M::names(),
            })?,
        };
        Ok(Self { axes, metric })
    }

    /// Each point's `--set` values (`PATH=VALUE`), in the grid's order, to be checked against
    /// the scenario before a cell starts.
    pub fn point_settings(&self) -> Vec<Vec<String>> {
        (axis::points(&self.axes).iter())
            .map(|p| axis::point_settings(&self.axes, p))
            .collect()
    }
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
pub fn map<M: GridMetric>(
    axes: &[Axis],
    metric: M,
    cells: &[Cell],
    results: &Results<M::Of>,
) -> Vec<Point> {
    (axis::points(axes).into_iter())
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
pub fn table<M: GridMetric>(axes: &[Axis], metric: M, points: &[Point]) -> String {
    let names: Vec<&str> = axes.iter().map(|a| a.path.as_str()).collect();
    let mut out = format!("{:<40} {}\n", names.join(" x "), metric.name());
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
        let failed = not_counted(p.failed, p.disturbed, "seed");
        let _ = writeln!(out, "{:<40} {value}{failed}", p.values.join(" x "));
    }
    out
}

/// One row per cell: its group, seed, status, every metric, and the command that re-runs it.
pub fn csv<M: GridMetric>(scenario: &Path, cells: &[Cell], results: &Results<M::Of>) -> String {
    let all = M::all();
    let mut out = format!("group,seed,status,exit,{},rerun\n", M::names().join(","));
    for (c, o) in cells.iter().zip(&results.outcomes) {
        let (status, exit, values) = match o {
            Outcome::Ran { exit, metrics, .. } => {
                let values: Vec<String> = (all.iter())
                    .map(|&m| m.value(metrics).map_or(String::new(), |v| format!("{v}")))
                    .collect();
                ("ran", exit.to_string(), values)
            }
            Outcome::Failed { .. } => (
                "could_not_run",
                String::new(),
                vec![String::new(); all.len()],
            ),
            Outcome::Disturbed { .. } => {
                ("disturbed", String::new(), vec![String::new(); all.len()])
            }
            Outcome::Interrupted => ("interrupted", String::new(), vec![String::new(); all.len()]),
        };
        let row = [
            csv_field(&c.group),
            c.seed.to_string(),
            status.to_owned(),
            exit,
            values.join(","),
            csv_field(&c.command(scenario)),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Where a grid writes and what it ran.
#[derive(Debug)]
pub struct Written<'a> {
    /// The scenario file every cell ran.
    pub scenario: &'a Path,
    /// The experiment's directory.
    pub out: &'a Path,
    /// The seeds of every point.
    pub seeds: &'a [u64],
}

/// Writes grid.json, grid.csv and grid.html into `at.out`; returns grid.html's path.
pub fn write<M: GridMetric>(
    at: &Written<'_>,
    request: &Request<M>,
    cells: &[Cell],
    results: &Results<M::Of>,
    points: &[Point],
) -> Result<PathBuf, GridError> {
    let json = serde_json::json!({
        "scenario": at.scenario.display().to_string(),
        "seeds": at.seeds,
        "axes": request.axes,
        "metric": request.metric.name(),
        "points": points,
        "cells": summary::cell_records(at.scenario, cells, results),
        "wall_s": results.wall.as_secs_f64(),
        "most_at_once": results.most_at_once,
        "interrupted": results.interrupted,
    });
    let json = serde_json::to_string_pretty(&json).unwrap_or_default();
    let html = page::grid(at.seeds, at.out, &request.axes, request.metric, points);
    std::fs::create_dir_all(at.out).map_err(|source| GridError::Write {
        path: at.out.to_owned(),
        source,
    })?;
    let csv = csv::<M>(at.scenario, cells, results);
    for (name, body) in [("grid.json", json), ("grid.csv", csv), ("grid.html", html)] {
        let path = at.out.join(name);
        std::fs::write(&path, body).map_err(|source| GridError::Write { path, source })?;
    }
    Ok(at.out.join("grid.html"))
}

/// After the cells ran: the pace line, the table, the summaries and where they are.
pub fn report<M: GridMetric>(
    at: &Written<'_>,
    request: &Request<M>,
    cells: &[Cell],
    results: &Results<M::Of>,
) -> Result<(), GridError> {
    eprintln!("{}", summary::pace_line(results));
    let points = map(&request.axes, request.metric, cells, results);
    println!("{}", table(&request.axes, request.metric, &points));
    write(at, request, cells, results, &points)?;
    println!("grid.html, grid.json, grid.csv in {}", at.out.display());
    Ok(())
}

//! A grid's axes, as `--vary` gives them, and its cells: every combination of the axes' values
//! over every seed.

use std::path::Path;

use serde::Serialize;

use super::GridError;
use crate::experiment::Cell;

/// Most values on one axis.
const MAX_VALUES: usize = 20;

/// One axis: a scenario field and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    /// The field's dotted path (`dns.ttl`).
    pub path: String,
    /// Its values, as YAML.
    pub values: Vec<String>,
}

/// What is wrong with a `--vary` argument (the error names the argument:
/// [`GridError::Vary`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AxisProblem {
    /// No `=` between the path and the values.
    #[error("expected PATH=VALUES, e.g. dns.ttl=1s,5s,30s")]
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
    pub fn parse(arg: &str) -> Result<Self, GridError> {
        let bad = |problem: AxisProblem| GridError::Vary {
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

/// The `--set` values (`PATH=VALUE`) of one point.
pub fn point_settings(axes: &[Axis], point: &[String]) -> Vec<String> {
    (axes.iter().zip(point))
        .map(|(a, v)| format!("{}={v}", a.path))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_is_a_list_or_a_range_with_a_count() {
        let a = Axis::parse("dns.ttl=0.5,0.75,0.875").expect("a list");
        assert_eq!(a.values, ["0.5", "0.75", "0.875"]);
        let a = Axis::parse("dns.ttl=0.1..0.5:5").expect("a range");
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
        assert_eq!(point_settings(&axes, &p[4]), ["a=2", "b=y"]);
        let cells = cells(
            &axes,
            &["--fix".into(), "f".into()],
            &[7, 8],
            Path::new("o"),
        );
        assert_eq!(cells.len(), 12);
        assert_eq!(cells[3].group, "1 x y");
        assert_eq!(cells[3].args[..2], ["--fix", "f"]);
        assert_eq!(cells[3].dir, Path::new("o/cells/point001-seed8"));
    }
}

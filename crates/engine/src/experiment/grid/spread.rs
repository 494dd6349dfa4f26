//! What a metric came to over several runs (a variant's seeds, a grid point's): the median and
//! the range, or why there is none.

use serde::Serialize;

use super::GridMetric;

/// The median, smallest and largest of some values, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many values (seeds where the metric had one).
    pub n: usize,
}

impl Summary {
    /// Of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// What a metric came to over several runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Spread {
    /// It had a value on some runs.
    Values(Summary),
    /// It applied, and never happened (an alarm that never fired).
    Never,
    /// It applies to none of the runs (an error rate without customer I/O).
    NotApplicable,
}

impl Spread {
    /// `metric` over `runs`.
    pub fn over<'a, M: GridMetric>(metric: M, runs: impl IntoIterator<Item = &'a M::Of>) -> Self
    where
        M::Of: 'a,
    {
        let mut applied = false;
        let mut values = Vec::new();
        for m in runs {
            applied |= metric.applies(m);
            values.extend(metric.value(m));
        }
        match Summary::of(&values) {
            Some(s) => Spread::Values(s),
            None if applied => Spread::Never,
            None => Spread::NotApplicable,
        }
    }

    /// The median and range for people, or why there is none: `never` or `not applicable`.
    pub fn show<M: GridMetric>(&self, metric: M) -> String {
        match self {
            Spread::Values(s) => format!(
                "{} ({}..{})",
                metric.show(s.median),
                metric.show(s.min),
                metric.show(s.max)
            ),
            Spread::Never => "never".to_owned(),
            Spread::NotApplicable => "not applicable".to_owned(),
        }
    }

    /// The summary, if there were values.
    pub fn summary(&self) -> Option<Summary> {
        match self {
            Spread::Values(s) => Some(*s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_has_the_median_and_the_range() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Summary::of(&[1.0, 4.0]).expect("values").median, 2.5);
        assert!(Summary::of(&[]).is_none());
    }
}

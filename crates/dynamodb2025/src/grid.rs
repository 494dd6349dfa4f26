//! `outage-lab grid` of a 2025 scenario, on the engine's grid: one or two scenario fields swept
//! over values, every point over several seeds, and one of the run's measures mapped. Its use:
//! the map of metastability, where the lease manager heals by itself after the repair and where
//! it collapses and stays down (`back_by_itself_s`, over the manager's workers and how long the
//! endpoint stays empty).

use std::process::ExitCode;

use outage_lab_engine::args::GridArgs;
use outage_lab_engine::experiment::grid::{self, GridMetric, Request, Written};
use outage_lab_engine::experiment::summary;
use outage_lab_engine::experiment::{Cell, Results, Runner};
use outage_lab_engine::overrides::Setting;

use crate::compare::{CellResult, DEFAULT_JOBS, exit_of, refuse_untaken};
use crate::scenario::{FIX_NAMES, Scenario};

/// What a 2025 grid maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Seconds from the repair until the leases were back to stay, by themselves: `never`
    /// when the manager did not recover before the operators shed its load, or the end.
    BackByItselfS,
    /// Seconds the lease manager stayed collapsed after the repair.
    CollapsedS,
    /// The most leases lost at once.
    LeasesLost,
    /// Seconds every DNS server answered the endpoint with no address.
    EndpointEmptyS,
    /// Client requests that failed.
    RequestsFailed,
}

impl GridMetric for Metric {
    type Of = CellResult;

    fn all() -> &'static [Self] {
        &[
            Metric::BackByItselfS,
            Metric::CollapsedS,
            Metric::LeasesLost,
            Metric::EndpointEmptyS,
            Metric::RequestsFailed,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            Metric::BackByItselfS => "back_by_itself_s",
            Metric::CollapsedS => "collapsed_s",
            Metric::LeasesLost => "leases_lost",
            Metric::EndpointEmptyS => "endpoint_empty_s",
            Metric::RequestsFailed => "requests_failed",
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Metric::LeasesLost | Metric::RequestsFailed => format!("{value:.0}"),
            _ => format!("{value:.1}s"),
        }
    }

    fn value(self, of: &CellResult) -> Option<f64> {
        let m = &of.measures;
        match self {
            Metric::BackByItselfS => m.back_by_itself_s,
            Metric::CollapsedS => Some(m.collapsed_s),
            Metric::LeasesLost => m.leases_lost.map(|n| n as f64),
            Metric::EndpointEmptyS => Some(m.endpoint_empty_s),
            Metric::RequestsFailed => Some(m.requests_failed as f64),
        }
    }

    /// The lease manager's metrics mean nothing for a scenario without one.
    fn applies(self, of: &CellResult) -> bool {
        match self {
            Metric::BackByItselfS | Metric::CollapsedS | Metric::LeasesLost => {
                of.measures.leases_lost.is_some()
            }
            Metric::EndpointEmptyS | Metric::RequestsFailed => true,
        }
    }
}

/// A grid checked against the scenario before any cell starts.
struct Plan {
    request: Request<Metric>,
    base: Vec<String>,
    seeds: Vec<u64>,
    out: std::path::PathBuf,
}

fn plan(args: &GridArgs) -> Result<Plan, String> {
    let c = &args.common;
    refuse_untaken(c, "grids")?;
    let request: Request<Metric> = Request::parse(args).map_err(|e| e.to_string())?;
    let (mut base, mut settings) = (Vec::new(), Vec::new());
    for s in &args.set {
        settings.push(Setting::parse(s).map_err(|e| format!("--set {e}"))?);
        base.extend(["--set".to_owned(), s.clone()]);
    }
    for f in &args.fix {
        settings.push(Setting::fix(f, FIX_NAMES).map_err(|e| e.to_string())?);
        base.extend(["--fix".to_owned(), f.clone()]);
    }
    let mut seed = None;
    for point in request.point_settings() {
        let mut all = settings.clone();
        for s in &point {
            all.push(Setting::parse(s).map_err(|e| format!("--vary {e}"))?);
        }
        let scenario = Scenario::load_with(&c.scenario, &all).map_err(|e| e.to_string())?;
        seed.get_or_insert(scenario.seed);
    }
    Ok(Plan {
        request,
        base,
        seeds: summary::seeds(seed.unwrap_or(1), c.seeds),
        out: (c.out.clone()).unwrap_or_else(|| summary::default_out("grid", &c.scenario)),
    })
}

/// `outage-lab grid` of a 2025 scenario: exit 0 when every cell ran, 2 for bad input (nothing
/// started), 3 when a cell could not run or the summaries could not be written, 130
/// interrupted.
pub fn command(args: &GridArgs) -> ExitCode {
    exit_of(plan(args), |plan| run(args, plan))
}

fn run(args: &GridArgs, plan: &Plan) -> Result<u8, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let scenario = &args.common.scenario;
    let cells: Vec<Cell> =
        grid::axis::cells(&plan.request.axes, &plan.base, &plan.seeds, &plan.out);
    let jobs = args.common.jobs.map_or(DEFAULT_JOBS, |j| j as usize);
    eprintln!(
        "{} ({} each), at most {jobs} at once (fewer while the CPU is busy); results in {}",
        summary::plural(cells.len(), "cell"),
        summary::plural(plan.seeds.len(), "seed"),
        plan.out.display()
    );
    let runner = Runner {
        exe: &exe,
        scenario,
        jobs,
        memory_limit_each: None,
    };
    let results: Results<CellResult> =
        (runner.run_blocking(&cells)).map_err(|e| format!("cannot start a runtime: {e}"))?;
    let at = Written {
        scenario,
        out: &plan.out,
        seeds: &plan.seeds,
    };
    grid::report(&at, &plan.request, &cells, &results).map_err(|e| e.to_string())?;
    Ok(summary::exit_code(&results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Measures;

    fn cell(back: Option<f64>, leases_lost: Option<u64>) -> CellResult {
        CellResult {
            passed: true,
            measures: Measures {
                back_by_itself_s: back,
                leases_lost,
                ..Measures::default()
            },
        }
    }

    #[test]
    fn a_manager_that_never_came_back_reads_never_and_a_run_without_one_not_applicable() {
        use outage_lab_engine::experiment::grid::Spread;
        let m = Metric::BackByItselfS;
        let healed = cell(Some(2.0), Some(300));
        let stuck = cell(None, Some(300));
        let without = cell(None, None);
        assert_eq!(Spread::over(m, [&stuck, &stuck]).show(m), "never");
        assert_eq!(Spread::over(m, [&without]).show(m), "not applicable");
        assert_eq!(
            Spread::over(m, [&healed, &stuck]).show(m),
            "2.0s (2.0s..2.0s)"
        );
        let lost = Metric::LeasesLost;
        assert_eq!(Spread::over(lost, [&healed]).show(lost), "300 (300..300)");
    }

    #[test]
    fn every_metric_is_found_by_its_name_and_the_first_is_the_default() {
        for &m in Metric::all() {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(Metric::all()[0], Metric::BackByItselfS);
        assert_eq!(Metric::from_name("luck"), None);
    }
}

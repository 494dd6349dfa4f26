//! `outage-lab grid` of a 2012 scenario, on the engine's grid (`outage_lab_engine::experiment::
//! grid`): each point's settings checked against the scenario and its memory containment, then
//! every cell run under the experiment's memory limit.

use std::path::Path;

use outage_lab_engine::experiment::grid::{self, Request, Written};

use super::metrics::Metric;
use super::{Experiment, ExperimentError};
use crate::scenario::overrides::Setting;

/// `outage-lab grid`: returns the exit code of the experiment that ran.
pub fn command(
    args: &outage_lab_engine::args::GridArgs,
    exe: &Path,
) -> Result<u8, ExperimentError> {
    let request: Request<Metric> = Request::parse(args)?;
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
    let per_point: Vec<Vec<Setting>> = (request.point_settings().iter())
        .map(|point| {
            let mut settings = base_settings.clone();
            for s in point {
                settings.push(Setting::parse(s)?);
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
    let cells = grid::axis::cells(&request.axes, &base, &exp.seeds, &exp.out);
    let results = super::run_blocking(&exp, exe, &cells)?;
    let at = Written {
        scenario: &exp.scenario,
        out: &exp.out,
        seeds: &exp.seeds,
    };
    grid::report(&at, &request, &cells, &results)?;
    Ok(super::exit_code(&results))
}

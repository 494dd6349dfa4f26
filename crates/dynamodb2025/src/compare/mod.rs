//! `outage-lab compare` of a 2025 scenario: the race with no fix, each fix alone and all of them
//! together, each over several seeds, every cell an ordinary run on the engine's experiment
//! runner. Which fix keeps the endpoint from being emptied, and which keeps the clients' requests
//! from failing (`serve_stale` does the second without the first).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outage_lab_engine::args::{CompareArgs, ExperimentArgs};
use outage_lab_engine::exit;
use outage_lab_engine::experiment::summary::{self, not_counted};
use outage_lab_engine::experiment::{Cell, CellMetrics, Outcome, Results, Runner};
use serde::Serialize;

use crate::checks::Measures;
use crate::scenario::{FIX_NAMES, Scenario};

/// Most cells at once unless `--jobs` says otherwise (for `grid` too); within it the engine's admission starts
/// another only while the CPU has room. A 2025 cell is about 20 small processes.
pub(crate) const DEFAULT_JOBS: usize = 4;

/// What a comparison's `--expect` can say a variant prevents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Harm {
    /// Every DNS server answering the endpoint with no address.
    EmptyEndpoint,
    /// A client's request failing.
    FailedRequests,
    /// The lease manager collapsing after the repair.
    Collapse,
    /// A customer's launch refused for insufficient capacity.
    RefusedLaunches,
}

impl Harm {
    const ALL: [Harm; 4] = [
        Harm::EmptyEndpoint,
        Harm::FailedRequests,
        Harm::Collapse,
        Harm::RefusedLaunches,
    ];

    fn name(self) -> &'static str {
        match self {
            Harm::EmptyEndpoint => "empty_endpoint",
            Harm::FailedRequests => "failed_requests",
            Harm::Collapse => "collapse",
            Harm::RefusedLaunches => "refused_launches",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Harm::EmptyEndpoint => "the endpoint emptied",
            Harm::FailedRequests => "requests failed",
            Harm::Collapse => "the lease manager collapsed",
            Harm::RefusedLaunches => "launches were refused",
        }
    }

    /// The harms `scenario` can show: the collapse only with a lease manager, refused launches
    /// only with customers who launch.
    fn of(scenario: &Scenario) -> Vec<Harm> {
        let launches = (scenario.leases.as_ref()).is_some_and(|l| l.launches.is_some());
        (Harm::ALL.into_iter())
            .filter(|h| match h {
                Harm::Collapse => scenario.leases.is_some(),
                Harm::RefusedLaunches => launches,
                Harm::EmptyEndpoint | Harm::FailedRequests => true,
            })
            .collect()
    }

    fn happened(self, m: &Measures) -> bool {
        match self {
            Harm::EmptyEndpoint => m.endpoint_empty_s > 0.0,
            Harm::FailedRequests => m.requests_failed > 0,
            Harm::Collapse => m.collapsed_s > 0.0,
            Harm::RefusedLaunches => m.launches_refused.is_some_and(|n| n > 0),
        }
    }
}

/// A cell's numbers: its verdict and its measures, read from its report.json.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// Whether every expectation of the run held.
    pub passed: bool,
    /// What it came to.
    #[serde(flatten)]
    pub measures: Measures,
}

impl CellMetrics for CellResult {
    fn read(run_dir: &Path) -> Result<Self, String> {
        let report = crate::report::read(run_dir)?;
        Ok(CellResult {
            passed: report.passed(),
            measures: report.measures,
        })
    }

    fn headline(&self) -> String {
        let m = &self.measures;
        let collapsed = match m.collapsed_s > 0.0 {
            true => format!(", lease manager collapsed {:.1}s", m.collapsed_s),
            false => String::new(),
        };
        format!(
            "endpoint empty {:.1}s, {} of {} requests failed{collapsed}",
            m.endpoint_empty_s,
            m.requests_failed,
            m.requests_failed + m.requests_ok
        )
    }
}

/// One variant over its seeds.
#[derive(Debug, Serialize)]
pub struct Variant {
    /// `baseline`, a fix's name, or `all fixes`.
    pub name: String,
    /// Seeds that ran (counted); seeds that could not run or were disturbed on every try are
    /// not.
    pub seeds_ran: usize,
    /// Of those, how many had each harm not happen at all, by harm.
    pub seeds_without: Vec<(Harm, usize)>,
    /// Of those, how many passed every expectation.
    pub seeds_passed: usize,
    /// Medians over the seeds that ran.
    pub median: Medians,
    /// Seeds that could not run.
    pub seeds_failed: usize,
    /// Seeds disturbed on every try.
    pub seeds_disturbed: usize,
}

/// The medians a variant's row shows.
#[derive(Debug, Default, Serialize)]
pub struct Medians {
    /// Seconds every DNS server answered no address.
    pub endpoint_empty_s: f64,
    /// Requests failed.
    pub requests_failed: f64,
    /// Seconds from the first failed request to the last.
    pub outage_s: f64,
    /// Seconds the lease manager stayed collapsed after the repair.
    pub collapsed_s: f64,
    /// Launches refused for insufficient capacity.
    pub launches_refused: f64,
}

/// The variants, in the cells' order, from their outcomes.
pub fn variants(cells: &[Cell], results: &Results<CellResult>, harms: &[Harm]) -> Vec<Variant> {
    let mut groups: Vec<(&str, Vec<&Outcome<CellResult>>)> = Vec::new();
    for (cell, outcome) in cells.iter().zip(&results.outcomes) {
        match groups.last_mut() {
            Some((name, outcomes)) if *name == cell.group => outcomes.push(outcome),
            _ => groups.push((&cell.group, vec![outcome])),
        }
    }
    (groups.into_iter())
        .map(|(name, outcomes)| variant(name, &outcomes, harms))
        .collect()
}

fn variant(name: &str, outcomes: &[&Outcome<CellResult>], harms: &[Harm]) -> Variant {
    let ran: Vec<&CellResult> = (outcomes.iter())
        .filter_map(|o| match o {
            Outcome::Ran { metrics, .. } => Some(metrics),
            _ => None,
        })
        .collect();
    let count = |f: fn(&Outcome<CellResult>) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let of = |f: fn(&Measures) -> f64| median(ran.iter().map(|c| f(&c.measures)).collect());
    Variant {
        name: name.to_owned(),
        seeds_ran: ran.len(),
        seeds_without: (harms.iter())
            .map(|&h| (h, ran.iter().filter(|c| !h.happened(&c.measures)).count()))
            .collect(),
        seeds_passed: ran.iter().filter(|c| c.passed).count(),
        median: Medians {
            endpoint_empty_s: of(|m| m.endpoint_empty_s),
            requests_failed: of(|m| m.requests_failed as f64),
            outage_s: of(|m| m.outage_s),
            collapsed_s: of(|m| m.collapsed_s),
            launches_refused: of(|m| m.launches_refused.unwrap_or(0) as f64),
        },
        seeds_failed: count(|o| matches!(o, Outcome::Failed { .. })),
        seeds_disturbed: count(|o| matches!(o, Outcome::Disturbed { .. })),
    }
}

/// The median of `values` (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Variant {
    fn without(&self, harm: Harm) -> usize {
        (self.seeds_without.iter())
            .find(|(h, _)| *h == harm)
            .map_or(0, |(_, n)| *n)
    }

    /// Whether it ran on every seed and `harm` happened on none.
    fn prevents(&self, harm: Harm) -> bool {
        self.seeds_failed + self.seeds_disturbed == 0
            && self.seeds_ran > 0
            && self.without(harm) == self.seeds_ran
    }

    /// One plain line: on how many seeds each harm happened.
    pub fn verdict_line(&self) -> String {
        let who = match self.name.as_str() {
            "baseline" => "with no fix".to_owned(),
            "all fixes" => "all fixes together".to_owned(),
            name => format!("{name} alone"),
        };
        let each: Vec<String> = (self.seeds_without.iter())
            .map(|&(h, _)| {
                let n = self.seeds_ran - self.without(h);
                format!("{} on {n} of {} seeds", h.words(), self.seeds_ran)
            })
            .collect();
        let skipped = not_counted(self.seeds_failed, self.seeds_disturbed, "seed");
        format!("{who}: {}{skipped}", each.join(", "))
    }
}

/// The terminal table: one row per variant.
pub fn table(variants: &[Variant]) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>18} {:>16} {:>10} {:>10} {:>17}\n",
        "variant",
        "passed",
        "endpoint empty",
        "requests failed",
        "outage",
        "collapsed",
        "launches refused"
    );
    for v in variants {
        out.push_str(&format!(
            "{:<28} {:>10} {:>17.1}s {:>16} {:>9.1}s {:>9.1}s {:>17}\n",
            v.name,
            format!("{}/{}", v.seeds_passed, v.seeds_ran),
            v.median.endpoint_empty_s,
            v.median.requests_failed,
            v.median.outage_s,
            v.median.collapsed_s,
            v.median.launches_refused
        ));
    }
    out.push_str("(medians over the seeds; passed: every expectation of the run held)\n");
    out
}

/// An `--expect`: `VARIANT prevents HARM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    variant: String,
    harm: Harm,
}

impl Expect {
    /// Parses `NAME prevents empty_endpoint` or `NAME prevents failed_requests`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = text.rsplit_once(" prevents ").and_then(|(variant, harm)| {
            let harm = Harm::ALL.into_iter().find(|h| h.name() == harm.trim())?;
            let variant = variant.trim();
            (!variant.is_empty()).then(|| Expect {
                variant: variant.to_owned(),
                harm,
            })
        });
        parsed.ok_or_else(|| {
            format!(
                "--expect {text:?}: expected 'VARIANT prevents empty_endpoint', 'VARIANT prevents failed_requests', 'VARIANT prevents collapse' or 'VARIANT prevents refused_launches', e.g. 'serve_stale prevents failed_requests'"
            )
        })
    }

    /// Whether it holds; either way, the line that says so.
    pub fn check(&self, variants: &[Variant]) -> Result<String, String> {
        let said = format!("{} prevents {}", self.variant, self.harm.name());
        let Some(v) = variants.iter().find(|v| v.name == self.variant) else {
            return Err(format!(
                "{said}: there is no such variant in this comparison"
            ));
        };
        let line = format!("{said}: {}", v.verdict_line());
        match v.prevents(self.harm) {
            true => Ok(line),
            false => Err(line),
        }
    }
}

/// Everything a comparison was asked, checked before a cell starts.
struct Plan {
    fixes: Vec<String>,
    expects: Vec<Expect>,
    harms: Vec<Harm>,
    seeds: Vec<u64>,
    out: PathBuf,
    jobs: usize,
}

/// Refuses what a 2025 experiment cannot take (`what`: `comparisons`, `grids`).
pub(crate) fn refuse_untaken(c: &ExperimentArgs, what: &str) -> Result<(), String> {
    match c.memory_limit {
        Some(_) => Err(format!(
            "--memory-limit is not available for {} {what}: their runs take none",
            crate::scenario::NAME
        )),
        None => Ok(()),
    }
}

fn plan(args: &CompareArgs) -> Result<Plan, String> {
    let c = &args.common;
    refuse_untaken(c, "comparisons")?;
    let (scenario, _) = Scenario::load(&c.scenario).map_err(|e| e.to_string())?;
    let fixes: Vec<String> = match args.fix.is_empty() {
        true => (FIX_NAMES.iter())
            .filter(|f| scenario.fix_applies(f))
            .map(|f| (*f).to_owned())
            .collect(),
        false => args.fix.clone(),
    };
    if let Some(unknown) = fixes.iter().find(|f| !FIX_NAMES.contains(&f.as_str())) {
        return Err(format!(
            "--fix {unknown}: no such fix of {}; it has {}",
            crate::scenario::NAME,
            FIX_NAMES.join(", ")
        ));
    }
    let expects: Vec<Expect> =
        (args.expect.iter().map(|e| Expect::parse(e))).collect::<Result<_, _>>()?;
    let harms = Harm::of(&scenario);
    if let Some(e) = expects.iter().find(|e| !harms.contains(&e.harm)) {
        let lacks = match e.harm {
            Harm::RefusedLaunches => {
                "no customers who launch (no `leases.launches:`), so no launch can be refused"
            }
            _ => "no lease manager (no `leases:`), so nothing can collapse",
        };
        return Err(format!(
            "--expect '{} prevents {}': {} has {lacks}",
            e.variant,
            e.harm.name(),
            c.scenario.display()
        ));
    }
    Ok(Plan {
        fixes,
        expects,
        harms,
        seeds: summary::seeds(scenario.seed, c.seeds),
        out: (c.out.clone()).unwrap_or_else(|| summary::default_out("compare", &c.scenario)),
        jobs: c.jobs.map_or(DEFAULT_JOBS, |j| j as usize),
    })
}

/// `outage-lab compare` of a 2025 scenario: exit 0 when every cell ran and every `--expect`
/// held, 1 when one did not, 2 for bad input, 3 when a cell could not run, 130 interrupted.
pub fn command(args: &CompareArgs) -> ExitCode {
    exit_of(plan(args), |plan| run(args, plan))
}

/// An experiment's exit: a plan refused is bad input (2, said, nothing started); a run that
/// failed, the harness (3, said); else the code the run came to.
pub(crate) fn exit_of<P>(
    plan: Result<P, String>,
    run: impl FnOnce(&P) -> Result<u8, String>,
) -> ExitCode {
    let (code, message) = match plan.map(|p| run(&p)) {
        Err(message) => (exit::BAD_INPUT, message),
        Ok(Err(message)) => (exit::HARNESS_FAILED, message),
        Ok(Ok(code)) => return ExitCode::from(code),
    };
    eprintln!("outage-lab: {message}");
    ExitCode::from(code)
}

fn run(args: &CompareArgs, plan: &Plan) -> Result<u8, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let cells = summary::compare_cells(&plan.fixes, &plan.seeds, &plan.out);
    eprintln!(
        "{} ({} each), at most {} at once (fewer while the CPU is busy); results in {}",
        summary::plural(cells.len(), "cell"),
        summary::plural(plan.seeds.len(), "seed"),
        plan.jobs,
        plan.out.display()
    );
    let runner = Runner {
        exe: &exe,
        scenario: &args.common.scenario,
        jobs: plan.jobs,
        memory_limit_each: None,
    };
    let results =
        (runner.run_blocking(&cells)).map_err(|e| format!("cannot start a runtime: {e}"))?;
    eprintln!("{}", summary::pace_line(&results));
    let variants = variants(&cells, &results, &plan.harms);
    println!("{}", table(&variants));
    for v in &variants {
        println!("{}", v.verdict_line());
    }
    write(args, plan, &cells, &results, &variants)?;
    println!("compare.json, compare.md in {}", plan.out.display());
    let code = summary::exit_code(&results);
    if code != 0 {
        return Ok(code);
    }
    let mut held = true;
    for e in &plan.expects {
        match e.check(&variants) {
            Ok(line) => println!("expect held: {line}"),
            Err(line) => {
                held = false;
                println!("expect FAILED: {line}");
            }
        }
    }
    Ok(if held { 0 } else { exit::EXPECTATION_FAILED })
}

/// Writes compare.json (every variant and cell) and compare.md (the table, for a CI job's page).
fn write(
    args: &CompareArgs,
    plan: &Plan,
    cells: &[Cell],
    results: &Results<CellResult>,
    variants: &[Variant],
) -> Result<(), String> {
    let scenario = &args.common.scenario;
    let json = serde_json::json!({
        "scenario": scenario.display().to_string(),
        "seeds": plan.seeds,
        "variants": variants,
        "cells": summary::cell_records(scenario, cells, results),
        "wall_s": results.wall.as_secs_f64(),
        "most_at_once": results.most_at_once,
        "interrupted": results.interrupted,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    let md = markdown(scenario, variants);
    std::fs::create_dir_all(&plan.out)
        .map_err(|e| format!("cannot create {}: {e}", plan.out.display()))?;
    for (name, body) in [("compare.json", text), ("compare.md", md)] {
        let path = plan.out.join(name);
        std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The comparison as Markdown: one row per variant, then each variant's line.
fn markdown(scenario: &Path, variants: &[Variant]) -> String {
    use outage_lab_proto::markup::markdown_cell;
    let mut out = format!(
        "## Compare: {}\n\n| variant | passed | endpoint empty (median) | requests failed (median) | outage (median) | collapsed (median) | launches refused (median) |\n|---|---|---|---|---|---|---|\n",
        markdown_cell(&scenario.display().to_string())
    );
    for v in variants {
        out.push_str(&format!(
            "| {} | {}/{} | {:.1} s | {} | {:.1} s | {:.1} s | {} |\n",
            markdown_cell(&v.name),
            v.seeds_passed,
            v.seeds_ran,
            v.median.endpoint_empty_s,
            v.median.requests_failed,
            v.median.outage_s,
            v.median.collapsed_s,
            v.median.launches_refused
        ));
    }
    out.push('\n');
    for v in variants {
        out.push_str(&format!("- {}\n", markdown_cell(&v.verdict_line())));
    }
    out
}

#[cfg(test)]
mod tests;

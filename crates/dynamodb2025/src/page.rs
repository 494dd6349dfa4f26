//! `report.html` of a 2025 run: one self-contained page (inline CSS and SVG, no script, nothing
//! fetched), from the run's journal and report alone, written at the end of every run and
//! again by `outage-lab report RUN_DIR`. The verdict and the run's numbers, then both halves on
//! one time axis: what the DNS servers answered for the endpoint, the clients' requests, the
//! leases valid, the lease manager's queue, its work against the work done in time, and the
//! customers' launches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use outage_lab_dynamodb_events::{Event, JournalEntry};
use outage_lab_engine::plot::{self, Frame, Phases, esc, legend, secs, trim};

use crate::report::Report;

/// Most points a series keeps (each bucket keeps its lowest and highest).
const MAX_POINTS: usize = 600;

/// Points of a series: `(t_ms, value)`.
type Points = Vec<(u64, f64)>;

/// One series: its CSS class, its colour, its name in the legend, its points `(t_ms, value)`.
struct Series {
    class: &'static str,
    colour: &'static str,
    name: String,
    points: Points,
}

impl Series {
    fn new(class: &'static str, colour: &'static str, name: &str, points: Vec<(u64, f64)>) -> Self {
        Series {
            class,
            colour,
            name: name.to_owned(),
            points: plot::decimate(&points, MAX_POINTS),
        }
    }
}

/// The page of a run that came to `report`, from its journal `entries`.
pub fn render(report: &Report, entries: &[JournalEntry]) -> String {
    let end_ms = entries.last().map_or(0, |e| e.t_ms);
    let phases = plot::phases(entries, end_ms);
    let title = format!(
        "{} (seed {}): {}",
        report.scenario,
        report.seed,
        report.verdict.to_uppercase()
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}{}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        CSS,
        plot::CSS,
        esc(&title)
    );
    summary(&mut out, report);
    let charts = charts(entries);
    for (id, heading, series) in &charts {
        let _ = writeln!(out, "<h2 id=\"{id}\">{}</h2>", esc(heading));
        chart(&mut out, id, series, &phases, end_ms);
    }
    steps(&mut out, &phases);
    verdict(&mut out, report);
    out.push_str("<p class=\"foot\">Every number here is read from this run's journal.jsonl and report.json; <code>outage-lab report RUN_DIR</code> draws this page again.</p>\n</body></html>\n");
    out
}

const CSS: &str = "body{font:14px/1.4 sans-serif;margin:16px 24px;color:#222;max-width:1000px}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 4px}\
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.no{color:#c00;font-weight:bold}td.yes{color:#1a7f37}\
.legend span{margin-right:14px;white-space:nowrap}\
.sw{display:inline-block;width:14px;height:4px;margin-right:4px;vertical-align:middle}\
.note{color:#666;font-style:italic}.foot{color:#777;font-size:12px;margin-top:24px}";

/// The run's numbers, one row each.
fn summary(out: &mut String, report: &Report) {
    let m = &report.measures;
    let fixes = match report.fixes.is_empty() {
        true => "none".to_owned(),
        false => report.fixes.join(", "),
    };
    let mut rows = vec![
        ("incident", report.incident.clone()),
        ("fixes on", fixes),
        (
            "endpoint empty on every DNS server",
            format!("{:.1}s", m.endpoint_empty_s),
        ),
        (
            "client requests failed",
            format!(
                "{} of {}",
                m.requests_failed,
                m.requests_failed + m.requests_ok
            ),
        ),
        (
            "from the first failed request to the last",
            format!("{:.1}s", m.outage_s),
        ),
    ];
    if let Some(lost) = m.leases_lost {
        rows.push(("most leases lost at once", lost.to_string()));
        rows.push((
            "lease manager collapsed after the repair",
            format!("{:.1}s", m.collapsed_s),
        ));
        let back = m.back_by_itself_s.map_or("not by itself".to_owned(), |s| {
            format!("{s:.1}s after the repair")
        });
        rows.push(("leases back", back));
    }
    if let Some(refused) = m.launches_refused {
        rows.push((
            "launches refused: insufficient capacity",
            refused.to_string(),
        ));
    }
    rows.push(("wall time", secs(report.wall_ms)));
    out.push_str("<table class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>\n");
}

/// A chart: its id, its heading and its series.
type Chart = (&'static str, &'static str, Vec<Series>);

/// The charts: the first half's, then the lease manager's; a chart with no points is left out.
fn charts(entries: &[JournalEntry]) -> Vec<Chart> {
    let answering = Series::new(
        "addr",
        "#1f77b4",
        "DNS servers answering with an address",
        answering(entries),
    );
    let (ok, failed) = clients(entries);
    let mut charts = vec![
        (
            "endpoint",
            "What the DNS servers answered for the endpoint",
            vec![answering],
        ),
        (
            "clients",
            "Client requests per second",
            vec![
                Series::new("ok", "#2ca02c", "succeeded", ok),
                Series::new("failed", "#d62728", "failed", failed),
            ],
        ),
    ];
    charts.extend(lease_charts(entries));
    charts.retain(|(_, _, series)| series.iter().any(|s| !s.points.is_empty()));
    charts
}

/// The lease manager's charts: its leases, its queue, its work and goodput, the launches.
fn lease_charts(entries: &[JournalEntry]) -> Vec<Chart> {
    let seconds = leases(entries);
    let lease = |f: fn(&Lease) -> u64| -> Points {
        seconds.iter().map(|l| (l.t_ms, f(l) as f64)).collect()
    };
    let one = |class: &'static str, colour: &'static str, name: &str, f: fn(&Lease) -> u64| {
        vec![Series::new(class, colour, name, lease(f))]
    };
    let (placed, refused) = launches(entries);
    vec![
        (
            "leases",
            "Leases valid",
            one("leases", "#9467bd", "leases valid", |l| l.valid),
        ),
        (
            "queue",
            "The lease manager's queue",
            one("queue", "#8c564b", "renewals queued", |l| l.queued),
        ),
        (
            "goodput",
            "The lease manager's work per second, and the work done in time (goodput)",
            vec![
                Series::new(
                    "work",
                    "#7f7f7f",
                    "renewals worked on",
                    lease(|l| l.processed),
                ),
                Series::new(
                    "goodput",
                    "#ff7f0e",
                    "renewed in time (goodput)",
                    lease(|l| l.completed),
                ),
            ],
        ),
        (
            "launches",
            "Customers' launches per second",
            vec![
                Series::new(
                    "placed",
                    "#2ca02c",
                    "placed on a server with a lease",
                    placed,
                ),
                Series::new("refused", "#d62728", "insufficient capacity", refused),
            ],
        ),
    ]
}

/// One chart of `series` over the run, the phases and steps drawn behind.
fn chart(out: &mut String, id: &str, series: &[Series], phases: &Phases, end_ms: u64) {
    let top = (series.iter())
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let f = Frame::new(220.0, end_ms as f64, 0.0, top * 1.05);
    f.open(out, &format!("plot {id}"), id);
    f.phases(out, phases);
    f.value_axis(out, trim);
    f.time_axis(out);
    for s in series {
        let _ = write!(out, "<g style=\"stroke:{}\">", s.colour);
        f.polyline(out, s.class, &s.points, &s.name);
        out.push_str("</g>");
    }
    out.push_str("</svg>\n");
    let items: Vec<(String, String)> = (series.iter())
        .map(|s| (s.colour.to_owned(), s.name.clone()))
        .collect();
    legend(out, &items);
}

/// How many DNS servers answered the endpoint with an address, as steps: each change drawn
/// straight up or down where a probe saw it.
fn answering(entries: &[JournalEntry]) -> Points {
    let mut with_address: BTreeMap<&str, bool> = BTreeMap::new();
    let mut points: Points = Vec::new();
    for e in entries {
        if let Event::EndpointProbed {
            server,
            addrs,
            error: None,
            ..
        } = &e.event
        {
            with_address.insert(server, !addrs.is_empty());
            let count = with_address.values().filter(|a| **a).count() as f64;
            match points.last() {
                Some(&(_, before)) if before == count => continue,
                Some(&(t, before)) if t != e.t_ms => points.push((e.t_ms, before)),
                _ => {}
            }
            points.push((e.t_ms, count));
        }
    }
    // The probes tell changes only: the last answer holds to the end of the journal.
    if let (Some(&(t, last)), Some(end)) = (points.last(), entries.last())
        && end.t_ms > t
    {
        points.push((end.t_ms, last));
    }
    points
}

/// Every customer's launches, summed per second of the journal: placed, refused for
/// insufficient capacity.
fn launches(entries: &[JournalEntry]) -> (Points, Points) {
    per_second(entries, |e| match e {
        Event::LaunchStats {
            launched,
            insufficient_capacity,
            ..
        } => Some((*launched, *insufficient_capacity)),
        _ => None,
    })
}

/// Two counts of the events `pick` reads, summed per second of the journal (each count covers
/// the second before it was told).
fn per_second(
    entries: &[JournalEntry],
    pick: impl Fn(&Event) -> Option<(u64, u64)>,
) -> (Points, Points) {
    let mut seconds: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for e in entries {
        if let Some((a, b)) = pick(&e.event) {
            let second = seconds.entry(e.t_ms / 1000 * 1000).or_default();
            second.0 += a;
            second.1 += b;
        }
    }
    let first = seconds.iter().map(|(t, (a, _))| (*t, *a as f64)).collect();
    let second = seconds.iter().map(|(t, (_, b))| (*t, *b as f64)).collect();
    (first, second)
}

/// Every client's requests, summed per second of the journal (each count covers the second
/// before it was told): succeeded, failed.
fn clients(entries: &[JournalEntry]) -> (Points, Points) {
    per_second(entries, |e| match e {
        Event::ClientStats { ok, failed, .. } => Some((*ok, *failed)),
        _ => None,
    })
}

/// One second of the lease manager, as it told it.
struct Lease {
    t_ms: u64,
    valid: u64,
    queued: u64,
    processed: u64,
    completed: u64,
}

fn leases(entries: &[JournalEntry]) -> Vec<Lease> {
    (entries.iter())
        .filter_map(|e| match &e.event {
            Event::LeaseStats {
                queued,
                processed,
                completed,
                leases_valid,
                ..
            } => Some(Lease {
                t_ms: e.t_ms,
                valid: *leases_valid,
                queued: *queued,
                processed: *processed,
                completed: *completed,
            }),
            _ => None,
        })
        .collect()
}

/// The steps of the timeline, numbered as on the charts.
fn steps(out: &mut String, phases: &Phases) {
    out.push_str("<h2 id=\"steps\">Steps of the timeline</h2>\n");
    if phases.faults.is_empty() {
        out.push_str("<p class=\"note\">No step was played.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>#</th><th>at</th><th>step</th><th>what was done</th></tr>");
    outage_lab_engine::plot::step_rows(out, phases);
    out.push_str("</table>\n");
}

/// Every row of the verdict, with its evidence.
fn verdict(out: &mut String, report: &Report) {
    out.push_str("<h2 id=\"verdict\">Verdict</h2>\n<table><tr><th>expectation</th><th>held</th><th>evidence</th></tr>");
    for r in &report.expectations {
        let (class, word) = if r.passed {
            ("yes", "yes")
        } else {
            ("no", "NO")
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.detail)
        );
    }
    out.push_str("</table>\n");
}

/// Writes `<run>/report.html`; returns its path.
pub fn write(
    run_dir: &Path,
    report: &Report,
    entries: &[JournalEntry],
) -> std::io::Result<PathBuf> {
    let path = run_dir.join("report.html");
    std::fs::write(&path, render(report, entries))?;
    Ok(path)
}

/// Draws `<run>/report.html` again from the run's journal.jsonl and report.json (`outage-lab
/// report RUN_DIR`): its path and how many journal lines could not be read (a line cut short
/// by a crash, or of a kind from another version), which the page leaves out; what is wrong
/// with the files, else.
pub fn rebuild(run_dir: &Path) -> Result<(PathBuf, usize), String> {
    let report = crate::report::read(run_dir)?;
    let path = run_dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines = text.lines().filter(|l| !l.trim().is_empty());
    let (mut entries, mut skipped) = (Vec::new(), 0);
    for line in lines {
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(_) => skipped += 1,
        }
    }
    let written = write(run_dir, &report, &entries).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            run_dir.join("report.html").display()
        )
    })?;
    Ok((written, skipped))
}

#[cfg(test)]
mod tests {
    use outage_lab_dynamodb_events::ClientKind;
    use outage_lab_proto::{EngineEvent, RunPhase};

    use super::*;

    fn at(t_ms: u64, event: Event) -> JournalEntry {
        JournalEntry {
            t_ms,
            source: "test".into(),
            source_pid: None,
            event,
        }
    }

    fn probed(server: &str, addrs: usize) -> Event {
        Event::EndpointProbed {
            server: server.into(),
            endpoint: "e.".into(),
            addrs: vec![std::net::Ipv4Addr::LOCALHOST; addrs],
            error: None,
        }
    }

    fn lease_stats(valid: u64, queued: u64) -> Event {
        Event::LeaseStats {
            queued,
            received: 0,
            processed: 100,
            completed: 3,
            timed_out: 97,
            failed_checks: 0,
            dropped: 0,
            throttled: 0,
            leases_valid: valid,
            servers: 300,
        }
    }

    fn journal() -> Vec<JournalEntry> {
        let phase = EngineEvent::Phase {
            name: RunPhase::Timeline,
            detail: String::new(),
        };
        let step = EngineEvent::FaultInjected {
            action: "manual_repair".into(),
            detail: "<restored>".into(),
        };
        let clients = Event::ClientStats {
            client: "c0".into(),
            client_kind: ClientKind::Customer,
            ok: 5,
            failed: 15,
            lookups: 20,
            lookups_failed: 15,
            served_stale: 0,
        };
        vec![
            at(500, phase.into()),
            at(1000, probed("dns-a", 3)),
            at(1000, probed("dns-b", 3)),
            at(2000, probed("dns-a", 0)),
            at(2000, clients),
            at(3000, lease_stats(300, 10)),
            at(4000, step.into()),
            at(5000, lease_stats(0, 9000)),
        ]
    }

    #[test]
    fn the_page_draws_both_halves_numbers_the_steps_and_fetches_nothing() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "incident": "dynamodb-2025-10-20", "scenario": "s", "seed": 7, "fixes": [],
            "verdict": "fail", "expectations": [{"name": "congestive_collapse", "passed": false, "detail": "a<b"}],
            "wall_ms": 6000, "lag": serde_json::to_value(outage_lab_proto::report::LagReport::default()).expect("a lag"), "measures": {"endpoint_empty_s": 1.0, "requests_failed": 15,
            "requests_ok": 5, "served_stale": 0, "outage_s": 1.0, "leases_lost": 300}
        }))
        .expect("a report");
        let page = render(&report, &journal());
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("<h1>s (seed 7): FAIL</h1>"), "{page}");
        for id in [
            "endpoint", "clients", "leases", "queue", "goodput", "steps", "verdict",
        ] {
            assert!(
                page.contains(&format!("<h2 id=\"{id}\">")),
                "no {id}: {page}"
            );
        }
        assert!(
            page.contains("<td class=\"no\">NO</td><td>a&lt;b</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>manual_repair</td><td>&lt;restored&gt;</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>leases back</td><td>not by itself</td>"),
            "{page}"
        );
        assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("<script"));
    }

    #[test]
    fn the_endpoint_chart_counts_the_servers_that_answer_with_an_address() {
        let points = answering(&journal());
        let steps = [
            (1000, 1.0),
            (1000, 2.0),
            (2000, 2.0),
            (2000, 1.0),
            (5000, 1.0),
        ];
        assert_eq!(points, steps);
        let (ok, failed) = clients(&journal());
        assert_eq!((ok, failed), (vec![(2000, 5.0)], vec![(2000, 15.0)]));
    }

    #[test]
    fn a_run_without_a_lease_manager_has_no_lease_charts() {
        let first_half: Vec<JournalEntry> = (journal().into_iter())
            .filter(|e| !matches!(e.event, Event::LeaseStats { .. }))
            .collect();
        let ids: Vec<&str> = charts(&first_half).iter().map(|c| c.0).collect();
        assert_eq!(ids, ["endpoint", "clients"]);
    }
}

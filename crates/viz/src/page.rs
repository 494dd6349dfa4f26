//! Assembling `report.html`: the summary, the verdict table, the plots and the 2012 timeline.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole};
use outage_lab_proto::report::{LoadReport, Report, Verdict, VolumesReport};

use crate::series::{self, Group, Phases};
use outage_lab_engine::plot::{Frame, esc, legend, secs, trim};

/// Colours of the memory plot. Exact RGB, drawn without transparency, so a screenshot can be
/// checked for them pixel by pixel.
pub mod colour {
    /// Agents behind a stale DNS server (they leak).
    pub const STALE_AGENT: (u8, u8, u8) = (0xd6, 0x27, 0x28);
    /// Agents behind an updated DNS server.
    pub const FRESH_AGENT: (u8, u8, u8) = (0x1f, 0x77, 0xb4);
    /// Storage processes.
    pub const STORAGE: (u8, u8, u8) = (0x9a, 0x9a, 0x9a);
    /// The per-process leak alarm.
    pub const LEAK_ALARM: (u8, u8, u8) = (0xff, 0x7f, 0x0e);
    /// The 2012 aggregate alarm.
    pub const AGGREGATE_ALARM: (u8, u8, u8) = (0x94, 0x67, 0xbd);
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

const MIB: f64 = 1024.0 * 1024.0;

/// What every plot draws from.
struct Ctx<'a> {
    entries: &'a [JournalEntry],
    report: &'a Report,
    phases: Phases,
    end_ms: u64,
}

/// The whole page.
pub(crate) fn render(entries: &[JournalEntry], report: &Report, skipped: usize) -> String {
    let end_ms = entries
        .iter()
        .map(|e| e.t_ms)
        .max()
        .unwrap_or(report.wall_ms)
        .max(1);
    let cx = Ctx {
        entries,
        report,
        phases: series::phases(entries, end_ms),
        end_ms,
    };
    let mut out = String::with_capacity(256 * 1024);
    let title = format!(
        "outage-lab: {} seed {} ({})",
        report.scenario,
        report.seed,
        verdict_word(report.verdict)
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>\n",
        esc(&title),
        css()
    );
    summary(&mut out, entries, report, end_ms);
    section(&mut out, "memory", "Resident memory per process");
    memory_plot(&mut out, &cx);
    section(
        &mut out,
        "dns",
        "What each DNS server answers for the collector",
    );
    dns_plot(&mut out, &cx);
    dns_answer_table(&mut out, entries);
    section(&mut out, "alarms", "Alarms");
    alarm_plot(&mut out, &cx);
    section(&mut out, "volumes", "Stuck volumes and customer errors");
    volume_plots(&mut out, &cx);
    if let Some(customers) = &report.customers {
        section(
            &mut out,
            "api",
            "The control plane's API: customers' calls and the throttle",
        );
        crate::api::plots(&mut out, customers, &cx.phases, end_ms);
    }
    section(&mut out, "phases", "Phases and faults of this run");
    phase_table(&mut out, &cx.phases);
    if !report.fixes.is_empty() {
        section(&mut out, "fixes", "Fixes that were on, and what they did");
        fixes_table(&mut out, entries, report);
    }
    section(&mut out, "verdict", "Expectations");
    verdict_table(&mut out, report);
    section(&mut out, "y2012", "The 2012 event, for comparison");
    crate::incident::timeline(&mut out, &cx.phases);
    let _ = write!(
        out,
        "<p class=\"foot\">Built from journal.jsonl ({} entries{}) and report.json by outage-lab; rebuild with <code>outage-lab report RUN_DIR</code>. Every plot is inline SVG: this file needs nothing else.</p>\n</body></html>\n",
        entries.len(),
        if skipped > 0 {
            format!(", {skipped} of kinds this version does not know skipped")
        } else {
            String::new()
        }
    );
    out
}

/// `PASS` or `FAIL`, as every summary of a run writes the verdict.
pub(crate) fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    }
}

fn css() -> String {
    format!(
        "body{{font:14px/1.4 sans-serif;margin:16px 24px;color:#222;max-width:1000px}}\
h1{{font-size:20px;margin:0 0 4px}}h2{{font-size:16px;margin:22px 0 4px}}\
.pass{{color:#1a7f37}}.fail{{color:#c00}}\
table{{border-collapse:collapse;margin:6px 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}\
th{{background:#f3f3f3}}td.no{{color:#c00;font-weight:bold}}td.yes{{color:#1a7f37}}\
.kv td:first-child{{color:#555}}.legend span{{margin-right:14px;white-space:nowrap}}\
.sw{{display:inline-block;width:14px;height:4px;margin-right:4px;vertical-align:middle}}\
.note{{color:#666;font-style:italic}}.foot{{color:#777;font-size:12px;margin-top:24px}}\
{plot}\
svg .stale{{stroke:{stale};stroke-width:2}}svg .fresh{{stroke:{fresh}}}svg .storage{{stroke:{storage}}}\
svg .leak{{stroke:{leak};stroke-width:2}}svg .aggregate{{stroke:{agg};stroke-width:2}}\
svg .cache_aware_aggregate{{stroke:{agg};stroke-width:2;stroke-dasharray:3 2}}\
svg .stuck{{stroke:#8c564b;stroke-width:2}}svg .degraded{{stroke:#bcbd22;stroke-width:2}}svg .err{{stroke:#17becf;stroke-width:2}}\
svg .rowl{{text-anchor:end;fill:#222}}svg .ans{{fill:#fff;font-size:10px}}{api}",
        stale = hex(colour::STALE_AGENT),
        fresh = hex(colour::FRESH_AGENT),
        storage = hex(colour::STORAGE),
        leak = hex(colour::LEAK_ALARM),
        agg = hex(colour::AGGREGATE_ALARM),
        api = crate::api::CSS,
        plot = outage_lab_engine::plot::CSS,
    )
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = writeln!(out, "<h2 id=\"{id}\">{}</h2>", esc(title));
}

/// The page's heading with the verdict, then one table of what the run was and what happened
/// in it.
fn summary(out: &mut String, entries: &[JournalEntry], report: &Report, end_ms: u64) {
    let stale = report.servers.iter().filter(|s| s.stale).count();
    summary_heading(out, report);
    let mut rows: Vec<(&str, String)> = vec![
        ("seed", report.seed.to_string()),
        (
            "fleet",
            format!(
                "{} storage servers, {stale} stale (behind a DNS server that missed the update)",
                report.servers.len()
            ),
        ),
        (
            "wall time",
            format!("{} (journal spans {})", secs(report.wall_ms), secs(end_ms)),
        ),
    ];
    if let Some(d) = journal_scenario(entries, report) {
        rows.push(("journal scenario", d));
    }
    rows.push(("alarms", alarms_summary(report, stale)));
    if let Some(volumes) = volumes_summary(&report.volumes) {
        rows.push(("volumes", volumes));
    }
    if let Some(load) = load_summary(&report.load) {
        rows.push(("customer load", load));
    }
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>\n");
}

/// The `<h1>` naming the scenario and its verdict, and the opening of the summary table.
fn summary_heading(out: &mut String, report: &Report) {
    let _ = write!(
        out,
        "<h1>{} <span class=\"{}\">{}</span></h1>\n<table class=\"kv\">",
        esc(&report.scenario),
        if report.verdict == Verdict::Pass {
            "pass"
        } else {
            "fail"
        },
        verdict_word(report.verdict)
    );
}

/// The scenario the journal says it ran, when that differs from the report's.
fn journal_scenario(entries: &[JournalEntry], report: &Report) -> Option<String> {
    let description = entries.iter().find_map(|e| match &e.event {
        Event::RunStarted { scenario, .. } => Some(scenario.clone()),
        _ => None,
    });
    description.filter(|d| *d != report.scenario)
}

/// Which servers' alarms went off: the leak alarm on stale and on fresh agents (of `stale`
/// stale ones), and the 2012 aggregate alarm.
fn alarms_summary(report: &Report, stale: usize) -> String {
    let leak_stale = report
        .servers
        .iter()
        .filter(|s| s.stale && s.alarms.leak_at_ms.is_some())
        .count();
    let leak_fresh = report
        .servers
        .iter()
        .filter(|s| !s.stale && s.alarms.leak_at_ms.is_some())
        .count();
    let aggregate = report
        .servers
        .iter()
        .filter(|s| s.alarms.aggregate_at_ms.is_some())
        .count();
    format!(
        "leak alarm on {leak_stale}/{stale} stale agents and {leak_fresh} fresh ones; 2012 aggregate alarm on {aggregate} servers"
    )
}

/// What happened to the volumes, if the run placed any.
fn volumes_summary(v: &VolumesReport) -> Option<String> {
    (v.total > 0).then(|| {
        format!(
            "{} placed; at most {} stuck at once{}; {} stuck at the end; {} failovers, {} without capacity; {} acknowledged writes, {} lost",
            v.total,
            v.stuck_peak,
            v.stuck_peak_at_ms
                .map(|t| format!(" (at {})", secs(t)))
                .unwrap_or_default(),
            v.stuck_final,
            v.failovers_attempted,
            v.failovers_without_capacity,
            v.acknowledged_writes,
            v.lost_acknowledged_writes
        )
    })
}

/// How the customers' requests went, if any were made.
fn load_summary(l: &LoadReport) -> Option<String> {
    (l.requests > 0).then(|| {
        format!(
            "{} requests, {} ok, {} errors ({:.1}%); p50 {:.1}ms, p99 {:.1}ms",
            l.requests,
            l.ok,
            l.errors,
            l.errors as f64 * 100.0 / l.requests as f64,
            l.p50_ms,
            l.p99_ms
        )
    })
}

fn memory_plot(out: &mut String, cx: &Ctx<'_>) {
    let (entries, report, phases, end_ms) = (cx.entries, cx.report, &cx.phases, cx.end_ms);
    let lines = series::memory_lines(entries, report);
    if lines.is_empty() {
        note(
            out,
            "No rss_sweep events in this journal: the watchdog sampled nothing.",
        );
        return;
    }
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        / MIB;
    let f = Frame::new(360.0, end_ms as f64, 0.0, top * 1.05);
    f.open(out, "plot memory", "resident memory per process over time");
    f.phases(out, phases);
    f.value_axis(out, |v| format!("{} MiB", trim(v)));
    f.time_axis(out);
    // Storage first, then stale agents, then fresh ones: a leaking agent's climb crosses no
    // other agent's line, but before its leak shows and after its restart it lies on the fresh
    // agents' level, where drawing it last would hide the fresh agents altogether.
    let mut ordered: Vec<&series::MemoryLine> = lines.iter().collect();
    ordered.sort_by_key(|l| match l.group {
        Group::Storage => 0,
        Group::StaleAgent => 1,
        Group::FreshAgent => 2,
    });
    for l in ordered {
        let (class, what) = match l.group {
            Group::Storage => ("storage", "storage"),
            Group::FreshAgent => ("fresh", "agent (fresh DNS)"),
            Group::StaleAgent => ("stale", "agent (stale DNS)"),
        };
        let pts: Vec<(u64, f64)> = l.points.iter().map(|(t, b)| (*t, b / MIB)).collect();
        f.polyline(out, class, &pts, &format!("{} {what}", l.server));
    }
    // Leak alarms as small marks on the time axis of the memory plot too.
    for a in series::alarms(entries, report) {
        let x = f.x(a.t_ms as f64);
        let y = f.plot_bottom();
        let _ = write!(
            out,
            r#"<line class="{}" x1="{x:.0}" y1="{:.0}" x2="{x:.0}" y2="{y:.0}"/>"#,
            a.kind,
            y - 8.0
        );
    }
    out.push_str("</svg>\n");
    let count = |g| lines.iter().filter(|l| l.group == g).count();
    legend(
        out,
        &[
            (
                hex(colour::STALE_AGENT),
                format!("stale agents ({})", count(Group::StaleAgent)),
            ),
            (
                hex(colour::FRESH_AGENT),
                format!("fresh agents ({})", count(Group::FreshAgent)),
            ),
            (
                hex(colour::STORAGE),
                format!("storage processes ({})", count(Group::Storage)),
            ),
            (
                hex(colour::LEAK_ALARM),
                "leak alarm (tick on the axis)".into(),
            ),
            (
                hex(colour::AGGREGATE_ALARM),
                "2012 aggregate alarm (tick on the axis)".into(),
            ),
        ],
    );
}

fn dns_plot(out: &mut String, cx: &Ctx<'_>) {
    let (entries, report, phases, end_ms) = (cx.entries, cx.report, &cx.phases, cx.end_ms);
    let tracks = series::dns_tracks(entries, report);
    if tracks.is_empty() {
        note(out, "No DNS servers in this run.");
        return;
    }
    // One colour per distinct answer, in order of first appearance.
    let palette = ["#6a51a3", "#31a354", "#e6550d", "#3182bd", "#636363"];
    let mut answers: Vec<Vec<IpAddr>> = Vec::new();
    for t in &tracks {
        for (_, a) in &t.answers {
            if !answers.contains(a) {
                answers.push(a.clone());
            }
        }
    }
    let row = 26.0;
    let h = 18.0 + 28.0 + row * tracks.len() as f64;
    let f = Frame::new(h, end_ms as f64, 0.0, tracks.len() as f64);
    f.open(
        out,
        "plot dns",
        "collector answer of each DNS server over time",
    );
    f.phases(out, phases);
    for (i, t) in tracks.iter().enumerate() {
        let y = f.top + row * i as f64 + 4.0;
        let _ = write!(
            out,
            r#"<text class="rowl" x="{:.0}" y="{:.0}">{} ({} agents{})</text>"#,
            f.left - 6.0,
            y + 13.0,
            esc(&t.name),
            t.agents,
            if t.stale { ", stale" } else { "" }
        );
        for (k, (from, addrs)) in t.answers.iter().enumerate() {
            let to = t.answers.get(k + 1).map_or(end_ms, |n| n.0);
            let idx = answers.iter().position(|a| a == addrs).unwrap_or(0);
            let (x0, x1) = (f.x(*from as f64), f.x(to as f64));
            let label = join_ips(addrs);
            let _ = write!(
                out,
                r#"<rect x="{x0:.0}" y="{y:.0}" width="{:.0}" height="{:.0}" fill="{}"><title>{} answers {label} from {}</title></rect>"#,
                (x1 - x0).max(1.0),
                row - 8.0,
                palette[idx % palette.len()],
                esc(&t.name),
                secs(*from)
            );
            if x1 - x0 > 90.0 {
                let _ = write!(
                    out,
                    r#"<text class="ans" x="{:.0}" y="{:.0}">{label}</text>"#,
                    x0 + 4.0,
                    y + 13.0
                );
            }
        }
    }
    f.time_axis(out);
    out.push_str("</svg>\n");
    let items: Vec<(String, String)> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                palette[i % palette.len()].to_owned(),
                format!(
                    "{}{}",
                    join_ips(a),
                    if i == 0 { " (first answer)" } else { "" }
                ),
            )
        })
        .collect();
    legend(out, &items);
}

fn join_ips(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn alarm_plot(out: &mut String, cx: &Ctx<'_>) {
    let (entries, report, phases, end_ms) = (cx.entries, cx.report, &cx.phases, cx.end_ms);
    let marks = series::alarms(entries, report);
    let mut rows: Vec<(&str, AlarmKind, Option<ProcessRole>)> = vec![
        ("leak: agents", AlarmKind::Leak, Some(ProcessRole::Agent)),
        ("leak: storage", AlarmKind::Leak, Some(ProcessRole::Storage)),
        ("2012 aggregate", AlarmKind::Aggregate, None),
    ];
    let cache_aware = AlarmKind::CacheAwareAggregate;
    if marks.iter().any(|m| m.kind == cache_aware) {
        rows.push(("cache-aware aggregate", cache_aware, None));
    }
    let row = 24.0;
    let n_rows = rows.len() as f64;
    let f = Frame::new(18.0 + 28.0 + row * n_rows, end_ms as f64, 0.0, n_rows);
    f.open(out, "plot alarms", "alarms over time");
    f.phases(out, phases);
    for (i, (label, kind, role)) in rows.iter().enumerate() {
        let y = f.top + row * i as f64;
        let n = marks
            .iter()
            .filter(|m| m.kind == *kind && (m.kind.per_server() || m.role == *role))
            .count();
        let _ = write!(
            out,
            r#"<text class="rowl" x="{:.0}" y="{:.0}">{label} ({n})</text>"#,
            f.left - 6.0,
            y + 16.0
        );
        for m in marks
            .iter()
            .filter(|m| m.kind == *kind && (m.kind.per_server() || m.role == *role))
        {
            let x = f.x(m.t_ms as f64);
            let _ = write!(
                out,
                r#"<line class="{kind}" x1="{x:.0}" y1="{:.0}" x2="{x:.0}" y2="{:.0}"><title>{} {} at {}{}: {}</title></line>"#,
                y + 4.0,
                y + row - 2.0,
                kind,
                esc(&m.server),
                secs(m.t_ms),
                if m.stale { " (stale)" } else { "" },
                esc(&m.detail)
            );
        }
    }
    f.time_axis(out);
    out.push_str("</svg>\n");
    if marks.is_empty() {
        note(out, "No alarm fired in this run.");
    } else {
        let first = |k: AlarmKind| {
            marks
                .iter()
                .find(|m| m.kind == k)
                .map_or("never".to_owned(), |m| {
                    format!("first at {} on {}", secs(m.t_ms), m.server)
                })
        };
        let _ = write!(
            out,
            "<p>Leak alarm: {}. 2012 aggregate alarm: {}.",
            esc(&first(AlarmKind::Leak)),
            esc(&first(AlarmKind::Aggregate))
        );
        if rows.len() > 3 {
            let _ = write!(
                out,
                " Cache-aware aggregate alarm: {}.",
                esc(&first(cache_aware))
            );
        }
        out.push_str("</p>\n");
    }
}

fn volume_plots(out: &mut String, cx: &Ctx<'_>) {
    let (entries, phases, end_ms) = (cx.entries, &cx.phases, cx.end_ms);
    let v = series::volumes(entries);
    if v.stuck.is_empty() {
        note(
            out,
            "No control_stats events in this journal: this run had no control plane counting volumes.",
        );
    } else {
        let top = v
            .stuck
            .iter()
            .chain(&v.degraded)
            .map(|p| p.1)
            .fold(v.total as f64, f64::max);
        let f = Frame::new(200.0, end_ms as f64, 0.0, top.max(1.0));
        f.open(out, "plot volumes", "stuck and degraded volumes over time");
        f.phases(out, phases);
        f.value_axis(out, trim);
        f.time_axis(out);
        f.polyline(out, "degraded", &v.degraded, "degraded volumes");
        f.polyline(out, "stuck", &v.stuck, "stuck volumes");
        out.push_str("</svg>\n");
        legend(
            out,
            &[
                ("#8c564b".into(), format!("stuck volumes (of {})", v.total)),
                ("#bcbd22".into(), "degraded volumes".into()),
            ],
        );
    }
    let err = series::error_rate(entries);
    if err.is_empty() {
        note(
            out,
            "No load_stats events in this journal: this run had no customer load.",
        );
    } else {
        let top = err.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
        let f = Frame::new(200.0, end_ms as f64, 0.0, (top * 1.1).min(100.0));
        f.open(out, "plot errors", "customer error rate over time");
        f.phases(out, phases);
        f.value_axis(out, |v| format!("{}%", trim(v)));
        f.time_axis(out);
        f.polyline(out, "err", &err, "customer error rate");
        out.push_str("</svg>\n");
        legend(
            out,
            &[(
                "#17becf".into(),
                "customer error rate (% of requests in each window)".into(),
            )],
        );
    }
}

fn phase_table(out: &mut String, phases: &Phases) {
    out.push_str("<table><tr><th>#</th><th>at</th><th>what</th><th>detail</th></tr>");
    for b in &phases.bands {
        let _ = write!(
            out,
            "<tr><td></td><td>{}</td><td>phase: {}</td><td>until {}</td></tr>",
            secs(b.from_ms),
            esc(&b.name),
            secs(b.to_ms)
        );
    }
    outage_lab_engine::plot::step_rows(out, phases);
    out.push_str("</table>\n<p class=\"note\">The numbers mark the faults on every plot above; shaded bands are the phases.</p>\n");
}

/// Most fix actions listed one by one; the table above counts them all.
const FIX_ACTIONS_LISTED: usize = 40;

/// What each DNS server answered for the collector name by the end, counted by address
/// (`dns_answers`): the evidence of what an agent the lab did not write resolved.
fn dns_answer_table(out: &mut String, entries: &[JournalEntry]) {
    let mut last: BTreeMap<&str, &BTreeMap<IpAddr, u64>> = BTreeMap::new();
    for e in entries {
        if let Event::DnsAnswers { answers, .. } = &e.event {
            last.insert(&e.source, answers);
        }
    }
    if last.is_empty() {
        return;
    }
    out.push_str("<table class=\"answers\"><tr><th>DNS server</th><th>answers for the collector, by address</th></tr>");
    for (dns, counts) in last {
        let counts: Vec<String> = (counts.iter()).map(|(a, n)| format!("{a}: {n}")).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(dns),
            esc(&counts.join(", "))
        );
    }
    out.push_str("</table>\n");
}

fn fixes_table(out: &mut String, entries: &[JournalEntry], report: &Report) {
    out.push_str(
        "<table class=\"fixes\"><tr><th>fix</th><th>actions</th><th>what it did</th></tr>",
    );
    for f in &report.fixes {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            f.actions,
            esc(&f.detail)
        );
    }
    out.push_str("</table>\n");
    let actions: Vec<(u64, &str, &str)> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::FixApplied { fix, detail, .. } => Some((e.t_ms, fix.as_str(), detail.as_str())),
            _ => None,
        })
        .collect();
    // A fix that acts through the configs alone (spare capacity) has no actions to list.
    if actions.is_empty() {
        return;
    }
    out.push_str("<table class=\"fix-actions\"><tr><th>at</th><th>fix</th><th>action</th></tr>");
    for (t_ms, fix, detail) in actions.iter().take(FIX_ACTIONS_LISTED) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            secs(*t_ms),
            esc(fix),
            esc(detail)
        );
    }
    out.push_str("</table>\n");
    if actions.len() > FIX_ACTIONS_LISTED {
        let _ = writeln!(
            out,
            "<p class=\"note\">The first {FIX_ACTIONS_LISTED} of {} actions.</p>",
            actions.len()
        );
    }
}

fn verdict_table(out: &mut String, report: &Report) {
    out.push_str(
        "<table class=\"verdict\"><tr><th>expectation</th><th>held</th><th>evidence</th></tr>",
    );
    for e in &report.expectations {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&e.name),
            if e.passed { "yes" } else { "no" },
            if e.passed { "yes" } else { "NO" },
            esc(&e.detail)
        );
    }
    out.push_str("</table>\n");
    let by_dns: BTreeMap<&str, usize> = report.servers.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.dns_server.as_str()).or_default() += 1;
        m
    });
    let _ = writeln!(
        out,
        "<p class=\"note\">{} servers behind {} DNS servers.</p>",
        report.servers.len(),
        by_dns.len()
    );
}

pub(crate) fn note(out: &mut String, text: &str) {
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(text));
}

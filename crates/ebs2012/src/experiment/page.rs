//! `compare.html`: one self-contained page (inline CSS and SVG, no script, nothing fetched),
//! like report.html, in the engine's frame (`grid.html` is the engine's).

use std::fmt::Write;

use outage_lab_proto::markup::escape as esc;

use super::Experiment;
use super::compare::Variant;
use super::compare::applicable;
use super::metrics::{GridMetric, Metric, Spread};
use outage_lab_engine::experiment::grid::page::{foot, head};

/// The comparison: a line per variant, then per metric a bar per variant (the median) with its
/// range over the seeds.
pub fn compare(exp: &Experiment, variants: &[Variant], lines: &[String]) -> String {
    let mut out = String::new();
    head(
        &mut out,
        &format!("Fixes compared: {}", exp.scenario.display()),
    );
    out.push_str("<ul class=\"verdicts\">");
    for line in lines {
        let _ = write!(out, "<li>{}</li>", esc(line));
    }
    out.push_str("</ul>\n");
    // A metric that applies to no variant (an error rate without customer I/O) is left out.
    for metric in applicable(variants) {
        let _ = writeln!(
            out,
            "<h2 id=\"{}\">{}</h2>",
            metric.name(),
            esc(&metric.title())
        );
        let rows: Vec<(&str, Spread)> = (variants.iter())
            .map(|v| {
                let s = (v.summary.iter())
                    .find(|(m, _)| *m == metric)
                    .map_or(Spread::NotApplicable, |(_, s)| *s);
                (v.name.as_str(), s)
            })
            .collect();
        bars(&mut out, metric, &rows);
    }
    foot(&mut out, &exp.seeds, &exp.out);
    out
}

/// Horizontal bars: median, with a line from the smallest to the largest value.
fn bars(out: &mut String, metric: Metric, rows: &[(&str, Spread)]) {
    const LABEL: f64 = 190.0;
    const WIDTH: f64 = 420.0;
    const ROW: f64 = 24.0;
    let top = (rows.iter())
        .filter_map(|(_, s)| s.summary().map(|s| s.max))
        .fold(0.0_f64, f64::max);
    let scale = if top > 0.0 { WIDTH / top } else { 0.0 };
    let height = ROW * rows.len() as f64 + 8.0;
    let _ = write!(
        out,
        "<svg class=\"bars\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        LABEL + WIDTH + 180.0,
        metric.name()
    );
    for (i, (name, s)) in rows.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{:.0}\">{}</text>",
            y + 15.0,
            esc(name)
        );
        let Spread::Values(s) = s else {
            let why = match s {
                Spread::Never => "never (on no seed)",
                _ => "not applicable (to none of its runs)",
            };
            let _ = write!(
                out,
                "<text x=\"{LABEL}\" y=\"{:.0}\">{why}</text>",
                y + 15.0
            );
            continue;
        };
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{LABEL}\" y=\"{:.0}\" width=\"{:.1}\" height=\"16\" fill=\"#4a7fb5\"><title>{}</title></rect>",
            y + 2.0,
            (s.median * scale).max(1.0),
            esc(&format!("{name}: median {}", metric.show(s.median)))
        );
        let _ = write!(
            out,
            "<line class=\"range\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.0}\" y2=\"{:.0}\" stroke=\"#222\" stroke-width=\"2\"/>",
            LABEL + s.min * scale,
            LABEL + s.max * scale,
            y + 10.0,
            y + 10.0
        );
        let _ = write!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\">{} ({}..{})</text>",
            LABEL + WIDTH + 8.0,
            y + 15.0,
            esc(&metric.show(s.median)),
            esc(&metric.show(s.min)),
            esc(&metric.show(s.max))
        );
    }
    out.push_str("</svg>\n");
}

//! The pages of an experiment: one self-contained HTML file each (inline CSS and SVG, no
//! script, nothing fetched), like report.html. The frame every incident's pages share, and the
//! grid's heat map.

use std::fmt::Write;
use std::path::Path;

use outage_lab_proto::markup::escape as esc;

use super::{Axis, GridMetric, Point, Spread};
use crate::experiment::summary::plural;

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}\
.note{color:#555}svg text{font:12px system-ui,sans-serif}";

/// The page's head and its title as a heading.
pub fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
}

/// The page's foot: the seeds, and where every cell's run directory is.
pub fn foot(out: &mut String, seeds: &[u64], dir: &Path) {
    let _ = write!(
        out,
        "<p class=\"note\">{} per point ({}); every cell's run directory is under <code>{}</code>, and compare.csv / grid.csv give the command that re-runs it alone.</p>\n</body></html>\n",
        plural(seeds.len(), "seed"),
        (seeds.iter())
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        esc(&dir.join("cells").display().to_string())
    );
}

/// The heat map: one axis across, the other down (or one row), each cell's colour its median,
/// its text the median and the range over the seeds.
pub fn grid<M: GridMetric>(
    seeds: &[u64],
    dir: &Path,
    axes: &[Axis],
    metric: M,
    points: &[Point],
) -> String {
    let mut out = String::new();
    let names: Vec<&str> = axes.iter().map(|a| a.path.as_str()).collect();
    let title = format!("{} over {}", metric.title(), names.join(" x "));
    head(&mut out, &title);
    heat_map(&mut out, axes, metric, points);
    out.push_str("<p class=\"note\">Colour: the median over the seeds, from pale (0) to dark red (the largest median); text: median (smallest..largest).</p>\n");
    foot(&mut out, seeds, dir);
    out
}

/// A heat map cell's width, px.
const CELL_W: f64 = 160.0;
/// A heat map cell's height, px.
const CELL_H: f64 = 48.0;
/// Where the heat map's cells start, px from its top (the axis titles and values are above).
const CELLS_TOP: f64 = 64.0;
/// The width of one character of an axis value, px, roughly.
const CHAR_W: f64 = 7.0;

/// The map's SVG: the last axis across, the first down (one row for a single axis).
fn heat_map<M: GridMetric>(out: &mut String, axes: &[Axis], metric: M, points: &[Point]) {
    let two = axes.len() == 2;
    let (cols, rows, left) = heat_grid(axes);
    let top = (points.iter())
        .filter_map(|p| p.summary.summary().map(|s| s.median))
        .fold(0.0_f64, f64::max);
    let (w, h) = (
        left + CELL_W * cols as f64 + 10.0,
        CELLS_TOP + CELL_H * rows as f64 + 10.0,
    );
    let _ = write!(
        out,
        "<svg class=\"heatmap\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        metric.name()
    );
    axis_titles(out, axes, left);
    for (i, p) in points.iter().enumerate() {
        let (row, col) = (i / cols.max(1), i % cols.max(1));
        let (x, y) = (left + CELL_W * col as f64, CELLS_TOP + CELL_H * row as f64);
        if row == 0 {
            let value = p.values.last().map_or("", String::as_str);
            let _ = write!(
                out,
                "<text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
                x + 4.0,
                CELLS_TOP - 8.0,
                esc(value)
            );
        }
        if col == 0 && two {
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{:.0}\">{}</text>",
                y + 28.0,
                esc(&p.values[0])
            );
        }
        heat_cell(out, p, metric, top, (x, y));
    }
    out.push_str("</svg>\n");
}

/// The heat map's columns and rows of cells, and the x where the cells start: past the longest
/// value of the axis down, if there are two axes.
fn heat_grid(axes: &[Axis]) -> (usize, usize, f64) {
    let (cols, rows) = match axes {
        [down, across] => (across.values.len(), down.values.len()),
        _ => (axes.first().map_or(0, |a| a.values.len()), 1),
    };
    let longest = if axes.len() == 2 {
        axes[0]
            .values
            .iter()
            .map(|v| v.chars().count())
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let left = (CHAR_W * longest as f64 + 16.0).max(110.0);
    (cols, rows, left)
}

/// The names of the axis across, above the cells from `left`, and of the axis down, if any, at
/// the left edge.
fn axis_titles(out: &mut String, axes: &[Axis], left: f64) {
    let across = axes.last().map_or("", |a| a.path.as_str());
    let _ = write!(
        out,
        "<text x=\"{left}\" y=\"18\">{} &#8594;</text>",
        esc(across)
    );
    if axes.len() == 2 {
        let _ = write!(
            out,
            "<text x=\"0\" y=\"38\">{} &#8595;</text>",
            esc(&axes[0].path)
        );
    }
}

/// One point's cell at `(x, y)`: coloured by its median's share of `top`, the largest median,
/// and labelled with the median and its range (or `never`, or `not applicable`).
fn heat_cell<M: GridMetric>(out: &mut String, p: &Point, metric: M, top: f64, (x, y): (f64, f64)) {
    let fill = match p.summary {
        Spread::Values(s) => heat(if top > 0.0 { s.median / top } else { 0.0 }),
        _ => "#eee".to_owned(),
    };
    let label = p.summary.show(metric);
    let _ = write!(
        out,
        "<rect class=\"cell\" x=\"{x:.0}\" y=\"{y:.0}\" width=\"{CELL_W}\" height=\"{CELL_H}\" fill=\"{fill}\" stroke=\"#fff\"><title>{}: {}</title></rect><text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
        esc(&p.values.join(" x ")),
        esc(&label),
        x + 6.0,
        y + 28.0,
        esc(&label)
    );
}

/// Pale yellow (0) to dark red (1).
fn heat(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    format!(
        "rgb({},{},{})",
        lerp(255.0, 165.0),
        lerp(245.0, 15.0),
        lerp(200.0, 21.0)
    )
}

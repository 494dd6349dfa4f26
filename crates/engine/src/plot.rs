//! A small SVG plotting kit every incident's report page draws with: a time axis shared by every
//! chart, a value axis, polylines, the run's phases and timeline steps ([`phases`]) as bands and
//! marks, and the CSS they need ([`CSS`]).
//!
//! Hand-written rather than drawn with a plotting crate, on purpose: each series becomes exactly
//! one `<polyline>` with whole-pixel coordinates, so the size of a page is a direct function of
//! the number of points kept (see [`decimate`]), colours are exact (a browser test can count a
//! series' pixels), and the output is deterministic text that unit tests can read.

use std::fmt::Write;

use outage_lab_proto::{EngineEvent, JournalEntry, Vocabulary};

/// Escapes text for HTML and SVG content and attribute values.
pub use outage_lab_proto::markup::escape as esc;

/// The CSS of what [`Frame`] draws: the plot's frame, grid, ticks and labels, the phases'
/// bands, the steps' dashed lines and numbers, and polylines (a page gives each series' class
/// its stroke).
pub const CSS: &str = "svg{display:block;font:11px sans-serif}svg .frame{fill:none;stroke:#888}svg .grid{stroke:#eee}\
svg .tick{stroke:#888}svg .tl{text-anchor:middle;fill:#444}svg .vl{text-anchor:end;fill:#444}\
svg .band{stroke:none}svg .b0{fill:#f7f7f7}svg .b1{fill:#eef3f8}\
svg .fault{stroke:#444;stroke-dasharray:4 3}svg .fn{text-anchor:middle;fill:#000;font-weight:bold}\
svg polyline{fill:none;stroke-width:1.5;stroke-linejoin:round}";

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`.
pub fn nice_step(span: f64, target: usize) -> f64 {
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Where a chart draws: its pixel box and the data ranges mapped onto it.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Total width in pixels.
    pub w: f64,
    /// Total height in pixels.
    pub h: f64,
    /// Left margin (value-axis labels).
    pub left: f64,
    /// Right margin.
    pub right: f64,
    /// Top margin (phase markers).
    pub top: f64,
    /// Bottom margin (time-axis labels).
    pub bottom: f64,
    /// Time range, ms.
    pub t0: f64,
    /// Time range end, ms.
    pub t1: f64,
    /// Value range bottom.
    pub y0: f64,
    /// Value range top.
    pub y1: f64,
}

/// Width of every chart, so their time axes line up one under the other.
pub const WIDTH: f64 = 960.0;
/// Left margin of every chart.
pub const LEFT: f64 = 160.0;

impl Frame {
    /// A chart `h` pixels high over `t_end_ms` of run, values from `y0` to `y1`.
    pub fn new(h: f64, t_end_ms: f64, y0: f64, y1: f64) -> Self {
        Self {
            w: WIDTH,
            h,
            left: LEFT,
            right: 20.0,
            top: 18.0,
            bottom: 28.0,
            t0: 0.0,
            t1: t_end_ms.max(1.0),
            y0,
            y1: if y1 > y0 { y1 } else { y0 + 1.0 },
        }
    }

    /// Pixel x of a time in ms.
    pub fn x(&self, t_ms: f64) -> f64 {
        let plot = self.w - self.left - self.right;
        self.left + (t_ms - self.t0) / (self.t1 - self.t0) * plot
    }

    /// Pixel y of a value.
    pub fn y(&self, v: f64) -> f64 {
        let plot = self.h - self.top - self.bottom;
        self.top + plot - (v - self.y0) / (self.y1 - self.y0) * plot
    }

    /// Bottom pixel row of the plot area.
    pub fn plot_bottom(&self) -> f64 {
        self.h - self.bottom
    }

    /// Opens the `<svg>` element; `label` is its accessible name.
    pub fn open(&self, out: &mut String, class: &str, label: &str) {
        let _ = write!(
            out,
            r#"<svg class="{class}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">"#,
            w = self.w,
            h = self.h,
            label = esc(label),
        );
    }

    /// The time axis along the bottom, with a tick label every few seconds, and the plot border.
    pub fn time_axis(&self, out: &mut String) {
        let bottom = self.plot_bottom();
        let _ = write!(
            out,
            r#"<rect class="frame" x="{:.0}" y="{:.0}" width="{:.0}" height="{:.0}"/>"#,
            self.left,
            self.top,
            self.w - self.left - self.right,
            bottom - self.top
        );
        let step = nice_step((self.t1 - self.t0) / 1000.0, 10) * 1000.0;
        let mut t = 0.0;
        while t <= self.t1 + 0.5 {
            let x = self.x(t);
            let _ = write!(
                out,
                r#"<line class="tick" x1="{x:.0}" y1="{bottom:.0}" x2="{x:.0}" y2="{:.0}"/><text class="tl" x="{x:.0}" y="{:.0}">{}s</text>"#,
                bottom + 4.0,
                bottom + 16.0,
                trim(t / 1000.0)
            );
            t += step;
        }
    }

    /// Horizontal grid lines and value labels on the left, formatted by `fmt`.
    pub fn value_axis(&self, out: &mut String, fmt: impl Fn(f64) -> String) {
        let step = nice_step(self.y1 - self.y0, 5);
        let mut v = (self.y0 / step).ceil() * step;
        while v <= self.y1 + step * 1e-6 {
            let y = self.y(v);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{:.0}" y1="{y:.0}" x2="{:.0}" y2="{y:.0}"/><text class="vl" x="{:.0}" y="{:.0}">{}</text>"#,
                self.left,
                self.w - self.right,
                self.left - 6.0,
                y + 4.0,
                esc(&fmt(v))
            );
            v += step;
        }
    }

    /// Shaded bands for the phases and a numbered dashed line for each fault, so every time axis
    /// shows where in the scenario a point lies.
    pub fn phases(&self, out: &mut String, marks: &Phases) {
        for (i, band) in marks.bands.iter().enumerate() {
            let (x0, x1) = (self.x(band.from_ms as f64), self.x(band.to_ms as f64));
            if x1 <= x0 {
                continue;
            }
            let _ = write!(
                out,
                r#"<rect class="band b{}" x="{x0:.0}" y="{:.0}" width="{:.0}" height="{:.0}"><title>{}</title></rect>"#,
                i % 2,
                self.top,
                x1 - x0,
                self.plot_bottom() - self.top,
                esc(&band.name)
            );
        }
        // Steps a few pixels apart (a process swapped and its DNS record changed) share one label,
        // `1,2`.
        let mut labels: Vec<(f64, String)> = Vec::new();
        for (i, fault) in marks.faults.iter().enumerate() {
            let x = self.x(fault.t_ms as f64);
            let _ = write!(
                out,
                r#"<line class="fault" x1="{x:.0}" y1="{:.0}" x2="{x:.0}" y2="{:.0}"><title>{}</title></line>"#,
                self.top,
                self.plot_bottom(),
                esc(&format!(
                    "{} at {}: {}",
                    fault.action,
                    secs(fault.t_ms),
                    fault.detail
                )),
            );
            match labels.last_mut() {
                Some((lx, text)) if x - *lx < 14.0 => text.push_str(&format!(",{}", i + 1)),
                _ => labels.push((x, (i + 1).to_string())),
            }
        }
        for (x, text) in labels {
            let _ = write!(
                out,
                r#"<text class="fn" x="{x:.0}" y="{:.0}">{text}</text>"#,
                self.top - 5.0
            );
        }
    }

    /// One series as a single polyline.
    pub fn polyline(&self, out: &mut String, class: &str, points: &[(u64, f64)], title: &str) {
        if points.is_empty() {
            return;
        }
        let _ = write!(out, r#"<polyline class="{class}" points=""#);
        for (i, (t, v)) in points.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{:.0},{:.0}", self.x(*t as f64), self.y(*v));
        }
        let _ = write!(out, r#""><title>{}</title></polyline>"#, esc(title));
    }
}

/// `12.5s`, `3s`: seconds with at most one decimal.
pub fn secs(t_ms: u64) -> String {
    format!("{}s", trim(t_ms as f64 / 1000.0))
}

/// A number with at most one decimal and no trailing `.0`.
pub fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// A row of colour swatches with their labels, under a plot.
pub fn legend(out: &mut String, items: &[(String, String)]) {
    out.push_str("<div class=\"legend\">");
    for (colour, label) in items {
        let _ = write!(
            out,
            "<span><i class=\"sw\" style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    out.push_str("</div>\n");
}

/// Keeps at most `max` points of a series while keeping its shape: the time range is cut into
/// `max / 2` buckets and each bucket keeps its lowest and its highest point, in time order. A
/// slow climb, a restart's drop and a cache's churn all survive; only redundant points go.
pub fn decimate(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    let buckets = (max / 2).max(1);
    if points.len() <= max || points.len() < 2 {
        return points.to_vec();
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    let span = (last - first).max(1);
    let mut out = Vec::with_capacity(max);
    let mut i = 0;
    for b in 0..buckets as u64 {
        let end = first + span * (b + 1) / buckets as u64;
        let start = i;
        while i < points.len() && (points[i].0 <= end || b + 1 == buckets as u64) {
            i += 1;
        }
        let bucket = &points[start..i];
        if bucket.is_empty() {
            continue;
        }
        let lo = bucket
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(k, _)| k);
        let hi = bucket
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(k, _)| k);
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push(bucket[a]);
        if b != a {
            out.push(bucket[b]);
        }
    }
    out
}

/// A stretch of the run between two phase events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    /// Phase name (`start-up`, `timeline`, `stopping`).
    pub name: String,
    /// Start, ms.
    pub from_ms: u64,
    /// End, ms.
    pub to_ms: u64,
}

/// A fault or repair injected on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// When, ms.
    pub t_ms: u64,
    /// Timeline action.
    pub action: String,
    /// What exactly was done.
    pub detail: String,
}

/// The scenario's phases and faults, drawn on every time axis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phases {
    /// Consecutive bands covering the run.
    pub bands: Vec<Band>,
    /// Faults in time order.
    pub faults: Vec<Fault>,
}

/// The phases (`phase` events) as consecutive bands, and every `fault_injected` event.
pub fn phases<E: Vocabulary>(entries: &[JournalEntry<E>], end_ms: u64) -> Phases {
    let mut bands: Vec<Band> = vec![Band {
        name: "start-up".into(),
        from_ms: 0,
        to_ms: end_ms,
    }];
    let mut faults = Vec::new();
    for e in entries {
        match e.event.engine() {
            Some(EngineEvent::Phase { name, .. }) => {
                if let Some(last) = bands.last_mut() {
                    last.to_ms = e.t_ms;
                }
                bands.push(Band {
                    name: name.to_string(),
                    from_ms: e.t_ms,
                    to_ms: end_ms,
                });
            }
            Some(EngineEvent::FaultInjected { action, detail }) => faults.push(Fault {
                t_ms: e.t_ms,
                action,
                detail,
            }),
            _ => {}
        }
    }
    bands.retain(|b| b.to_ms > b.from_ms);
    Phases { bands, faults }
}

/// One table row per step of `phases` (`#`, at, step, what was done), numbered as the plots
/// number them.
pub fn step_rows(out: &mut String, phases: &Phases) {
    for (i, f) in phases.faults.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            secs(f.t_ms),
            esc(&f.action),
            esc(&f.detail)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(46.0, 10), 5.0);
        assert_eq!(nice_step(100.0, 5), 20.0);
        assert_eq!(nice_step(0.9, 5), 0.2);
        assert_eq!(nice_step(0.0, 5), 1.0);
    }

    #[test]
    fn frames_map_the_time_range_onto_the_plot_width() {
        let f = Frame::new(200.0, 10_000.0, 0.0, 100.0);
        assert_eq!(f.x(0.0), LEFT);
        assert_eq!(f.x(10_000.0), WIDTH - 20.0);
        assert_eq!(f.y(0.0), f.plot_bottom());
        assert_eq!(f.y(100.0), f.top);
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

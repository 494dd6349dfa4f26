//! `/metrics` bodies: every daemon keeps its metrics in a `prometheus_client` [`Registry`] and
//! serves them through [`encode`] in the Prometheus text exposition format 0.0.4.
//!
//! `prometheus_client` encodes OpenMetrics text. The two formats share every sample line; they
//! differ in three places, and [`encode`] adjusts only those, line by line:
//!
//! * OpenMetrics names a counter family without its `_total` suffix (`# TYPE x counter`, sample
//!   `x_total`); a 0.0.4 parser then files the samples under a family with no HELP or TYPE, and
//!   `promtool check metrics` reports "no help text". The HELP and TYPE lines of a counter get the
//!   `_total` name of its samples.
//! * `# UNIT` lines do not exist in 0.0.4 (the unit is already the name's suffix): dropped.
//! * The closing `# EOF` does not exist in 0.0.4: dropped.
//!
//! Info metrics (`# TYPE x info`) have no 0.0.4 form; the daemons use a gauge of 1 with labels
//! instead, the usual Prometheus idiom.

use std::collections::HashSet;

pub use prometheus_client;
use prometheus_client::registry::Registry;

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The prefix of every metric the lab exports.
pub const PREFIX: &str = "outage_lab";

/// Encodes `registry` in the Prometheus text exposition format 0.0.4.
pub fn encode(registry: &Registry) -> String {
    let mut open_metrics = String::new();
    // Writing into a String cannot fail, and the lab's label sets are plain strings whose
    // encoders cannot fail either; should one ever fail, the part written is still the best
    // answer a scraper can get.
    let _ = prometheus_client::encoding::text::encode_registry(&mut open_metrics, registry);
    to_text_004(&open_metrics)
}

/// Rewrites OpenMetrics text (as `prometheus_client` writes it) to the 0.0.4 text format.
pub fn to_text_004(open_metrics: &str) -> String {
    let counters: HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Unit;

    use super::*;

    #[test]
    fn counters_are_described_under_their_total_name_and_units_and_eof_are_dropped() {
        let mut registry = Registry::with_prefix(PREFIX);
        let reports: Counter = Counter::default();
        reports.inc_by(3);
        registry.register("reports", "Reports accepted", reports);
        let bytes: Gauge = Gauge::default();
        bytes.set(42);
        registry.register_with_unit("cache", "Cache size", Unit::Bytes, bytes);

        let text = encode(&registry);
        assert_eq!(
            text,
            "# HELP outage_lab_reports_total Reports accepted.\n\
             # TYPE outage_lab_reports_total counter\n\
             outage_lab_reports_total 3\n\
             # HELP outage_lab_cache_bytes Cache size.\n\
             # TYPE outage_lab_cache_bytes gauge\n\
             outage_lab_cache_bytes 42\n"
        );
    }
}

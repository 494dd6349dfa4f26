//! The 2012 timeline, for comparison with the run: facts from the public post-mortem ("Summary
//! of the October 22, 2012 AWS Service Event in the US-East Region"), times approximate.

use std::fmt::Write;

use crate::series::Phases;
use outage_lab_engine::plot::{esc, secs};

/// (when in 2012, what happened, the timeline action that plays it in a run, if any).
const EVENTS: &[(&str, &str, Option<&str>)] = &[
    (
        "the week before",
        "A data-collection server fails and is replaced; the DNS record is updated to the replacement's address.",
        Some("replace_collector"),
    ),
    (
        "the week before",
        "The DNS update does not reach every internal DNS server: agents behind the stale ones keep the dead address.",
        Some("dns_update"),
    ),
    (
        "days",
        "The agents' retries slowly leak memory on the stale storage servers; per-server aggregate memory alarms stay silent.",
        None,
    ),
    (
        "22 Oct, about 10:00 PDT",
        "Storage servers can no longer keep up: a small number of volumes become stuck, then quickly more.",
        None,
    ),
    (
        "about 11:00 PDT",
        "Failover cannot find enough healthy capacity; a large number of volumes are stuck.",
        None,
    ),
    (
        "12:06 to 14:33 PDT",
        "An aggressive API throttling policy is in force and hurts some customers more than others.",
        None,
    ),
    (
        "about 15:00 PDT",
        "Roughly five hours in, the root cause is found; memory is freed on the affected servers.",
        Some("restart"),
    ),
    (
        "about 16:15 PDT",
        "Most volumes are back (load balancers recover until the evening).",
        None,
    ),
];

/// The table of the 2012 events beside the time the run played each one.
pub(crate) fn timeline(out: &mut String, phases: &Phases) {
    out.push_str(
        "<table class=\"y2012\"><tr><th>2012</th><th>what happened</th><th>in this run</th></tr>",
    );
    for (when, what, action) in EVENTS {
        let here = match action {
            Some(a) => phases
                .faults
                .iter()
                .position(|f| f.action == *a)
                .map_or_else(
                    || format!("{a}: not in this scenario"),
                    |i| format!("#{} {a} at {}", i + 1, secs(phases.faults[i].t_ms)),
                ),
            None => "see the plots above".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(when),
            esc(what),
            esc(&here)
        );
    }
    out.push_str("</table>\n<p class=\"note\">The run compresses days of leak and hours of outage into about a minute; the order of events is the point, not the durations.</p>\n");
}

//! outage-lab's fuzz targets: one function per input that users and networks can send, each
//! taking arbitrary bytes to the real code and asserting the property. No input may panic or
//! hang, and every refusal must be the documented one: a typed error with exit code 2 for
//! what the command line reads, a documented 4xx status (never a 5xx) for what the HTTP APIs
//! read.
//!
//! | target | what the bytes are | the real code |
//! |---|---|---|
//! | [`scenario`] | a scenario file, then optionally a NUL byte and `--set` values, one a line | `outage_lab_ebs2012::load_scenario` (`run`'s loader) |
//! | [`journal`] | a `journal.jsonl`, also tried as a `report.json` | `outage_lab_viz::parse_journal`, `parse_report`, the page and the Markdown |
//! | [`control_api`] | an HTTP request (see below) | the control plane's routes: customers' API, `/admin/throttle` |
//! | [`collector`] | an HTTP request | the collector's routes: `POST /report`, `POST /agents/...` |
//! | [`dns_admin`] | an HTTP request | a DNS server's admin API: `PUT /records/{name}` |
//!
//! An HTTP request is written as on the wire, without the version: `METHOD /path?query`, then
//! header lines, a blank line and the body. Each request goes to a fresh router (so one input
//! is one deterministic run), on one current-thread runtime made once.
//!
//! The afl harnesses in fuzz/ call these; so does tests/corpus.rs, which replays every file of
//! fuzz/corpus/TARGET/ on every `cargo test`.

mod http;

use std::path::Path;
use std::sync::LazyLock;

use outage_lab_ebs_events::EventSink;
use outage_lab_proto::report::Report;
use outage_lab_viz::ReadError;

/// The name a fuzzed scenario is loaded under; every refusal of its text names it.
const SCENARIO_NAME: &str = "fuzzed.yaml";

/// Splits a [`scenario`] input into the file's bytes and its `--set` values: the values follow
/// the first NUL byte, one a line (a scenario file with a NUL in it is refused as not YAML
/// anyway, so the split costs the fuzzer nothing).
fn scenario_input(data: &[u8]) -> (&[u8], Vec<String>) {
    match data.iter().position(|&b| b == 0) {
        None => (data, Vec::new()),
        Some(nul) => {
            let set = (data[nul + 1..].split(|&b| b == b'\n'))
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect();
            (&data[..nul], set)
        }
    }
}

/// The scenario loader: a scenario file and `--set` values, loaded as `outage-lab run` loads
/// them. Passes if they load, or if the refusal is bad input (exit code 2) whose message names
/// the file or the `--set` value at fault.
pub fn scenario(data: &[u8]) {
    let (file, set) = scenario_input(data);
    match outage_lab_ebs2012::load_scenario(file, SCENARIO_NAME, &set) {
        Ok(line) => assert!(line.starts_with(SCENARIO_NAME), "{line}"),
        Err(refusal) => {
            let message = &refusal.message;
            assert_eq!(refusal.exit_code, 2, "not bad input: {message}");
            assert!(
                message.contains(SCENARIO_NAME) || message.starts_with("--set "),
                "a refusal that names neither the file nor a --set value: {message}"
            );
        }
    }
}

/// A real run's `report.json` (cut short), for drawing fuzzed journals.
static REPORT: LazyLock<Report> = LazyLock::new(|| {
    let text = include_str!("../data/report.json");
    match outage_lab_viz::parse_report(text, Path::new("data/report.json")) {
        Ok(report) => report,
        Err(e) => panic!("the fuzz targets' own report.json: {e}"),
    }
});

/// The journal reader behind `outage-lab report`: the bytes as `journal.jsonl`, drawn into
/// report.html with a real report when they parse; then the bytes as `report.json`, drawn into
/// the page and the Markdown when they parse. Passes if nothing panics and every refusal is a
/// [`ReadError`] naming the file (and the line, for the journal).
pub fn journal(data: &[u8]) {
    let path = Path::new("journal.jsonl");
    match outage_lab_viz::parse_journal(data, path) {
        Ok((entries, _skipped)) => {
            let html = outage_lab_viz::render(&entries, &REPORT);
            assert!(html.contains("</html>"), "a page without its end");
        }
        Err(e) => assert!(
            matches!(&e, ReadError::Journal { path: p, line, .. } if p == path && *line > 0),
            "not a journal error naming its line: {e:?}"
        ),
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_report refuses it as an I/O error (invalid data) before parsing.
    };
    let path = Path::new("report.json");
    match outage_lab_viz::parse_report(text, path) {
        Ok(report) => {
            let html = outage_lab_viz::render(&[], &report);
            assert!(html.contains("</html>"), "a page without its end");
            let _ = outage_lab_viz::markdown::render(&report);
        }
        Err(e) => assert!(
            matches!(&e, ReadError::Report { path: p, .. } if p == path),
            "not a report error: {e:?}"
        ),
    }
}

/// The control plane's HTTP API: the customers' calls (`/api/volumes...`) and the admin
/// throttle, on a control plane of two customers and no servers (every create finds no
/// capacity, every attach an unknown volume), a service time of 0 so each call is quick.
/// Passes if the answer is a success or a documented refusal.
pub fn control_api(data: &[u8]) {
    const DOCUMENTED: &[u16] = &[200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429];
    let Some(request) = http::request(data) else {
        return;
    };
    http::exchange(request, DOCUMENTED, |shutdown| async move {
        let mut config = outage_lab_control::Config::new(Vec::new());
        config.api.customers = vec!["c01".into(), "c02".into()];
        config.api.service_time = outage_lab_proto::HumanDuration::millis(0);
        outage_lab_control::routes_without_servers(config, shutdown, EventSink::discard())
            .unwrap_or_else(|e| panic!("the fuzz target's control config: {e}"))
    });
}

/// The collector's POST handling: `POST /report` and `POST /agents/{server}/...`, on a
/// collector with fresh counters. Passes if the answer is a success or a documented refusal.
pub fn collector(data: &[u8]) {
    const DOCUMENTED: &[u16] = &[200, 400, 404, 405, 413, 415, 422];
    let Some(request) = http::request(data) else {
        return;
    };
    http::exchange(request, DOCUMENTED, |_| async {
        outage_lab_collector::routes()
    });
}

/// A DNS server's admin API: `GET /records`, `PUT /records/{name}`, on a fresh zone holding
/// `collector`. Passes if the answer is a success or a documented refusal.
pub fn dns_admin(data: &[u8]) {
    const DOCUMENTED: &[u16] = &[200, 400, 401, 403, 404, 405, 413, 415, 422];
    let Some(request) = http::request(data) else {
        return;
    };
    http::exchange(request, DOCUMENTED, |_| async {
        let config = outage_lab_dns::Config {
            records: [("collector".to_owned(), vec![[127, 0, 0, 10].into()])].into(),
            ..outage_lab_dns::Config::default()
        };
        outage_lab_dns::admin_routes(&config, outage_lab_dns::EventSink::discard())
            .await
            .unwrap_or_else(|e| panic!("the fuzz target's dns config: {e}"))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_follow_the_first_nul_one_a_line() {
        let (file, set) = scenario_input(b"name: x\n\0fleet.servers=3\ndns.ttl=2s");
        assert_eq!(file, b"name: x\n");
        assert_eq!(set, ["fleet.servers=3", "dns.ttl=2s"]);
        assert_eq!(scenario_input(b"name: x").1, Vec::<String>::new());
    }
}

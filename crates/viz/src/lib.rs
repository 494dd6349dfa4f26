//! `report.html`: the summary of a run that people read, built from its `journal.jsonl` and
//! `report.json`.
//!
//! [`render`] is a pure function from the journal and the report to one self-contained HTML
//! page: every plot is inline SVG, the style is inline CSS, there is no script and nothing is
//! fetched, so the file opens from disk, from a CI artefact or from a mail attachment alike.
//! [`read_run`] and [`write_report`] do the file work for the harness (at the end of every run)
//! and for `outage-lab report RUN_DIR` (after the fact).

mod api;
mod incident;
pub mod live;
mod page;
pub mod series;
mod svg;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use outage_lab_proto::JournalEntry;
use outage_lab_proto::report::Report;

pub use page::colour;

/// Why a run directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of the journal is not a journal entry.
    #[error("{path}:{line}: not a journal entry: {message}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// `report.json` is not a report.
    #[error("{path}: not an outage-lab report: {message}")]
    Report {
        /// The report file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// A run as read from its directory.
#[derive(Debug, Clone)]
pub struct Run {
    /// Every journal entry, in file order.
    pub entries: Vec<JournalEntry>,
    /// The run's report.
    pub report: Report,
    /// Journal lines of a kind this version does not know (a newer journal), left out.
    pub skipped: usize,
}

/// Renders the page for a run. Pure: the same entries and report give the same bytes.
pub fn render(entries: &[JournalEntry], report: &Report) -> String {
    page::render(entries, report, 0)
}

/// Reads `journal.jsonl` and `report.json` from a run directory.
///
/// A line whose `kind` this version does not know is skipped and counted (journals only gain
/// kinds); a line that is not JSON, or a known kind with wrong fields, is an error naming the
/// file and line.
pub fn read_run(dir: &Path) -> Result<Run, ReadError> {
    let report_path = dir.join("report.json");
    let text = std::fs::read_to_string(&report_path).map_err(|source| ReadError::Io {
        path: report_path.clone(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(|e| ReadError::Report {
        path: report_path.clone(),
        message: e.to_string(),
    })?;
    let journal_path = dir.join("journal.jsonl");
    let file = std::fs::File::open(&journal_path).map_err(|source| ReadError::Io {
        path: journal_path.clone(),
        source,
    })?;
    let (entries, skipped) = parse_journal(std::io::BufReader::new(file), &journal_path)?;
    Ok(Run {
        entries,
        report,
        skipped,
    })
}

/// Parses journal lines; see [`read_run`] for what is skipped and what is an error.
pub fn parse_journal(
    reader: impl BufRead,
    path: &Path,
) -> Result<(Vec<JournalEntry>, usize), ReadError> {
    let mut entries = Vec::new();
    let mut skipped = 0;
    for (i, line) in reader.lines().enumerate() {
        let err = |message: String| ReadError::Journal {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !KNOWN_KINDS.contains(&kind) {
            if kind.is_empty() {
                return Err(err("no \"kind\" field".into()));
            }
            skipped += 1;
            continue;
        }
        let entry: JournalEntry = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        entries.push(entry);
    }
    Ok((entries, skipped))
}

/// Every `kind` tag this version reads (the tags of `outage_lab_proto::Event`).
const KNOWN_KINDS: &[&str] = &[
    "ready",
    "dns_record_changed",
    "agent_resolved",
    "agent_resolve_failed",
    "agent_stats",
    "collector_stats",
    "storage_stats",
    "rss_sweep",
    "alarm",
    "server_health",
    "volume_changed",
    "failover",
    "control_stats",
    "load_stats",
    "customer_stats",
    "run_started",
    "phase",
    "process_started",
    "process_exited",
    "fault_injected",
    "fix_applied",
    "verdict",
    "run_finished",
];

/// Renders `report.html` into a run directory from its journal and report; returns its path.
pub fn write_report(dir: &Path) -> Result<PathBuf, ReadError> {
    let run = read_run(dir)?;
    let html = page::render(&run.entries, &run.report, run.skipped);
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|source| ReadError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Everything in `html` that would make a browser fetch something outside the file: `src=`,
/// `href=` that is not an in-page `#anchor`, CSS `url(` and `@import`, and any `http:`,
/// `https:` or `file:` URL. `report.html` must have none (it opens from disk, offline).
pub fn outside_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for needle in [
        "src=", "href=", "url(", "@import", "http:", "https:", "file:",
    ] {
        for (at, _) in lower.match_indices(needle) {
            let rest = &lower[at + needle.len()..];
            if needle == "href=" && (rest.starts_with("\"#") || rest.starts_with("'#")) {
                continue;
            }
            let end = (at + needle.len() + 40).min(html.len());
            let end = (end..=html.len())
                .find(|i| html.is_char_boundary(*i))
                .unwrap_or(html.len());
            found.push(html[at..end].to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests;

//! `report.html`: the summary of a run that people read, built from its `journal.jsonl` and
//! `report.json`.
//!
//! [`render`] is a pure function from the journal and the report to one self-contained HTML
//! page: every plot is inline SVG, the style is inline CSS, there is no script and nothing is
//! fetched, so the file opens from disk, from a CI artefact or from a mail attachment alike.
//! [`read_run`] and [`write_report`] do the file work for the harness (at the end of every run)
//! and for `outage-lab report RUN_DIR` (after the fact). [`markdown`] is the same run's summary
//! for a CI job's page, from `report.json` alone ([`read_report`]).

mod api;
mod incident;
pub mod live;
pub mod markdown;
mod page;
pub mod series;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use outage_lab_ebs_events::{EventKind, JournalEntry};
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
    let report = read_report(dir)?;
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

/// Reads `report.json` from a run directory.
pub fn read_report(dir: &Path) -> Result<Report, ReadError> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReadError::Io {
        path: path.clone(),
        source,
    })?;
    parse_report(&text, &path)
}

/// Parses the text of `report.json`; `path` names it in the error.
pub fn parse_report(text: &str, path: &Path) -> Result<Report, ReadError> {
    serde_json::from_str(text).map_err(|e| ReadError::Report {
        path: path.to_owned(),
        message: e.to_string(),
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
        if EventKind::from_name(kind).is_none() {
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

/// How `report.html` uses a journal kind. Every kind is named, so a new one is a decision here
/// (and a test keeps this list whole).
pub fn report_use(kind: EventKind) -> ReportUse {
    use EventKind as K;
    use ReportUse::{Drawn, NotDrawn};
    match kind {
        K::RssSweep | K::Alarm | K::ControlStats | K::LoadStats => Drawn,
        K::DnsRecordChanged | K::AgentResolved | K::DnsAnswers => Drawn,
        K::RunStarted | K::Phase | K::FaultInjected | K::FixApplied => Drawn,
        K::CustomerStats => NotDrawn("the API plots read report.json's per-second series"),
        K::Verdict | K::RunFinished => NotDrawn("the verdict table reads report.json"),
        K::Ready | K::ProcessStarted | K::ProcessExited => NotDrawn("process life: report.json"),
        K::AgentStats | K::CollectorStats | K::StorageStats => {
            NotDrawn("per-process counters: report.json sums them per server")
        }
        K::AgentResolveFailed => NotDrawn("failed reports are counted in report.json"),
        K::ServerHealth | K::VolumeChanged | K::Failover => {
            NotDrawn("per-server and per-volume changes: the stuck-volume plot counts them")
        }
        K::WorkshopStop | K::WorkshopResumed | K::ParticipantAction | K::WorkshopOutcome => {
            NotDrawn("a workshop's stops and actions are the live page's")
        }
        K::DnsRecordRemoved | K::DnsFaultChanged => {
            NotDrawn("a DNS fault is marked by the step that made it (fault_injected)")
        }
    }
}

/// Whether `report.html` draws a kind, and if not, why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportUse {
    /// A plot or table on the page is drawn from it.
    Drawn,
    /// Read, deliberately not drawn: the reason.
    NotDrawn(&'static str),
}

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

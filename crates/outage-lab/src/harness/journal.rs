//! The journal as it is written: every entry as one JSON line of `journal.jsonl`, flushed often
//! enough that `tail -f` follows the run, and handed to the live view (`run --serve`) as it is
//! written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use outage_lab_engine::error::HarnessError;
use outage_lab_proto::JournalEntry;

/// The journal is flushed at least this often, so `tail -f journal.jsonl` follows the run.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// `journal.jsonl` being written, and who reads along.
#[derive(Debug)]
pub struct JournalWriter {
    out: BufWriter<File>,
    last_flush: Instant,
    /// The live view (`run --serve`), fed every entry.
    pub live: Option<outage_lab_viz::live::LiveView>,
}

impl JournalWriter {
    /// Writes into `file` (the run directory's `journal.jsonl`).
    pub fn new(file: File) -> Self {
        Self {
            out: BufWriter::new(file),
            last_flush: Instant::now(),
            live: None,
        }
    }

    /// Appends one entry, and flushes it at once when the harness told it (a phase, a fault, a
    /// verdict: what a person following the file waits for).
    pub fn write(&mut self, entry: &JournalEntry) {
        if let Ok(line) = serde_json::to_string(entry) {
            // A full disk shows up at the final flush, which is checked.
            let _ = writeln!(self.out, "{line}");
            if let Some(live) = &self.live {
                live.feed.publish(entry, &line);
            }
        }
        if self.last_flush.elapsed() >= FLUSH_EVERY || entry.source == "harness" {
            let _ = self.out.flush();
            self.last_flush = Instant::now();
        }
    }

    /// Flushes; a full disk shows up here.
    pub fn flush(&mut self) -> Result<(), HarnessError> {
        (self.out.flush()).map_err(|e| HarnessError::io("write journal.jsonl".into(), e))
    }
}

//! The journal as it is written: every entry as one JSON line of `journal.jsonl`, flushed often
//! enough that `tail -f` follows the run, and handed to whoever reads along (the live view of
//! `run --serve`) as it is written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use outage_lab_proto::{JournalEntry, Vocabulary};

use crate::error::HarnessError;

/// The journal is flushed at least this often, so `tail -f journal.jsonl` follows the run.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Who reads along: handed every entry and its JSON line as it is written.
pub type Reader<E> = Box<dyn Fn(&JournalEntry<E>, &str) + Send>;

/// `journal.jsonl` being written, and who reads along.
pub struct JournalWriter<E> {
    out: BufWriter<File>,
    last_flush: Instant,
    readers: Vec<Reader<E>>,
}

impl<E> std::fmt::Debug for JournalWriter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

impl<E: Vocabulary> JournalWriter<E> {
    /// Writes into `file` (the run directory's `journal.jsonl`).
    pub fn new(file: File) -> Self {
        Self {
            out: BufWriter::new(file),
            last_flush: Instant::now(),
            readers: Vec::new(),
        }
    }

    /// Hands every entry written from now on to `reader` too.
    pub fn read_along(&mut self, reader: Reader<E>) {
        self.readers.push(reader);
    }

    /// Appends one entry, and flushes it at once when the harness told it (a phase, a fault, a
    /// verdict: what a person following the file waits for).
    pub fn write(&mut self, entry: &JournalEntry<E>) {
        if let Ok(line) = serde_json::to_string(entry) {
            // A full disk shows up at the final flush, which is checked.
            let _ = writeln!(self.out, "{line}");
            for reader in &self.readers {
                reader(entry, &line);
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

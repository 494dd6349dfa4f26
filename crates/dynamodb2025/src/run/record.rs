//! Hears every process of the run (and the harness), writes `journal.jsonl`, keeps the entries
//! for the checks, and tells the person watching what matters as it happens: the stale write,
//! the deletion, the empty endpoint, the refusals, and every 5 s the clients' success and the
//! lease manager's leases, queue and goodput.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use outage_lab_dynamodb_events::{Event, JournalEntry, Refusal};
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::journal::JournalWriter;
use outage_lab_engine::supervisor::{Inbound, Supervisor};
use outage_lab_engine::terminal::say;
use outage_lab_proto::{EngineEvent, Vocabulary as _};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::names::ProcessName;

/// What the recorder hands back at the end: every entry, and the journal to append the verdict to.
pub(super) type Recorded = (Vec<JournalEntry>, JournalWriter<Event>);

/// The task that writes the journal.
pub(super) struct Recorder {
    task: JoinHandle<Recorded>,
}

impl Recorder {
    /// Starts writing `<run>/journal.jsonl` from what `rx` hears.
    pub(super) fn start(
        run_dir: &Path,
        mut rx: UnboundedReceiver<Inbound<Event>>,
        endpoint: &str,
    ) -> Result<Recorder, HarnessError> {
        let path = run_dir.join("journal.jsonl");
        let file = File::create(&path)
            .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))?;
        let mut journal = JournalWriter::new(file);
        let mut narrator = Narrator::new(endpoint);
        let task = tokio::spawn(async move {
            let mut entries = Vec::new();
            while let Some(inbound) = rx.recv().await {
                let entry = JournalEntry {
                    t_ms: inbound.t_ms,
                    source: inbound.source,
                    source_pid: inbound.pid,
                    event: inbound.event,
                };
                journal.write(&entry);
                narrator.tell(&entry);
                entries.push(entry);
            }
            (entries, journal)
        });
        Ok(Recorder { task })
    }

    /// Waits until every process's stream has ended (the supervisor, the last sender, is
    /// dropped here); every entry and the journal.
    pub(super) async fn finish(
        self,
        sup: Supervisor<ProcessName>,
    ) -> Result<Recorded, HarnessError> {
        drop(sup);
        self.task
            .await
            .map_err(|e| HarnessError::Start(format!("the journal writer failed: {e}")))
    }
}

/// What the person watching is told.
struct Narrator {
    endpoint: String,
    refused: BTreeSet<String>,
    /// The DNS servers whose last answer had no address.
    empty: BTreeSet<String>,
    window: Window,
    leases: LeaseWindow,
}

/// The lease manager's counts since its last line, and the customers' launches.
#[derive(Default)]
struct LeaseWindow {
    until_ms: u64,
    processed: u64,
    completed: u64,
    launched: u64,
    refused: u64,
}

/// The clients' counts since the last line.
#[derive(Default)]
struct Window {
    until_ms: u64,
    ok: u64,
    failed: u64,
    lookups_failed: u64,
    served_stale: u64,
}

/// The clients' line comes this often.
const CLIENTS_EVERY_MS: u64 = 5_000;

impl Narrator {
    fn new(endpoint: &str) -> Self {
        Narrator {
            endpoint: endpoint.to_owned(),
            refused: BTreeSet::new(),
            empty: BTreeSet::new(),
            window: Window {
                until_ms: CLIENTS_EVERY_MS,
                ..Window::default()
            },
            leases: LeaseWindow {
                until_ms: CLIENTS_EVERY_MS,
                ..LeaseWindow::default()
            },
        }
    }

    fn tell(&mut self, entry: &JournalEntry) {
        let t = entry.t_ms as f64 / 1000.0;
        if let Some(line) = self.line(entry) {
            say(&format!("t={t:>5.1}s  {line}"));
        }
    }

    fn line(&mut self, entry: &JournalEntry) -> Option<String> {
        match &entry.event {
            Event::EndpointApplied {
                enactor,
                endpoint,
                generation,
                replaced: Some(replaced),
                ..
            } if replaced > generation && *endpoint == self.endpoint => Some(format!(
                "{enactor} wrote its old plan {generation} over the newer {replaced} on {endpoint}"
            )),
            Event::PlanDeleted {
                enactor,
                generation,
                applied,
                emptied,
            } if !emptied.is_empty() => Some(format!(
                "{enactor}'s clean-up (after applying {applied}) deleted {generation}, which {} still used: their records are now empty",
                emptied.join(", ")
            )),
            Event::ApplyRefused {
                enactor,
                endpoint,
                refusal: refusal @ Refusal::PlanGone { .. },
                ..
            } if *endpoint == self.endpoint && self.refused.insert(enactor.clone()) => {
                Some(format!("{enactor} will not touch {endpoint}: {refusal}"))
            }
            Event::EndpointProbed {
                server,
                addrs,
                error,
                ..
            } => self.probed(server, addrs.is_empty(), error.as_deref()),
            Event::ClientStats {
                ok,
                failed,
                lookups_failed,
                served_stale,
                ..
            } => {
                let line = self.clients_line(entry.t_ms);
                let w = &mut self.window;
                (w.ok, w.failed) = (w.ok + ok, w.failed + failed);
                w.lookups_failed += lookups_failed;
                w.served_stale += served_stale;
                line
            }
            Event::LeaseStats { .. } => self.lease_line(entry),
            Event::LaunchStats {
                launched,
                insufficient_capacity,
                ..
            } => {
                let w = &mut self.leases;
                w.launched += launched;
                w.refused += insufficient_capacity;
                None
            }
            _ => self.engine_line(entry),
        }
    }

    /// The lease manager's line, every [`CLIENTS_EVERY_MS`]: its leases and queue, its work done
    /// in time, and the customers' launches since the last line.
    fn lease_line(&mut self, entry: &JournalEntry) -> Option<String> {
        let Event::LeaseStats {
            queued,
            processed,
            completed,
            leases_valid,
            ..
        } = &entry.event
        else {
            return None;
        };
        let w = &mut self.leases;
        (w.processed, w.completed) = (w.processed + processed, w.completed + completed);
        if entry.t_ms < w.until_ms {
            return None;
        }
        let w = std::mem::take(&mut self.leases);
        self.leases.until_ms = (entry.t_ms / CLIENTS_EVERY_MS + 1) * CLIENTS_EVERY_MS;
        let launches = match w.launched + w.refused {
            0 => String::new(),
            _ => format!(
                "; launches: {} placed, {} refused (insufficient capacity)",
                w.launched, w.refused
            ),
        };
        Some(format!(
            "lease manager: {leases_valid} leases valid, {queued} renewals queued; {} of {} done in time since the last line{launches}",
            w.completed, w.processed
        ))
    }

    /// A DNS server's answer, told only when it goes empty or gets addresses back (the planner
    /// moves the addresses every plan: the journal has each change).
    fn probed(&mut self, server: &str, empty: bool, error: Option<&str>) -> Option<String> {
        if let Some(error) = error {
            return Some(format!("{server} gave no answer: {error}"));
        }
        let was_empty = self.empty.contains(server);
        match (was_empty, empty) {
            (false, true) => {
                self.empty.insert(server.to_owned());
                Some(format!("{server} answers {}: no address", self.endpoint))
            }
            (true, false) => {
                self.empty.remove(server);
                Some(format!(
                    "{server} answers {} with addresses again",
                    self.endpoint
                ))
            }
            _ => None,
        }
    }

    /// The clients' line for the window that ended before `t_ms`, if one did.
    fn clients_line(&mut self, t_ms: u64) -> Option<String> {
        if t_ms < self.window.until_ms {
            return None;
        }
        let w = std::mem::take(&mut self.window);
        self.window.until_ms = (t_ms / CLIENTS_EVERY_MS + 1) * CLIENTS_EVERY_MS;
        Some(format!(
            "clients: {} requests ok, {} failed ({} lookups found no address, {} served stale)",
            w.ok, w.failed, w.lookups_failed, w.served_stale
        ))
    }

    fn engine_line(&self, entry: &JournalEntry) -> Option<String> {
        match entry.event.engine()? {
            EngineEvent::ProcessExited {
                name,
                status,
                expected: false,
                ..
            } => Some(format!("{name} exited unasked ({status})")),
            _ => None,
        }
    }
}

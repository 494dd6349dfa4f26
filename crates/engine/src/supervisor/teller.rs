//! Hearing one process: its stdout lines become journal events, its exit one more.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outage_lab_proto::{EngineEvent, Vocabulary};
use tokio::sync::{mpsc, oneshot, watch};

use super::Inbound;
use crate::clock::LabClock;

/// Hears one process: turns its stdout lines into journal events (the first `ready` also answers
/// [`Pending::ready`]) and reports its exit once.
pub(super) struct Teller<E> {
    pub(super) tx: mpsc::UnboundedSender<Inbound<E>>,
    pub(super) source: String,
    pub(super) pid: u32,
    pub(super) clock: LabClock,
    pub(super) ready: Option<oneshot::Sender<BTreeMap<String, SocketAddr>>>,
    /// Set when the harness stopped it on purpose.
    pub(super) expected: Arc<AtomicBool>,
    pub(super) exited: watch::Sender<bool>,
}

impl<E: Vocabulary> Teller<E> {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(super) fn hear(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<E>(line) else {
            tracing::debug!(process = %self.source, %line, "ignoring a stdout line that is not an event");
            return;
        };
        if self.ready.is_some()
            && let Some(EngineEvent::Ready { addrs, .. }) = event.engine()
            && let Some(ready) = self.ready.take()
        {
            let _ = ready.send(addrs);
        }
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: self.source.clone(),
            pid: Some(self.pid),
            event,
        });
    }

    pub(super) fn exited(self, status: String) {
        let _ = self.exited.send(true);
        let _ = self.tx.send(Inbound {
            t_ms: self.now_ms(),
            source: self.source.clone(),
            pid: Some(self.pid),
            event: EngineEvent::ProcessExited {
                name: self.source,
                pid: self.pid,
                status,
                expected: self.expected.load(Ordering::SeqCst),
            }
            .into(),
        });
    }
}

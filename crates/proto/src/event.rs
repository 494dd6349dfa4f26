//! The event protocol: what role processes tell the harness, and what the journal records.
//!
//! Each incident has one event enum, made by [`with_engine_events!`]: its own kinds and the
//! engine's ([`EngineEvent`]: readiness, processes started and exited, phases, faults, fixes,
//! verdicts, the workshop's). A role process writes each event as one JSON line on stdout
//! through an [`EventSink`]. The harness adds its own events and writes all of them to
//! `journal.jsonl` as [`JournalEntry`] lines: `{"t_ms":1234,"source":"dns-a","kind":"ready",...}`.
//! The engine reads an incident's events through [`Vocabulary`], never by their incident kinds.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The phases of a run the journal marks with a `phase` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// The fleet is up and the timeline plays: the time axis of every plot starts here.
    Timeline,
    /// Every process of the run is being stopped: what follows is not the run's behaviour.
    Stopping,
}

impl RunPhase {
    /// The name the journal writes.
    pub fn name(self) -> &'static str {
        match self {
            RunPhase::Timeline => "timeline",
            RunPhase::Stopping => "stopping",
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares an event vocabulary once: the event enum (its serde `kind` tag is the name written
/// here), its kind enum (which event, without its fields) with every kind in `ALL`, `name`,
/// `from_name` and `kind()`. Every list of kinds (the journal reader, the live page, the
/// report's plots) is derived from the kind enum, so none can drift from the enum.
///
/// An incident does not call it directly: [`with_engine_events!`] hands it the engine's kinds
/// beside the incident's own, so that each incident's events are one flat enum, and makes the
/// conversions to and from [`EngineEvent`].
#[macro_export]
macro_rules! events {
    // An incident's vocabulary: its kinds and the engine's, one enum, and the engine's view.
    (
        $(#[$meta:meta])* enum $Event:ident; kind $Kind:ident;
        incident { $($ibody:tt)* }
        engine { $($ebody:tt)* }
    ) => {
        $crate::events!(@enum $(#[$meta])* $Event, $Kind { $($ibody)* $($ebody)* });
        $crate::events!(@convert $Event { $($ebody)* });
    };
    // The engine's own vocabulary.
    (@engine $(#[$meta:meta])* enum $Event:ident; kind $Kind:ident; engine { $($ebody:tt)* }) => {
        $crate::events!(@enum $(#[$meta])* $Event, $Kind { $($ebody)* });
    };
    (@enum $(#[$meta:meta])* $Event:ident, $Kind:ident {
        $($(#[$doc:meta])* $variant:ident = $name:literal {
            $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
        },)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum $Event {
            $($(#[$doc])* #[serde(rename = $name)] $variant { $($(#[$fmeta])* $field: $ty,)* },)*
        }

        /// Which event, without its fields: the `kind` tag of a journal line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $Kind {
            $($(#[$doc])* $variant,)*
        }

        impl $Kind {
            /// Every kind, in the order they are declared.
            pub const ALL: &[$Kind] = &[$($Kind::$variant,)*];

            /// The `kind` tag, as in the journal.
            pub fn name(self) -> &'static str {
                match self {
                    $($Kind::$variant => $name,)*
                }
            }

            /// The kind a journal line's tag names (`None` for a tag this build does not know).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some($Kind::$variant),)*
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $Kind {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl $Event {
            /// Which event this is.
            pub fn kind(&self) -> $Kind {
                match self {
                    $($Event::$variant { .. } => $Kind::$variant,)*
                }
            }
        }
    };
    (@convert $Event:ident {
        $($(#[$doc:meta])* $variant:ident = $name:literal {
            $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
        },)*
    }) => {
        impl ::std::convert::From<$crate::EngineEvent> for $Event {
            fn from(event: $crate::EngineEvent) -> Self {
                match event {
                    $($crate::EngineEvent::$variant { $($field),* } => $Event::$variant { $($field),* },)*
                }
            }
        }

        impl $crate::Vocabulary for $Event {
            fn engine(&self) -> ::std::option::Option<$crate::EngineEvent> {
                match self {
                    $($Event::$variant { $($field),* } => ::std::option::Option::Some(
                        $crate::EngineEvent::$variant {
                            $($field: ::std::clone::Clone::clone($field)),*
                        },
                    ),)*
                    #[allow(unreachable_patterns)]
                    _ => ::std::option::Option::None,
                }
            }

            fn kind_name(&self) -> &'static str {
                self.kind().name()
            }
        }
    };
}

/// Makes an incident's event vocabulary: `with_engine_events! { enum Event; kind EventKind;
/// incident { ...its kinds... } }` declares `Event` holding the incident's kinds and the
/// engine's (listed here, once), `EventKind`, `From<EngineEvent>` and [`Vocabulary`]. The
/// crate that calls it depends on `serde`.
#[macro_export]
macro_rules! with_engine_events {
    ($($head:tt)*) => {
        $crate::events! {
            $($head)*
            engine {
                /// A process is bound and serving. Always the first event of a process the lab
                /// wrote.
                Ready = "ready" {
                    /// Its role.
                    role: ::std::string::String,
                    /// The real addresses it serves on, by purpose (`dns`, `admin`, `http`).
                    addrs: ::std::collections::BTreeMap<::std::string::String, ::std::net::SocketAddr>,
                },
                /// A DNS server's answer for a name changed (admin update). An empty set: the
                /// name answers NOERROR with no address (NODATA).
                DnsRecordChanged = "dns_record_changed" {
                    /// Fully qualified name.
                    name: ::std::string::String,
                    /// The new A record set.
                    addrs: ::std::vec::Vec<::std::net::IpAddr>,
                    /// The zone's SOA serial after the change.
                    serial: u32,
                },
                /// A DNS server took a name out of its zone (admin update): NXDOMAIN.
                DnsRecordRemoved = "dns_record_removed" {
                    /// Fully qualified name.
                    name: ::std::string::String,
                    /// The zone's SOA serial after the change.
                    serial: u32,
                },
                /// A DNS server's fault for a name went on, or off (`fault` absent).
                DnsFaultChanged = "dns_fault_changed" {
                    /// Fully qualified name.
                    name: ::std::string::String,
                    /// How it answers the name now; absent: as its zone says.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    fault: ::std::option::Option<$crate::wire::DnsFault>,
                },
                /// How often a DNS server has answered its counted name so far, by address in
                /// the answer (cumulative; told about once a second, when it changed). The
                /// evidence of what a program the lab did not write resolved: it tells the lab
                /// nothing itself.
                DnsAnswers = "dns_answers" {
                    /// The name counted (`collector.lab.internal.` in 2012); absent in journals
                    /// written before it was told.
                    #[serde(default)]
                    name: ::std::string::String,
                    /// Answers so far, by address answered (`collector` in older journals).
                    #[serde(alias = "collector")]
                    answers: ::std::collections::BTreeMap<::std::net::IpAddr, u64>,
                },
                /// The run began.
                RunStarted = "run_started" {
                    /// Scenario name.
                    scenario: ::std::string::String,
                    /// The seed every random choice flows from.
                    seed: u64,
                    /// Servers in the fleet.
                    servers: usize,
                },
                /// A run phase began (for people reading the journal or the terminal).
                Phase = "phase" {
                    /// Which phase.
                    name: $crate::RunPhase,
                    /// What happens in it.
                    detail: ::std::string::String,
                },
                /// The harness started a process.
                ProcessStarted = "process_started" {
                    /// Process name in the run (`dns-a`, ...), for people: read `role` and
                    /// `server` to know what it is.
                    name: ::std::string::String,
                    /// The role it runs, as the incident names it.
                    role: ::std::string::String,
                    /// The server of the fleet it belongs to, if one.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    server: ::std::option::Option<::std::string::String>,
                    /// Process id.
                    pid: u32,
                },
                /// A process of the run exited.
                ProcessExited = "process_exited" {
                    /// Process name in the run.
                    name: ::std::string::String,
                    /// Process id.
                    pid: u32,
                    /// How it ended (`exit status: 0`, `signal: 9 (SIGKILL)`).
                    status: ::std::string::String,
                    /// Whether the harness asked it to stop.
                    expected: bool,
                },
                /// The harness injected a fault or a repair.
                FaultInjected = "fault_injected" {
                    /// Timeline action (its step's name).
                    action: ::std::string::String,
                    /// What exactly was done.
                    detail: ::std::string::String,
                },
                /// A fix did something (`fixes:` in the scenario): restarted a process, re-pushed
                /// a DNS record, put a limit in place.
                FixApplied = "fix_applied" {
                    /// The fix's name.
                    fix: ::std::string::String,
                    /// The server it acted on, if one.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    server: ::std::option::Option<::std::string::String>,
                    /// The process it acted on, if one.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    process: ::std::option::Option<::std::string::String>,
                    /// What it saw and did, with the numbers.
                    detail: ::std::string::String,
                },
                /// `outage-lab workshop` stopped the run at a link of the causal chain: every
                /// process that acts on its own is frozen and the lab clock holds until the
                /// facilitator goes on.
                WorkshopStop = "workshop_stop" {
                    /// The link.
                    link: ::std::string::String,
                    /// Its number in the chain, from 1.
                    number: u32,
                    /// What this run shows of it, with the evidence.
                    evidence: ::std::string::String,
                },
                /// The run went on after a workshop stop.
                WorkshopResumed = "workshop_resumed" {
                    /// The link it stopped at.
                    link: ::std::string::String,
                    /// How long the run was frozen (wall time; the lab clock did not move).
                    frozen_ms: u64,
                },
                /// A participant acted on a live run (`outage-lab ctl`, or the live page).
                ParticipantAction = "participant_action" {
                    /// Who (`ctl --as NAME`, else the user name).
                    who: ::std::string::String,
                    /// The action, as the incident names it, or `next`.
                    action: ::std::string::String,
                    /// What it acted on (DNS servers, server ids).
                    #[serde(default, skip_serializing_if = "Vec::is_empty")]
                    targets: ::std::vec::Vec<::std::string::String>,
                    /// Whether it acts on the cause, as the incident judges it.
                    correct: bool,
                    /// What was done.
                    detail: ::std::string::String,
                },
                /// How a workshop's room did: time to detect and to mitigate, in lab
                /// milliseconds.
                WorkshopOutcome = "workshop_outcome" {
                    /// The first correct action, if any.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    detect_ms: ::std::option::Option<u64>,
                    /// When every cause was acted on, as the incident judges it.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    mitigate_ms: ::std::option::Option<u64>,
                    /// The whole outcome in words.
                    detail: ::std::string::String,
                },
                /// An expectation was checked.
                Verdict = "verdict" {
                    /// Expectation name.
                    name: ::std::string::String,
                    /// Whether it held.
                    passed: bool,
                    /// The evidence.
                    detail: ::std::string::String,
                },
                /// The run ended.
                RunFinished = "run_finished" {
                    /// `pass` or `fail`.
                    verdict: ::std::string::String,
                },
            }
        }
    };
}

with_engine_events! {
    @engine
    /// What the engine itself tells or reads: an incident's event enum holds these kinds beside
    /// its own, and converts to and from this one.
    enum EngineEvent; kind EngineEventKind;
}

/// An incident's event vocabulary, as the engine sees it: one enum (made by
/// [`with_engine_events!`]) that holds the engine's kinds.
pub trait Vocabulary:
    Serialize + DeserializeOwned + From<EngineEvent> + Clone + fmt::Debug + PartialEq + Send + 'static
{
    /// The engine's kind this is, if it is one (cloned: the engine's kinds are small).
    fn engine(&self) -> Option<EngineEvent>;

    /// Its `kind` tag.
    fn kind_name(&self) -> &'static str;
}

impl Vocabulary for EngineEvent {
    fn engine(&self) -> Option<EngineEvent> {
        Some(self.clone())
    }

    fn kind_name(&self) -> &'static str {
        self.kind().name()
    }
}

/// One line of `journal.jsonl`, holding an event of vocabulary `E` (an incident's `Event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry<E> {
    /// Milliseconds since the run started, as the harness saw it.
    pub t_ms: u64,
    /// Who told it: a process name of the run, or `harness`.
    pub source: String,
    /// The teller's pid (absent for the harness). Tells a restarted process's lives apart.
    /// Named apart from the `pid` some events carry, which the flattened event keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pid: Option<u32>,
    /// What happened.
    #[serde(flatten)]
    pub event: E,
}

/// Where a role sends its events. Cheap to clone.
///
/// In a role process this is [`EventSink::stdout`]; in tests it is [`EventSink::channel`], so a
/// test can wait for readiness or a record change without parsing text.
pub struct EventSink<E> {
    send: Arc<dyn Fn(E) + Send + Sync>,
}

impl<E> Clone for EventSink<E> {
    fn clone(&self) -> Self {
        Self {
            send: Arc::clone(&self.send),
        }
    }
}

impl<E> fmt::Debug for EventSink<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink").finish_non_exhaustive()
    }
}

impl<E: Serialize + Send + 'static> EventSink<E> {
    /// Writes each event as one JSON line on stdout and flushes, so the harness sees it at once.
    /// A closed stdout (the harness is gone) is ignored: the process is about to die anyway.
    pub fn stdout() -> Self {
        Self {
            send: Arc::new(|event: E| {
                // Serialising a plain enum of owned data cannot fail; if it ever did, an empty
                // line is better than a panic in a daemon.
                let line = serde_json::to_string(&event).unwrap_or_default();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }),
        }
    }

    /// Sends events into an unbounded channel; the receiver sees them in order.
    pub fn channel() -> (Self, std::sync::mpsc::Receiver<E>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let sink = Self {
            send: Arc::new(move |event| {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(event);
                }
            }),
        };
        (sink, rx)
    }

    /// Discards every event.
    pub fn discard() -> Self {
        Self {
            send: Arc::new(|_| {}),
        }
    }

    /// Tells one event.
    pub fn emit(&self, event: E) {
        (self.send)(event);
    }

    /// A sink for a narrower vocabulary (the engine's, for a process that tells only its kinds)
    /// that tells each of its events here.
    pub fn narrowed<F: Into<E> + 'static>(&self) -> EventSink<F> {
        let send = Arc::clone(&self.send);
        EventSink {
            send: Arc::new(move |event: F| send(event.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A small incident vocabulary, as an incident crate declares one (its items are `pub`, as
    // in an incident crate, though this module is private).
    #[allow(unreachable_pub)]
    mod vocabulary {
        use std::net::IpAddr;

        with_engine_events! {
            /// Test events.
            enum Event; kind EventKind;
            incident {
                /// A probe answered.
                Probed = "probed" {
                    /// Where.
                    addrs: Vec<IpAddr>,
                    /// Its own pid, beside the entry's.
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pid: Option<u32>,
                },
            }
        }
    }
    use vocabulary::{Event, EventKind};

    #[test]
    fn journal_entries_are_flat_json_with_a_kind_tag() {
        let entry = JournalEntry {
            t_ms: 1500,
            source: "probe-1".into(),
            source_pid: Some(4242),
            event: Event::Probed {
                addrs: vec!["127.1.2.10".parse().expect("ip")],
                pid: None,
            },
        };
        let line = serde_json::to_string(&entry).expect("serialize");
        assert_eq!(
            line,
            r#"{"t_ms":1500,"source":"probe-1","source_pid":4242,"kind":"probed","addrs":["127.1.2.10"]}"#
        );
        let back: JournalEntry<Event> = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, entry);
        assert_eq!(back.event.kind(), EventKind::Probed);
    }

    #[test]
    fn journal_entries_whose_event_has_its_own_pid_read_back() {
        for source_pid in [None, Some(7)] {
            let entry = JournalEntry {
                t_ms: 7,
                source: "harness".into(),
                source_pid,
                event: Event::from(EngineEvent::ProcessStarted {
                    name: "dns-a".into(),
                    role: "dns".into(),
                    server: None,
                    pid: 9140,
                }),
            };
            let line = serde_json::to_string(&entry).expect("serialize");
            let back: JournalEntry<Event> = serde_json::from_str(&line).expect("parse");
            assert_eq!(back, entry, "{line}");
        }
    }

    #[test]
    fn an_incident_event_holds_the_engine_kinds_and_converts_both_ways() {
        let engine = EngineEvent::Verdict {
            name: "run_completed".into(),
            passed: true,
            detail: "ran".into(),
        };
        let event = Event::from(engine.clone());
        assert_eq!(event.kind(), EventKind::Verdict);
        assert_eq!(event.engine(), Some(engine.clone()));
        assert_eq!(
            serde_json::to_value(&event).expect("event"),
            serde_json::to_value(&engine).expect("engine event"),
            "the engine's kinds are written the same from either enum"
        );
        let own = Event::Probed {
            addrs: vec![],
            pid: Some(1),
        };
        assert_eq!(own.engine(), None);
        for kind in EngineEventKind::ALL {
            assert!(
                EventKind::from_name(kind.name()).is_some(),
                "{kind} is missing"
            );
        }
        assert_eq!(EventKind::ALL.len(), EngineEventKind::ALL.len() + 1);
    }

    #[test]
    fn every_kind_reads_back_from_its_name_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
            assert!(names.insert(kind.name()), "{kind} is named twice");
        }
        assert_eq!(EventKind::from_name("no_such_kind"), None);
    }

    #[test]
    fn a_phase_is_written_with_the_name_it_says() {
        for phase in [RunPhase::Timeline, RunPhase::Stopping] {
            let event = EngineEvent::Phase {
                name: phase,
                detail: String::new(),
            };
            let json = serde_json::to_value(&event).expect("serialize");
            assert_eq!(json["name"], phase.name());
            assert_eq!(json["kind"], "phase");
        }
    }

    #[test]
    fn channel_sink_delivers_events_in_order() {
        let (sink, rx) = EventSink::channel();
        for i in 0..3 {
            sink.emit(EngineEvent::RunFinished {
                verdict: format!("v{i}"),
            });
        }
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[2],
            EngineEvent::RunFinished {
                verdict: "v2".into()
            }
        );
    }
}

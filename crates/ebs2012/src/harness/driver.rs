//! The driver: brings the fleet up, plays the timeline, and folds every event into the journal
//! and the run state as it arrives. It schedules steps and knows none of them by name: at each
//! step's time it calls the step's `inject` with the fleet and journals the evidence it returns.

use std::fs::File;
use std::time::Duration;

use outage_lab_ebs_events::{Event, JournalEntry};
use tokio::sync::mpsc;

use super::halt::Halt;
use super::report;
use super::traffic::Traffic;
use crate::containment::MemoryGuard;
use crate::fixes::action::Action;
use crate::fixes::runtime::FixRuntime;
use crate::fleet::Fleet;
use crate::run_state::RunState;
use crate::steps::Step;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::journal::JournalWriter;
use outage_lab_engine::lag::{Heartbeat, LagMeter, TIMELINE_STEPS};
use outage_lab_engine::supervisor::Inbound;
use outage_lab_engine::terminal::say;

/// How often the customer load's counters go to the journal.
const LOAD_STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How often a status line is printed.
const STATUS_EVERY_MS: u64 = 5_000;
/// How long after the first process lost with its launcher host the others of that machine
/// have to be found lost too (a closed connection is seen at once, a silent machine through
/// keepalive probes within about five seconds).
const LOST_HOSTS_GRACE: Duration = Duration::from_secs(6);

/// One run in progress: the fleet, and the parts that each follow it for one purpose.
pub struct Driver<'a> {
    /// The processes.
    pub fleet: Fleet<'a>,
    pub(super) rx: mpsc::UnboundedReceiver<Inbound<Event>>,
    /// `journal.jsonl` and who reads along.
    pub journal: JournalWriter<Event>,
    /// The live view (`run --serve`), reading along.
    pub live: Option<outage_lab_viz::live::LiveView>,
    /// What happened so far.
    pub state: RunState,
    next_status_ms: u64,
    /// Why the run stops early, if it does.
    pub halt: Halt,
    /// The customers' I/O and API calls.
    pub traffic: Traffic,
    /// The fixes that act during the run.
    pub(super) fixes: FixRuntime,
    /// `outage-lab workshop`: the stops, and the participants' requests.
    pub workshop: Option<crate::workshop::Workshop>,
    /// How late the timeline's scheduled work fired.
    pub lag: LagMeter,
}

impl std::fmt::Debug for Driver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl<'a> Driver<'a> {
    /// A driver for `fleet` that hears every process through `rx` and writes to `journal`.
    pub fn new(
        fleet: Fleet<'a>,
        rx: mpsc::UnboundedReceiver<Inbound<Event>>,
        journal: File,
        guard: MemoryGuard,
    ) -> Self {
        let state = RunState::with_servers(fleet.plan.servers.iter().map(|s| s.id.as_str()));
        let fixes = FixRuntime::new(&fleet.scenario.fixes);
        Self {
            fixes,
            fleet,
            rx,
            journal: JournalWriter::new(journal),
            live: None,
            state,
            next_status_ms: 0,
            halt: Halt::new(guard),
            traffic: Traffic::default(),
            workshop: None,
            lag: LagMeter::default(),
        }
    }

    /// Starts the fleet and the customer load, then runs the timeline to the end of the
    /// scenario's duration and reads every acknowledged write back.
    pub async fn drive(&mut self) -> Result<(), HarnessError> {
        self.fleet.start_servers().await?;
        self.pump();
        let control = self.fleet.start_control().await?;
        self.pump();
        self.traffic.start(&self.fleet, control);
        self.fleet.write_endpoints()?;
        let duration = self.fleet.scenario.duration.value;
        self.fleet.sup.emit(Event::Phase {
            name: outage_lab_proto::RunPhase::Timeline,
            detail: format!("fleet up; the timeline runs for {duration}"),
        });
        say(&format!(
            "fleet up: every agent reports to the collector; timeline starts ({duration})"
        ));
        self.pump();
        // The run's pace is measured over the timeline: start-up and shutdown are not it.
        self.lag.open();
        let heartbeat = Heartbeat::start();
        let played = self.play_timeline().await;
        heartbeat.finish(&mut self.lag);
        self.lag.close();
        played?;
        if self.stopped_early() {
            return Ok(());
        }
        self.workshop_outcome();
        self.pump();
        self.traffic.finish(&self.fleet).await;
        say(&self.status_line());
        Ok(())
    }

    /// Waits for each step's time and injects it, folding events in meanwhile, until the end
    /// of the scenario's duration (or the memory guard trips).
    async fn play_timeline(&mut self) -> Result<(), HarnessError> {
        let scenario = self.fleet.scenario;
        // Step times are lab time: a workshop freeze pushes every later step back by its length.
        let clock = self.fleet.sup.clock().clone();
        let fleet_up = clock.now();
        let end = fleet_up + scenario.duration.value.get();
        self.next_status_ms = self.fleet.sup.now_ms() + STATUS_EVERY_MS;
        let mut load_stats = tokio::time::interval(LOAD_STATS_INTERVAL);
        load_stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut steps = scenario.timeline.iter().peekable();
        loop {
            // A step's lateness counts from when the harness was free to inject it: a step
            // behind another's work (two steps at one `at`: the collector swap starts a process
            // before the DNS update) is in turn, not late.
            let free_since = clock.now();
            let deadline = (steps.peek()).map_or(end, |s| fleet_up + s.at().value.get());
            let deadline = tokio::time::Instant::from_std(clock.instant_at(deadline));
            let fix_due = (self.fixes.next_due()).map_or(deadline, |due| due.min(deadline));
            let pace_due = self.pace_due();
            tokio::select! {
                input = self.next_input() => { self.take(input, false).await?; }
                _ = tokio::time::sleep_until(pace_due.unwrap_or(deadline)), if pace_due.is_some_and(|p| p < deadline) => {
                    self.pace().await?;
                }
                _ = tokio::time::sleep_until(fix_due), if fix_due < deadline => {
                    self.act_fixes().await?;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let Some(step) = steps.next() else { return Ok(()) };
                    let due = (fleet_up + step.at().value.get()).max(free_since);
                    let late = clock.now().saturating_sub(due);
                    self.lag.late(TIMELINE_STEPS, u64::try_from(late.as_millis()).unwrap_or(u64::MAX));
                    self.apply(step).await?;
                }
                _ = load_stats.tick() => self.traffic.tell_window(&self.fleet),
            }
            self.give_up_on_lost_hosts().await;
            if self.stopped_early() {
                return Ok(());
            }
            self.stop_at_links().await?;
            self.tell_status();
        }
    }

    /// Whether the run was stopped before the end of its timeline (memory guard, lost hosts).
    fn stopped_early(&self) -> bool {
        self.halt.stopped_early()
    }

    /// Once a launcher host is lost, the run cannot go on as the scenario says: waits a moment
    /// for the rest of that machine's processes to be found lost too, then stops the run with
    /// the list (an expectation row, exit 1), rather than failing later at a step that needs
    /// one of them.
    async fn give_up_on_lost_hosts(&mut self) {
        if !self.halt.losing_hosts() {
            return;
        }
        tokio::time::sleep(LOST_HOSTS_GRACE).await;
        self.pump();
        let reason = format!(
            "{} processes lost with their launcher hosts (the machine or container that ran them is gone) at {:.1}s: {}; the run stopped there",
            self.halt.lost.len(),
            self.fleet.sup.now_ms() as f64 / 1000.0,
            self.halt.lost.join(", ")
        );
        say(&format!("STOPPING: {reason}"));
        self.halt.hosts_lost = Some(reason);
    }

    /// Injects one step and journals its evidence.
    async fn apply(&mut self, step: &Step) -> Result<(), HarnessError> {
        let action = step.kind().name();
        let detail = step.inject(&mut self.fleet).await?;
        say(&format!(
            "t={:>5.1}s  {action}: {detail}",
            self.fleet.sup.now_ms() as f64 / 1000.0
        ));
        self.fleet.sup.emit(Event::FaultInjected {
            action: action.to_owned(),
            detail,
        });
        self.pump();
        Ok(())
    }

    /// Lets the fixes do what is due, and journals each action.
    async fn act_fixes(&mut self) -> Result<(), HarnessError> {
        for action in self.fixes.act(&mut self.fleet).await? {
            self.fix_applied(action);
        }
        self.pump();
        Ok(())
    }

    /// Journals what a fix did and tells the person watching.
    pub fn fix_applied(&mut self, action: Action) {
        say(&format!(
            "t={:>5.1}s  fix {}: {}",
            self.fleet.sup.now_ms() as f64 / 1000.0,
            action.fix,
            action.detail
        ));
        self.fleet.sup.emit(action.event());
    }

    fn status_line(&self) -> String {
        let external = self.fleet.scenario.agent.command.is_some();
        report::status_line(
            self.fleet.sup.now_ms(),
            self.fleet.plan,
            &self.state,
            external,
        )
    }

    /// The redrawn line on a terminal, and a plain status line every few seconds.
    fn tell_status(&mut self) {
        outage_lab_engine::terminal::tick(|| self.status_line());
        if self.fleet.sup.now_ms() >= self.next_status_ms {
            self.next_status_ms += STATUS_EVERY_MS;
            say(&self.status_line());
        }
    }

    /// The customer accounts' report, when the scenario has accounts.
    pub fn customers_report(&self) -> Option<outage_lab_proto::report::CustomersReport> {
        self.traffic.customers_report(&self.fleet, &self.state)
    }

    /// Folds every event already waiting into the journal and the state.
    pub fn pump(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.record(msg);
        }
    }

    /// Flushes the journal; a full disk shows up here.
    pub fn flush_journal(&mut self) -> Result<(), HarnessError> {
        self.journal.flush()
    }

    pub(super) fn record(&mut self, msg: Inbound<Event>) {
        let entry = JournalEntry {
            t_ms: msg.t_ms,
            source: msg.source,
            source_pid: msg.pid,
            event: msg.event,
        };
        self.journal.write(&entry);
        self.halt.observe(&entry);
        if let Event::Alarm {
            alarm,
            server,
            role,
            detail,
            ..
        } = &entry.event
        {
            say(&format!(
                "t={:>5.1}s  ALARM {alarm} on {server}{}: {detail}",
                entry.t_ms as f64 / 1000.0,
                role.map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        outage_lab_engine::terminal::observe(&entry);
        self.fixes.observe(&entry, tokio::time::Instant::now());
        crate::pace::observe(&mut self.lag, &entry, self.fleet.scenario);
        self.state.apply(&entry);
    }

    /// After every process was stopped: reads until every child's stdout has closed.
    pub async fn drain_until_closed(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        // The supervisor holds one sender; the rest belong to per-child tasks that end at EOF.
        // Wait until only the supervisor's is left (strong_count would need the sender), so poll.
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => self.record(msg),
                Ok(None) | Err(_) => break,
            }
            if self.rx.sender_strong_count() <= 1 && self.rx.is_empty() {
                break;
            }
        }
    }
}

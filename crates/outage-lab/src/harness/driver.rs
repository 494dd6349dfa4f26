//! The driver: brings the fleet up, plays the timeline, and folds every event into the journal
//! and the run state as it arrives. It schedules steps and knows none of them by name: at each
//! step's time it calls the step's `inject` with the fleet and journals the evidence it returns.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outage_lab_proto::{Event, JournalEntry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::customers::{self, CustomerLedger};
use super::fleet::Fleet;
use super::load::{self, LoadLedger, WriteCheck};
use super::report;
use super::state::RunState;
use super::supervisor::Inbound;
use crate::containment::MemoryGuard;
use crate::fixes::action::Action;
use crate::fixes::runtime::FixRuntime;
use crate::steps::Step;
use crate::terminal::say;
use outage_lab_engine::error::HarnessError;

/// How often the customer load's counters go to the journal.
const LOAD_STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How often a status line is printed.
const STATUS_EVERY_MS: u64 = 5_000;
/// The journal is flushed at least this often, so `tail -f journal.jsonl` follows the run.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How long after the first process lost with its launcher host the others of that machine
/// have to be found lost too (a closed connection is seen at once, a silent machine through
/// keepalive probes within about five seconds).
const LOST_HOSTS_GRACE: Duration = Duration::from_secs(6);

/// One run in progress.
pub struct Driver<'a> {
    /// The processes.
    pub fleet: Fleet<'a>,
    pub(super) rx: mpsc::UnboundedReceiver<Inbound>,
    journal: BufWriter<File>,
    /// What happened so far.
    pub state: RunState,
    next_status_ms: u64,
    last_flush: Instant,
    /// Trips when the real memory of the run's processes crosses the limit.
    guard: MemoryGuard,
    /// Set by the guard: why the run was stopped early.
    pub memory_abort: Option<String>,
    /// Processes lost with their launcher hosts (a machine or container gone), in the order
    /// their streams ended.
    lost: Vec<String>,
    /// Why the run was stopped early for lost launcher hosts: which processes went with them.
    pub hosts_lost: Option<String>,
    /// The customer load's counters and acknowledged writes.
    pub load: Arc<Mutex<LoadLedger>>,
    load_stop: CancellationToken,
    load_task: Option<tokio::task::JoinHandle<()>>,
    /// What every customer account's API automation did and saw.
    pub customers: CustomerLedger,
    customers_task: Option<tokio::task::JoinHandle<()>>,
    /// Each account's call totals at the last `customer_stats` window.
    customers_told: std::collections::BTreeMap<String, outage_lab_proto::report::ApiCalls>,
    /// Every acknowledged write read back at the end (after recovery).
    pub write_check: Option<Result<WriteCheck, String>>,
    /// The live view (`run --serve`), fed every journal entry.
    pub live: Option<outage_lab_viz::live::LiveView>,
    /// The fixes that act during the run.
    pub(super) fixes: FixRuntime,
    /// `outage-lab workshop`: the stops, and the participants' requests.
    pub workshop: Option<crate::workshop::Workshop>,
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
        rx: mpsc::UnboundedReceiver<Inbound>,
        journal: File,
        guard: MemoryGuard,
    ) -> Self {
        let state = RunState::with_servers(fleet.plan.servers.iter().map(|s| s.id.as_str()));
        let fixes = FixRuntime::new(&fleet.scenario.fixes);
        Self {
            fixes,
            fleet,
            rx,
            journal: BufWriter::new(journal),
            state,
            next_status_ms: 0,
            last_flush: Instant::now(),
            guard,
            memory_abort: None,
            lost: Vec::new(),
            hosts_lost: None,
            load: Arc::default(),
            load_stop: CancellationToken::new(),
            load_task: None,
            customers: CustomerLedger::default(),
            customers_task: None,
            customers_told: Default::default(),
            write_check: None,
            live: None,
            workshop: None,
        }
    }

    /// Starts the fleet and the customer load, then runs the timeline to the end of the
    /// scenario's duration and reads every acknowledged write back.
    pub async fn drive(&mut self) -> Result<(), HarnessError> {
        self.fleet.start_servers().await?;
        self.pump();
        let control = self.fleet.start_control().await?;
        self.pump();
        self.start_load(control);
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
        self.play_timeline().await?;
        if self.stopped_early() {
            return Ok(());
        }
        self.workshop_outcome();
        self.pump();
        self.finish_load().await;
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
                    match steps.next() {
                        Some(step) => self.apply(step).await?,
                        None => return Ok(()),
                    }
                }
                _ = load_stats.tick() => self.emit_load_window(),
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
        self.memory_abort.is_some() || self.hosts_lost.is_some()
    }

    /// Once a launcher host is lost, the run cannot go on as the scenario says: waits a moment
    /// for the rest of that machine's processes to be found lost too, then stops the run with
    /// the list (an expectation row, exit 1), rather than failing later at a step that needs
    /// one of them.
    async fn give_up_on_lost_hosts(&mut self) {
        if self.lost.is_empty() || self.hosts_lost.is_some() {
            return;
        }
        tokio::time::sleep(LOST_HOSTS_GRACE).await;
        self.pump();
        let reason = format!(
            "{} processes lost with their launcher hosts (the machine or container that ran them is gone) at {:.1}s: {}; the run stopped there",
            self.lost.len(),
            self.fleet.sup.now_ms() as f64 / 1000.0,
            self.lost.join(", ")
        );
        say(&format!("STOPPING: {reason}"));
        self.hosts_lost = Some(reason);
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
        crate::terminal::tick(|| self.status_line());
        if self.fleet.sup.now_ms() >= self.next_status_ms {
            self.next_status_ms += STATUS_EVERY_MS;
            say(&self.status_line());
        }
    }

    /// The customer accounts' report, when the scenario has accounts. An episode the customer
    /// did not see end (a customer busy retrying may not) ends when control saw the volume
    /// serve again.
    pub fn customers_report(&self) -> Option<outage_lab_proto::report::CustomersReport> {
        let scenario = self.fleet.scenario;
        (scenario.customers.active()).then(|| {
            let policy = crate::steps::throttle::in_force_at_end(scenario)
                .policy
                .name();
            let mut report = customers::report(&scenario.customers, policy, &self.customers);
            customers::close_unseen(&mut report, &self.state.volumes.unstuck_at_ms);
            let io = load::lock(&self.load).per_customer.clone();
            for account in &mut report.accounts {
                (account.io_requests, account.io_errors) =
                    io.get(&account.name).copied().unwrap_or_default();
            }
            report
        })
    }

    /// Starts the customers' I/O against control's volumes and their API automation, if the
    /// scenario has them.
    fn start_load(&mut self, control: std::net::SocketAddr) {
        let c = &self.fleet.scenario.customers;
        if c.active() {
            self.customers_task = Some(tokio::spawn(customers::run(
                c.clone(),
                control,
                self.fleet.http.clone(),
                Arc::clone(&self.customers),
                (
                    self.fleet.seed ^ 0xC057_0E45,
                    self.fleet.sup.clock().clone(),
                ),
                self.load_stop.clone(),
            )));
        }
        let l = &self.fleet.scenario.load;
        if !l.runs() {
            return;
        }
        let config = load::LoadConfig {
            control,
            requests_per_second: l.requests_per_second,
            read_fraction: l.read_fraction,
            request_timeout: l.request_timeout.get(),
            seed: self.fleet.seed ^ 0x10AD_10AD,
            clock: self.fleet.sup.clock().clone(),
        };
        self.load_task = Some(tokio::spawn(load::run(
            config,
            self.fleet.http.clone(),
            Arc::clone(&self.load),
            self.load_stop.clone(),
        )));
    }

    /// Tells the load's and the customer accounts' counters since the last window, while they
    /// run.
    fn emit_load_window(&mut self) {
        if self.customers_task.is_some() {
            for event in customers::window(&self.customers, &mut self.customers_told) {
                self.fleet.sup.emit(event);
            }
        }
        if self.load_task.is_none() {
            return;
        }
        self.emit_load_counters();
    }

    fn emit_load_counters(&mut self) {
        let w = load::lock(&self.load).take_window();
        self.fleet.sup.emit(Event::LoadStats {
            requests: w.requests,
            ok: w.ok,
            errors: w.errors,
            p50_ms: w.p50_ms,
            p99_ms: w.p99_ms,
        });
    }

    /// Stops the load, then reads every acknowledged write back (the timeline has repaired
    /// everything by now).
    async fn finish_load(&mut self) {
        self.load_stop.cancel();
        if let Some(task) = self.customers_task.take() {
            let _ = task.await;
        }
        let Some(task) = self.load_task.take() else {
            return;
        };
        let _ = task.await;
        self.emit_load_counters();
        let Some(control) = self.fleet.control() else {
            return;
        };
        let acked = load::lock(&self.load).acked.clone();
        let check = load::read_back(&self.fleet.http, control, &acked).await;
        match &check {
            Ok(c) => say(&format!(
                "t={:>5.1}s  read back {} blocks with acknowledged writes: {} lost, {} unreadable",
                self.fleet.sup.now_ms() as f64 / 1000.0,
                c.checked,
                c.lost.len(),
                c.unreadable.len()
            )),
            Err(e) => say(&format!("could not read acknowledged writes back: {e}")),
        }
        self.write_check = Some(check);
    }

    /// Folds every event already waiting into the journal and the state.
    pub fn pump(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.record(msg);
        }
    }

    /// Flushes the journal; a full disk shows up here.
    pub fn flush_journal(&mut self) -> Result<(), HarnessError> {
        (self.journal.flush()).map_err(|e| HarnessError::io("write journal.jsonl".into(), e))
    }

    pub(super) fn record(&mut self, msg: Inbound) {
        let entry = JournalEntry {
            t_ms: msg.t_ms,
            source: msg.source,
            source_pid: msg.pid,
            event: msg.event,
        };
        if let Ok(line) = serde_json::to_string(&entry) {
            // A full disk shows up at the final flush, which is checked.
            let _ = writeln!(self.journal, "{line}");
            if let Some(live) = &self.live {
                live.feed.publish(&entry, &line);
            }
        }
        if self.last_flush.elapsed() >= FLUSH_EVERY || entry.source == "harness" {
            let _ = self.journal.flush();
            self.last_flush = Instant::now();
        }
        self.watch_memory(&entry);
        if let Event::ProcessExited {
            name,
            status,
            expected: false,
            ..
        } = &entry.event
            && status == super::supervisor::LOST_WITH_HOST
        {
            self.lost.push(name.clone());
        }
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
        crate::terminal::observe(&entry);
        self.fixes.observe(&entry, tokio::time::Instant::now());
        self.state.apply(&entry);
    }

    /// The memory guard adds up every watchdog sweep and stops the run past the limit.
    fn watch_memory(&mut self, entry: &JournalEntry) {
        let Event::RssSweep { samples } = &entry.event else {
            return;
        };
        let total = samples.iter().map(|s| s.rss_bytes).sum();
        if let (None, Some(reason)) = (&self.memory_abort, self.guard.check(total)) {
            say(&format!(
                "t={:>5.1}s  STOPPING: {reason}",
                entry.t_ms as f64 / 1000.0
            ));
            self.memory_abort = Some(reason);
        }
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

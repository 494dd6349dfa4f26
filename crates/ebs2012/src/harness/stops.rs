//! The driver's side of `outage-lab workshop`: stopping the run at each link the session
//! recognises (freeze every process that acts on its own, hold the lab clock, tell the room),
//! waiting for the facilitator, answering the participants' requests, and slow motion.
//!
//! What a stop *says* lives in `crate::workshop`; this file only does: it owns the fleet.

use std::time::Duration;

use outage_lab_ebs_events::Event;
use tokio::sync::mpsc;

use super::driver::Driver;
use crate::fleet_handle::FleetHandle;
use crate::names::{Generation, ProcessName};
use crate::workshop::control::{Asked, Request, RequestError};
use crate::workshop::monitors::Panel;
use crate::workshop::{self, Session, StopView};
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::terminal::say;

/// Slow motion runs this much lab time between holds.
const PACE_SLICE: Duration = Duration::from_secs(1);

/// What the driver hears while it waits.
pub(super) enum Input {
    /// A process's event (`None`: every process's stdout has closed).
    Event(Option<outage_lab_engine::supervisor::Inbound<Event>>),
    /// A participant's request.
    Asked(Asked),
}

/// What answering a request asks of the caller.
enum Then {
    Stay,
    GoOn,
}

impl Driver<'_> {
    /// Waits for the next event of a process or request of a participant.
    pub(super) async fn next_input(&mut self) -> Input {
        let requests = self.workshop.as_mut().map(|w| &mut w.requests);
        tokio::select! {
            msg = self.rx.recv() => Input::Event(msg),
            Some(asked) = recv_request(requests) => Input::Asked(asked),
        }
    }

    /// Folds an event in, or answers a request; `frozen`: the run is held. Returns whether a
    /// request said to go on from a stop.
    pub(super) async fn take(&mut self, input: Input, frozen: bool) -> Result<bool, HarnessError> {
        match input {
            Input::Event(Some(msg)) => self.record(msg),
            Input::Event(None) => {}
            Input::Asked(asked) => {
                // What a participant is told comes from the run state; the journal on disk must
                // hold at least as much (an event that was in flight when the run froze is
                // folded into the state at once, but would sit in the write buffer).
                let _ = self.flush_journal();
                return Ok(matches!(self.answer(asked, frozen).await?, Then::GoOn));
            }
        }
        Ok(false)
    }

    /// Right after a freeze: folds in what the processes said before they stopped and the harness
    /// had not read yet (lines still in their pipes), until nothing comes for a moment, so the
    /// stop shows a run state that no longer moves.
    async fn settle(&mut self) {
        const QUIET: Duration = Duration::from_millis(100);
        const MOST: Duration = Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + MOST;
        while let Ok(Some(msg)) = tokio::time::timeout(QUIET, self.rx.recv()).await {
            self.record(msg);
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
    }

    /// When slow motion next holds the run, if it does: a slice of lab time after the last
    /// hold. Kept, not recomputed from the clock, so a busy loop cannot step over it.
    pub(super) fn pace_due(&mut self) -> Option<tokio::time::Instant> {
        let clock = self.fleet.sup.clock().clone();
        let w = self.workshop.as_mut()?;
        if w.session.options.speed >= 1.0 {
            return None;
        }
        let slice = PACE_SLICE.as_millis() as u64;
        let next = *w.next_pace_ms.get_or_insert(clock.now_ms() + slice);
        Some(tokio::time::Instant::from_std(
            clock.instant_at(Duration::from_millis(next)),
        ))
    }

    /// Slow motion: holds the run for the rest of the slice's wall time, answering requests.
    pub(super) async fn pace(&mut self) -> Result<(), HarnessError> {
        let Some(speed) = self.workshop.as_ref().map(|w| w.session.options.speed) else {
            return Ok(());
        };
        let hold = PACE_SLICE.mul_f64(1.0 / speed.max(0.01) - 1.0);
        self.fleet.sup.freeze();
        tracing::debug!(
            t_ms = self.fleet.sup.now_ms(),
            ?hold,
            "slow motion: holding the run"
        );
        let until = tokio::time::Instant::now() + hold;
        loop {
            tokio::select! {
                input = self.next_input() => { self.take(input, true).await?; }
                () = tokio::time::sleep_until(until) => break,
            }
        }
        let next = self.fleet.sup.now_ms() + PACE_SLICE.as_millis() as u64;
        if let Some(w) = self.workshop.as_mut() {
            w.next_pace_ms = Some(next);
        }
        self.thaw().await.map(|_| ())
    }

    /// Stops at every link the run has newly reached, one after the other.
    pub(super) async fn stop_at_links(&mut self) -> Result<(), HarnessError> {
        loop {
            let now = self.fleet.sup.now_ms();
            let Some(w) = self.workshop.as_mut() else {
                return Ok(());
            };
            if !w.session.observe(self.fleet.plan, &self.state, now) {
                return Ok(());
            }
            let Some(stop) = w.session.next_stop() else {
                return Ok(());
            };
            self.stop_at(&stop).await?;
        }
    }

    /// One stop: freeze, tell, wait for the facilitator, go on.
    async fn stop_at(&mut self, stop: &StopView) -> Result<(), HarnessError> {
        let frozen = self.fleet.sup.freeze();
        self.settle().await;
        self.fleet.sup.emit(Event::WorkshopStop {
            link: stop.link.name().to_owned(),
            number: stop.number as u32,
            evidence: stop.evidence.clone(),
        });
        self.pump();
        let _ = self.flush_journal();
        let text = {
            let w = self.workshop.as_ref().expect("a workshop is stopping");
            w.session.stop_text(stop, &self.panel(), &self.commands())
        };
        say(&text);
        let auto = self.workshop.as_ref().and_then(|w| w.session.options.auto);
        let run_dir =
            (self.workshop.as_ref()).map_or(String::new(), |w| w.run_dir.display().to_string());
        say(&match auto {
            Some(d) => format!(
                "{frozen} processes frozen; going on in {} s",
                d.as_secs_f64()
            ),
            None => format!(
                "{frozen} processes frozen; press Enter to go on (or: outage-lab ctl {run_dir} next)"
            ),
        });
        let until = auto.map(|d| tokio::time::Instant::now() + d);
        loop {
            tokio::select! {
                input = self.next_input() => if self.take(input, true).await? { break },
                () = sleep_until_opt(until) => break,
            }
        }
        let frozen_for = self.thaw().await?;
        self.fleet.sup.emit(Event::WorkshopResumed {
            link: stop.link.name().to_owned(),
            frozen_ms: u64::try_from(frozen_for.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(w) = self.workshop.as_mut() {
            w.session.current = None;
        }
        Ok(())
    }

    /// Continues the run, then does the restarts asked for while it was frozen.
    async fn thaw(&mut self) -> Result<Duration, HarnessError> {
        let frozen_for = self.fleet.sup.thaw();
        self.fixes.shift(frozen_for);
        let queued = self
            .workshop
            .as_mut()
            .map(|w| std::mem::take(&mut w.queued_restarts))
            .unwrap_or_default();
        for (who, servers, asked_ms) in queued {
            self.restart(&who, &servers, asked_ms).await?;
        }
        self.pump();
        Ok(frozen_for)
    }

    /// Answers one request; `frozen`: the run is held (at a stop, or in slow motion).
    async fn answer(&mut self, asked: Asked, frozen: bool) -> Result<Then, HarnessError> {
        let at_stop = self
            .workshop
            .as_ref()
            .is_some_and(|w| w.session.current.is_some());
        let (reply, then) = match asked.request {
            Request::Status => (Ok(self.status()), Then::Stay),
            Request::Next { who } if at_stop => {
                self.participant(&who, "next", Vec::new(), false, "went on".into());
                (Ok(serde_json::json!({ "done": "going on" })), Then::GoOn)
            }
            Request::Next { .. } => {
                let t_ms = self.fleet.sup.now_ms();
                (Err(RequestError::NotAtStop { t_ms }), Then::Stay)
            }
            Request::Repair { who, targets } => (self.repair(&who, &targets).await?, Then::Stay),
            Request::Restart { who, targets } => {
                let picked = workshop::pick_servers(self.fleet.plan, &targets);
                match picked {
                    Err(e) => (Err(e), Then::Stay),
                    Ok(servers) if frozen => {
                        let detail = format!(
                            "{} agent(s) restart as the run goes on (it is frozen)",
                            servers.len()
                        );
                        let asked_ms = self.fleet.sup.now_ms();
                        if let Some(w) = self.workshop.as_mut() {
                            w.queued_restarts.push((who, servers, asked_ms));
                        }
                        (Ok(serde_json::json!({ "done": detail })), Then::Stay)
                    }
                    Ok(servers) => {
                        let now = self.fleet.sup.now_ms();
                        (Ok(self.restart(&who, &servers, now).await?), Then::Stay)
                    }
                }
            }
        };
        let _ = asked.reply.send(reply);
        Ok(then)
    }

    /// Points the collector's record at the replacement on the named DNS servers.
    async fn repair(
        &mut self,
        who: &str,
        targets: &[String],
    ) -> Result<Result<serde_json::Value, RequestError>, HarnessError> {
        let dns = match workshop::pick_dns(self.fleet.plan, targets) {
            Ok(dns) => dns,
            Err(e) => return Ok(Err(e)),
        };
        for name in &dns {
            self.fleet
                .point_collector_record(name, "workshop repair")
                .await?;
        }
        let t = self.fleet.sup.now_ms();
        let plan = self.fleet.plan;
        let correct = self.session_mut().repaired(plan, who, &dns, t);
        let detail = format!(
            "collector.lab.internal -> {} on {}",
            plan.collector_new,
            dns.join(", ")
        );
        self.participant(who, "repair_dns", dns, correct, detail.clone());
        Ok(Ok(
            serde_json::json!({ "done": detail, "acts_on_the_cause": correct }),
        ))
    }

    /// Restarts the named servers' agents now, as asked at `asked_ms` (a restart asked for at
    /// a stop counts from the stop: the lab clock held until it was done).
    async fn restart(
        &mut self,
        who: &str,
        servers: &[String],
        asked_ms: u64,
    ) -> Result<serde_json::Value, HarnessError> {
        let plan = self.fleet.plan;
        let picked: Vec<_> = plan
            .servers
            .iter()
            .filter(|s| servers.contains(&s.id))
            .collect();
        self.fleet.restart_agents(&picked).await?;
        let correct = self.session_mut().restarted(plan, who, servers, asked_ms);
        let detail = format!("restarted the agents of {}", servers.join(", "));
        self.participant(
            who,
            "restart_agents",
            servers.to_vec(),
            correct,
            detail.clone(),
        );
        Ok(serde_json::json!({ "done": detail, "acts_on_the_cause": correct }))
    }

    fn session_mut(&mut self) -> &mut Session {
        &mut self
            .workshop
            .as_mut()
            .expect("requests come only with a workshop")
            .session
    }

    /// Journals and tells what a participant did.
    fn participant(
        &mut self,
        who: &str,
        action: &str,
        targets: Vec<String>,
        correct: bool,
        detail: String,
    ) {
        say(&format!(
            "t={:>5.1}s  {who}: {detail}",
            self.fleet.sup.now_ms() as f64 / 1000.0
        ));
        self.fleet.sup.emit(Event::ParticipantAction {
            who: who.to_owned(),
            action: action.to_owned(),
            targets,
            correct,
            detail,
        });
        self.pump();
    }

    /// The monitors now.
    fn panel(&self) -> Panel {
        let s = self.fleet.scenario;
        Panel::read(
            self.fleet.plan,
            &self.state,
            s.fleet.memory_budget.value.bytes(),
            s.watchdog.aggregate.threshold,
            self.fleet.sup.now_ms(),
        )
    }

    /// The commands that work now against this run.
    fn commands(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.fleet.plan.dns {
            if let Some(addr) = self.fleet.dns_addr(&d.name) {
                out.push(format!(
                    "dig @{} -p {} collector.lab.internal A +short    # {}",
                    addr.ip(),
                    addr.port(),
                    d.name
                ));
            }
        }
        let listed = &self.fleet.listed;
        if let Some(url) = (listed.url(&ProcessName::Collector(Generation::New), "stats"))
            .or_else(|| listed.url(&ProcessName::Collector(Generation::Old), "stats"))
        {
            out.push(format!("curl -s {url}    # reports per agent"));
        }
        if let Some(url) = listed.url(&ProcessName::Watchdog, "metrics") {
            out.push(format!(
                "curl -s {url} | grep -E 'rss_bytes|alarm'    # the watchdog (answers once the run goes on)"
            ));
        }
        let dir = (self.workshop.as_ref()).map_or(".".into(), |w| w.run_dir.display().to_string());
        out.push(format!(
            "outage-lab ctl {dir} repair dns-NAME    # or: restart SERVER..., status, next"
        ));
        out
    }

    /// What `ctl status` and the page show.
    fn status(&self) -> serde_json::Value {
        let Some(w) = &self.workshop else {
            return serde_json::Value::Null;
        };
        let s = &w.session;
        serde_json::json!({
            "t_ms": self.fleet.sup.now_ms(),
            "frozen": self.fleet.sup.clock().is_held(),
            "stop": s.current,
            "reached": s.reached,
            "links": crate::workshop::links::Link::ALL.len(),
            "monitors": self.panel(),
            "commands": self.commands(),
            "actions": s.actions,
            "detect_ms": s.detect_ms,
            "mitigate_ms": s.mitigate_ms,
        })
    }

    /// Journals and prints how the room did; called once the timeline has played.
    pub(super) fn workshop_outcome(&mut self) {
        let Some(w) = &self.workshop else {
            return;
        };
        let detail = w.session.outcome(&self.state);
        let (detect_ms, mitigate_ms) = (w.session.detect_ms, w.session.mitigate_ms);
        say(&format!("workshop: {detail}"));
        self.fleet.sup.emit(Event::WorkshopOutcome {
            detect_ms,
            mitigate_ms,
            detail,
        });
        self.pump();
    }
}

async fn recv_request(requests: Option<&mut mpsc::UnboundedReceiver<Asked>>) -> Option<Asked> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(until: Option<tokio::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

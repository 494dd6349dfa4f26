//! `outage-lab workshop`: the 2012 run, stopped at each link of the causal chain for a room to
//! look at, with real tools, and to act on.
//!
//! - [`links`]: the links and how each is recognised in the run state.
//! - [`narration`]: what happened at each link in 2012, a question and its answer.
//! - [`monitors`]: what each monitor shows right now, side by side.
//! - [`control`]: the run's control API (`ctl`, the live page's buttons), behind the run's token.
//! - [`Session`] (here): which links were reached and stopped at, what the participants did, and
//!   the time to detect and to mitigate. The driver (`harness/stops.rs`) freezes the run, waits
//!   and acts; this module decides and tells.

pub mod control;
pub mod links;
pub mod monitors;
pub mod narration;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::plan::Plan;
use crate::run_state::RunState;
use crate::scenario::Scenario;
use control::RequestError;
use links::{Link, Run};

/// How the workshop is paced.
#[derive(Debug, Clone)]
pub struct Options {
    /// Go on by itself after this long at each stop (no input needed).
    pub auto: Option<Duration>,
    /// Slow motion: the share of wall time the run runs (1 = real time; 0.25 runs a second,
    /// then holds three).
    pub speed: f64,
}

/// A workshop attached to a run.
#[derive(Debug)]
pub struct Workshop {
    /// What was reached and done.
    pub session: Session,
    /// The participants' requests (control API, live page, Enter on the terminal).
    pub requests: tokio::sync::mpsc::UnboundedReceiver<control::Asked>,
    /// Restarts asked for while frozen, done as the run goes on: (who, servers, lab time asked).
    pub queued_restarts: Vec<(String, Vec<String>, u64)>,
    /// Slow motion: the lab time of the next hold.
    pub next_pace_ms: Option<u64>,
    /// Stops the control API when the run ends.
    stop_serving: tokio_util::sync::CancellationToken,
    /// The run directory (for the commands a stop prints).
    pub run_dir: std::path::PathBuf,
}

impl Workshop {
    /// A workshop for `session`, hearing requests on `requests`.
    pub fn new(
        session: Session,
        requests: tokio::sync::mpsc::UnboundedReceiver<control::Asked>,
        stop_serving: tokio_util::sync::CancellationToken,
        run_dir: &std::path::Path,
    ) -> Self {
        Self {
            session,
            requests,
            queued_restarts: Vec::new(),
            next_pace_ms: None,
            stop_serving,
            run_dir: run_dir.to_owned(),
        }
    }

    /// The run has ended: stop serving the control API and say so to `ctl`.
    pub fn close(&self) {
        self.stop_serving.cancel();
        let _ = std::fs::remove_file(self.run_dir.join(control::FILE));
    }
}

/// One stop, as `ctl status` and the page show it.
#[derive(Debug, Clone, Serialize)]
pub struct StopView {
    /// The link.
    pub link: Link,
    /// Its number in the chain.
    pub number: usize,
    /// Lab time it was reached.
    pub t_ms: u64,
    /// What this run shows of it.
    pub evidence: String,
    /// 2012's side.
    pub narration: narration::Narration,
}

/// What a participant did.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Lab time.
    pub t_ms: u64,
    /// Who.
    pub who: String,
    /// `repair_dns` or `restart_agents`.
    pub action: String,
    /// What it acted on.
    pub targets: Vec<String>,
    /// Whether it acted on the cause.
    pub correct: bool,
}

/// A workshop in progress.
#[derive(Debug)]
pub struct Session {
    /// Pacing.
    pub options: Options,
    /// Links reached so far, with when and the evidence, in the order reached.
    pub reached: Vec<StopView>,
    /// Reached but not yet stopped at.
    queue: VecDeque<Link>,
    /// The stop the run is frozen at.
    pub current: Option<StopView>,
    /// DNS servers the participants repaired, with when.
    repaired: BTreeMap<String, u64>,
    /// Servers whose agents the participants restarted, with when (the latest).
    restarted: BTreeMap<String, u64>,
    /// Everything the participants did.
    pub actions: Vec<Action>,
    /// The first correct action.
    pub detect_ms: Option<u64>,
    /// When the cause was fully removed by the participants.
    pub mitigate_ms: Option<u64>,
    budget_bytes: u64,
    threshold: f64,
    /// Wall time, for how long the room took (lab time holds at stops; the room does not).
    started: std::time::Instant,
    /// Wall time when the DNS update was reached, when the first correct action came and when
    /// the cause was removed.
    update_wall: Option<Duration>,
    detect_wall: Option<Duration>,
    mitigate_wall: Option<Duration>,
}

impl Session {
    /// A workshop of `scenario`, paced by `options`.
    pub fn new(scenario: &Scenario, options: Options) -> Self {
        let budget = scenario.fleet.memory_budget.value.bytes();
        Self::with(options, budget, scenario.watchdog.aggregate.threshold)
    }

    /// A workshop of servers with `budget_bytes` each, under an aggregate alarm at `threshold`.
    fn with(options: Options, budget_bytes: u64, threshold: f64) -> Self {
        Self {
            options,
            reached: Vec::new(),
            queue: VecDeque::new(),
            current: None,
            repaired: BTreeMap::new(),
            restarted: BTreeMap::new(),
            actions: Vec::new(),
            detect_ms: None,
            mitigate_ms: None,
            budget_bytes,
            threshold,
            started: std::time::Instant::now(),
            update_wall: None,
            detect_wall: None,
            mitigate_wall: None,
        }
    }

    fn run<'a>(&self, plan: &'a Plan, state: &'a RunState) -> Run<'a> {
        let stale_dns = plan.dns.iter().filter(|d| d.stale);
        let repaired = stale_dns
            .clone()
            .all(|d| self.repaired.contains_key(&d.name))
            && stale_dns.count() > 0;
        Run {
            plan,
            state,
            budget_bytes: self.budget_bytes,
            aggregate_threshold: self.threshold,
            participants_repaired: repaired,
            participants_restarted: self.mitigate_ms.is_some(),
        }
    }

    /// Notes every link the run has newly reached; returns whether one waits to be stopped at.
    pub fn observe(&mut self, plan: &Plan, state: &RunState, t_ms: u64) -> bool {
        let run = self.run(plan, state);
        for link in Link::ALL {
            if self.reached.iter().any(|r| r.link == link) {
                continue;
            }
            if let Some(evidence) = link.reached(&run) {
                if link == Link::DnsUpdated {
                    self.update_wall = Some(self.started.elapsed());
                }
                self.queue.push_back(link);
                self.reached.push(StopView {
                    link,
                    number: link.number(),
                    t_ms,
                    evidence,
                    narration: narration::of(link),
                });
            }
        }
        !self.queue.is_empty()
    }

    /// The next link to stop at, made the current stop.
    pub fn next_stop(&mut self) -> Option<StopView> {
        let link = self.queue.pop_front()?;
        let view = self.reached.iter().find(|r| r.link == link).cloned()?;
        self.current = Some(view.clone());
        Some(view)
    }

    /// Records a repair of `dns` (names) at `t_ms`; returns whether it was correct.
    pub fn repaired(&mut self, plan: &Plan, who: &str, dns: &[String], t_ms: u64) -> bool {
        let correct = plan.dns.iter().any(|d| d.stale && dns.contains(&d.name));
        for name in dns {
            self.repaired.insert(name.clone(), t_ms);
        }
        self.record(plan, who, "repair_dns", dns, correct, t_ms);
        correct
    }

    /// Records a restart of the agents of `servers` at `t_ms`; returns whether it was correct.
    pub fn restarted(&mut self, plan: &Plan, who: &str, servers: &[String], t_ms: u64) -> bool {
        let correct = plan
            .servers
            .iter()
            .any(|s| s.stale && servers.contains(&s.id));
        for id in servers {
            self.restarted.insert(id.clone(), t_ms);
        }
        self.record(plan, who, "restart_agents", servers, correct, t_ms);
        correct
    }

    fn record(
        &mut self,
        plan: &Plan,
        who: &str,
        action: &str,
        targets: &[String],
        correct: bool,
        t_ms: u64,
    ) {
        self.actions.push(Action {
            t_ms,
            who: who.to_owned(),
            action: action.to_owned(),
            targets: targets.to_vec(),
            correct,
        });
        let wall = self.started.elapsed();
        if correct && self.detect_ms.is_none() {
            (self.detect_ms, self.detect_wall) = (Some(t_ms), Some(wall));
        }
        if self.mitigate_ms.is_none() && self.mitigated(plan) {
            (self.mitigate_ms, self.mitigate_wall) = (Some(t_ms), Some(wall));
        }
    }

    /// Every stale DNS server repaired, and every stale agent restarted at or after its DNS
    /// server's repair (restarted before, it resolves the dead address again).
    fn mitigated(&self, plan: &Plan) -> bool {
        let stale_dns: Vec<_> = plan.dns.iter().filter(|d| d.stale).collect();
        !stale_dns.is_empty()
            && stale_dns
                .iter()
                .all(|d| self.repaired.contains_key(&d.name))
            && (plan.servers.iter().filter(|s| s.stale)).all(|s| {
                let repaired = self
                    .repaired
                    .get(&s.dns_server)
                    .copied()
                    .unwrap_or(u64::MAX);
                self.restarted.get(&s.id).is_some_and(|t| *t >= repaired)
            })
    }

    /// The end of the workshop, in words: time to detect and to mitigate beside 2012's, and
    /// whether any volume got stuck.
    pub fn outcome(&self, state: &RunState) -> String {
        let since_update = |t: u64| {
            let update = state
                .injected_at(crate::kinds::StepKind::DnsUpdate)
                .unwrap_or(0);
            format!("{:.1} s", t.saturating_sub(update) as f64 / 1000.0)
        };
        let first_stuck = state
            .servers
            .values()
            .filter_map(|s| s.first_stuck_at_ms)
            .min();
        // Lab time says how far the outage had gone; wall time, how long the room took.
        let room = |wall: Option<Duration>| {
            let took =
                (wall.unwrap_or_default()).saturating_sub(self.update_wall.unwrap_or_default());
            format!("{:.0} s on the room's clock", took.as_secs_f64())
        };
        let mut out = String::new();
        match self.detect_ms {
            Some(t) => {
                let _ = write!(
                    out,
                    "time to detect: {} of lab time after the DNS update ({})",
                    since_update(t),
                    room(self.detect_wall)
                );
            }
            None => out.push_str("time to detect: the room took no correct action"),
        }
        match self.mitigate_ms {
            Some(t) => {
                let _ = write!(
                    out,
                    "; time to mitigate: {} ({})",
                    since_update(t),
                    room(self.mitigate_wall)
                );
                match first_stuck {
                    Some(s) if s <= t => {
                        let _ = write!(
                            out,
                            " ({:.1} s after the first stuck volume)",
                            (t - s) as f64 / 1000.0
                        );
                    }
                    _ => {}
                }
            }
            None => out.push_str("; not mitigated by the room (the timeline's repair did it)"),
        }
        let _ = write!(
            out,
            "; 2012: {} to the root cause. ",
            narration::ROOT_CAUSE_2012
        );
        let v = &state.volumes;
        if v.stuck_peak == 0 {
            out.push_str("No volume got stuck");
            if self.mitigate_ms.is_some() {
                out.push_str(": you fixed it before the fleet stuck.");
            } else {
                out.push('.');
            }
        } else {
            let _ = write!(
                out,
                "{} volume(s) got stuck at the worst (first at t={:.1}s), as in 2012.",
                v.stuck_peak,
                first_stuck.unwrap_or(0) as f64 / 1000.0
            );
        }
        out
    }

    /// Everything a stop prints on the terminal: the link, this run's evidence, 2012, the
    /// monitors, the commands that work now and the question.
    pub fn stop_text(
        &self,
        stop: &StopView,
        panel: &monitors::Panel,
        commands: &[String],
    ) -> String {
        let n = &stop.narration;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n=== stop {}/{}: {} (t={:.1}s, run frozen) ===",
            stop.number,
            Link::ALL.len(),
            n.title,
            stop.t_ms as f64 / 1000.0
        );
        let _ = writeln!(out, "this run:  {}", stop.evidence);
        let _ = writeln!(out, "2012 ({}): {}", n.when_2012, n.then_2012);
        let _ = writeln!(out, "monitors now:");
        out.push_str(&panel.render());
        let _ = writeln!(out, "look for yourself:");
        for c in commands {
            let _ = writeln!(out, "  {c}");
        }
        let _ = writeln!(out, "question: {}", n.question);
        out
    }
}

/// The DNS servers a request names: every one for an empty list or `all`; an unknown name is an
/// error naming the known ones.
pub fn pick_dns(plan: &Plan, asked: &[String]) -> Result<Vec<String>, RequestError> {
    let known: BTreeSet<&str> = plan.dns.iter().map(|d| d.name.as_str()).collect();
    if asked.is_empty() || asked.iter().any(|a| a == "all") {
        return Ok(known.iter().map(|s| (*s).to_owned()).collect());
    }
    if let Some(a) = asked.iter().find(|a| !known.contains(a.as_str())) {
        return Err(RequestError::UnknownDns {
            name: a.clone(),
            known: known.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    Ok(asked.to_vec())
}

/// The servers whose agents a request names (`all`, or ids); an unknown id is an error.
pub fn pick_servers(plan: &Plan, asked: &[String]) -> Result<Vec<String>, RequestError> {
    if asked.is_empty() {
        return Err(RequestError::NoServersNamed);
    }
    if asked.iter().any(|a| a == "all") {
        return Ok(plan.servers.iter().map(|s| s.id.clone()).collect());
    }
    if let Some(a) = (asked.iter()).find(|a| !plan.servers.iter().any(|s| &s.id == *a)) {
        return Err(RequestError::UnknownServer {
            name: a.clone(),
            last: plan.servers.last().map_or(String::new(), |s| s.id.clone()),
        });
    }
    Ok(asked.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::links::tests::plan;
    use super::*;

    fn session() -> Session {
        Session::with(
            Options {
                auto: None,
                speed: 1.0,
            },
            48 << 20,
            0.95,
        )
    }

    fn stale_ids(plan: &Plan) -> Vec<String> {
        plan.servers
            .iter()
            .filter(|s| s.stale)
            .map(|s| s.id.clone())
            .collect()
    }

    #[test]
    fn detection_is_the_first_correct_action_and_mitigation_needs_restarts_after_the_repair() {
        let plan = plan();
        let mut s = session();
        assert!(
            !s.repaired(&plan, "ann", &["dns-a".into()], 5_000),
            "dns-a was not stale"
        );
        assert_eq!(s.detect_ms, None);
        assert!(s.restarted(&plan, "bob", &stale_ids(&plan), 6_000));
        assert_eq!(s.detect_ms, Some(6_000));
        assert!(s.repaired(&plan, "ann", &["dns-b".into()], 7_000));
        assert_eq!(
            s.mitigate_ms, None,
            "restarted before the repair: they resolve the dead address again"
        );
        s.restarted(&plan, "bob", &stale_ids(&plan), 8_000);
        assert_eq!(s.mitigate_ms, Some(8_000));
        assert_eq!(s.actions.len(), 4);
    }

    #[test]
    fn a_link_is_stopped_at_once_in_the_order_reached() {
        let plan = plan();
        let mut state = RunState::with_servers(plan.servers.iter().map(|s| s.id.as_str()));
        let mut s = session();
        assert!(!s.observe(&plan, &state, 1_000));
        state
            .steps
            .push((crate::kinds::StepKind::ReplaceCollector, 4_000));
        state.steps.push((crate::kinds::StepKind::DnsUpdate, 4_000));
        assert!(s.observe(&plan, &state, 4_000));
        assert_eq!(s.next_stop().map(|v| v.link), Some(Link::CollectorReplaced));
        assert_eq!(s.next_stop().map(|v| v.link), Some(Link::DnsUpdated));
        assert!(s.next_stop().is_none());
        assert!(!s.observe(&plan, &state, 5_000), "each link once");
    }

    #[test]
    fn requests_name_known_servers_or_all() {
        let plan = plan();
        assert_eq!(pick_dns(&plan, &[]).unwrap(), ["dns-a", "dns-b"]);
        assert!(
            pick_dns(&plan, &["dns-z".into()])
                .unwrap_err()
                .to_string()
                .contains("dns-a, dns-b")
        );
        assert_eq!(pick_servers(&plan, &["all".into()]).unwrap().len(), 4);
        assert!(
            pick_servers(&plan, &["s999".into()])
                .unwrap_err()
                .to_string()
                .contains("s000 to s003")
        );
        assert!(pick_servers(&plan, &[]).is_err());
    }

    #[test]
    fn next_away_from_a_stop_is_refused_with_the_time() {
        assert_eq!(
            RequestError::NotAtStop { t_ms: 12_340 }.to_string(),
            "the run is not at a stop (t=12.3s); it stops at the next link by itself"
        );
    }
}

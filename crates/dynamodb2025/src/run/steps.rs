//! The timeline's steps, each done to the running lab through the same APIs an operator has:
//! the planner's, enactors' and lease manager's admin API (`/control`), the plan store, the DNS
//! servers' admin API, the supervisor (a restart). Each is journaled as `fault_injected` with what exactly was done.

use std::net::SocketAddr;
use std::time::Duration;

use outage_lab_dns_automation::client::PlanStore;
use outage_lab_dns_automation::control::Control;
use outage_lab_dns_automation::repair;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::lag::{LagMeter, TIMELINE_STEPS};
use outage_lab_engine::terminal::say;
use outage_lab_lease_manager::manager::Control as LeaseControl;
use outage_lab_proto::EngineEvent;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use crate::scenario::{Scenario, Step};

/// Plays the timeline to its end, or until `stop`.
/// How late each step came after its time goes to `lag`.
pub(super) async fn play(
    scenario: &Scenario,
    fleet: &Fleet,
    stop: &CancellationToken,
    lag: &mut LagMeter,
) -> Result<(), HarnessError> {
    let start = fleet.sup.clock().now();
    for (at, step) in scenario.steps() {
        let due = start + Duration::from(at);
        if !wait_until(fleet, due, stop).await {
            return Ok(());
        }
        let late = fleet.sup.clock().now().saturating_sub(due);
        lag.late(
            TIMELINE_STEPS,
            u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
        );
        let detail = apply(fleet, &scenario.service.endpoint, &step).await?;
        // Lab time since the run began, as the journal and the other lines count it.
        let t = fleet.sup.now_ms() as f64 / 1000.0;
        say(&format!("t={t:>5.1}s  {}: {detail}", step.name()));
        fleet.sup.emit(EngineEvent::FaultInjected {
            action: step.name().to_owned(),
            detail,
        });
    }
    wait_until(fleet, start + Duration::from(scenario.duration), stop).await;
    Ok(())
}

/// Sleeps until lab time `at`; false if `stop` came first.
async fn wait_until(fleet: &Fleet, at: Duration, stop: &CancellationToken) -> bool {
    let deadline = fleet.sup.clock().instant_at(at);
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep_until(deadline.into()) => true,
    }
}

/// Does `step`; what exactly was done, in words.
async fn apply(fleet: &Fleet, endpoint: &str, step: &Step) -> Result<String, HarnessError> {
    let failed = |detail: String| HarnessError::Fault {
        action: step.name().to_owned(),
        detail,
    };
    match step {
        Step::SlowEnactor {
            enactor,
            delay,
            jitter,
        } => {
            let control = Control {
                enabled: true,
                stall: *delay,
                jitter: *jitter,
            };
            put_control(fleet, enactor, control).await.map_err(failed)?;
            Ok(format!(
                "{enactor}: every write now stalls {delay} (give or take {jitter}) before it goes through"
            ))
        }
        Step::DisableAutomation => {
            for name in fleet.controls.keys() {
                let current = get_control(fleet, name).await.map_err(failed)?;
                let off = Control {
                    enabled: false,
                    ..current
                };
                put_control(fleet, name, off).await.map_err(failed)?;
            }
            let names: Vec<&str> = fleet.controls.keys().map(String::as_str).collect();
            Ok(format!(
                "turned off {}: no new plan, no new write",
                names.join(", ")
            ))
        }
        Step::ManualRepair => {
            let store = PlanStore::new(fleet.http.clone(), fleet.store);
            let restored =
                repair::manual_repair(&store, &fleet.http, &fleet.dns_admins(), endpoint).await;
            match restored.map_err(|e| failed(e.to_string()))? {
                Some(generation) => Ok(format!(
                    "{endpoint} restored from the newest plan {generation} on every DNS server"
                )),
                None => Err(failed(
                    "the plan store holds no plan to restore from".into(),
                )),
            }
        }
        Step::ThrottleRenewals { per_second } => {
            let throttle = LeaseControl {
                throttle: Some(*per_second),
            };
            let at = fleet
                .lease_manager
                .ok_or_else(|| failed(NO_MANAGER.into()))?;
            put_json(&fleet.http, at, &throttle).await.map_err(failed)?;
            Ok(format!(
                "the lease manager admits {per_second} renewals a second; the rest are told to come back later"
            ))
        }
        Step::RestartLeaseManager => {
            let at = fleet
                .lease_manager
                .ok_or_else(|| failed(NO_MANAGER.into()))?;
            let kept: LeaseControl = get_json(&fleet.http, at).await.map_err(failed)?;
            fleet.restart_lease_manager().await?;
            put_json(&fleet.http, at, &kept).await.map_err(failed)?;
            Ok(match kept.throttle {
                Some(n) => format!(
                    "the lease manager killed and started again, its queue lost; its throttle ({n} a second) kept"
                ),
                None => "the lease manager killed and started again, its queue lost".into(),
            })
        }
    }
}

const NO_MANAGER: &str = "this run has no lease manager (the scenario has no `leases:`)";

async fn get_control(fleet: &Fleet, name: &str) -> Result<Control, String> {
    get_json(&fleet.http, fleet.controls[name]).await
}

async fn put_control(fleet: &Fleet, name: &str, control: Control) -> Result<(), String> {
    let Some(addr) = fleet.controls.get(name) else {
        return Err(format!("no process named {name} in this run"));
    };
    put_json(&fleet.http, *addr, &control).await
}

/// What `GET /control` of the process at `addr` says.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    addr: SocketAddr,
) -> Result<T, String> {
    let url = format!("http://{addr}/control");
    let answer = (http.get(&url).send().await).map_err(|e| format!("GET {url}: {e}"))?;
    answer
        .error_for_status()
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

/// Sets the process at `addr` to `control` (`PUT /control`).
async fn put_json(
    http: &reqwest::Client,
    addr: SocketAddr,
    control: &impl serde::Serialize,
) -> Result<(), String> {
    let url = format!("http://{addr}/control");
    let answer = http.put(&url).json(control).send().await;
    let answer = answer.map_err(|e| format!("PUT {url}: {e}"))?;
    answer
        .error_for_status()
        .map_err(|e| format!("PUT {url}: {e}"))?;
    Ok(())
}

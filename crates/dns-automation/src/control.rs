//! What a step or an operator sets on a running planner or enactor, over its admin API:
//! whether it works at all (`disable_automation`, as AWS did worldwide) and how long each of its
//! writes stalls (`slow_enactor`).
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `ok` |
//! | `GET /control` | the [`Control`] in force |
//! | `PUT /control` | puts a [`Control`] in force (every field; missing ones take the defaults); answers it |

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The settings of a running planner or enactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Whether it starts new work (a round in progress finishes).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// How long each of its writes stalls before it goes through (zero: none).
    #[serde(default = "no_stall")]
    pub stall: HumanDuration,
    /// Each stall is longer or shorter than `stall` by up to this much, drawn from the role's
    /// seed (real delays vary; zero: every stall is `stall` exactly).
    #[serde(default = "no_stall")]
    pub jitter: HumanDuration,
}

fn enabled() -> bool {
    true
}

fn no_stall() -> HumanDuration {
    HumanDuration::millis(0)
}

impl Default for Control {
    /// Enabled, no stall.
    fn default() -> Self {
        Self {
            enabled: enabled(),
            stall: no_stall(),
            jitter: no_stall(),
        }
    }
}

impl Control {
    /// How long the next write stalls: `stall`, moved by up to `jitter` either way (never below
    /// zero), drawn from `rng`.
    pub fn next_stall(&self, rng: &mut impl rand::Rng) -> Duration {
        let (stall, jitter) = (self.stall.as_millis(), self.jitter.as_millis());
        if stall == 0 {
            return Duration::ZERO;
        }
        let moved = rng.random_range(0..=2 * jitter);
        Duration::from_millis((stall + moved).saturating_sub(jitter))
    }
}

/// The admin routes over `control`, the sender whose receivers the role's loop reads.
pub fn router(control: watch::Sender<Control>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/control", get(current).put(put))
        .with_state(control)
}

async fn current(State(control): State<watch::Sender<Control>>) -> Json<Control> {
    Json(*control.borrow())
}

async fn put(
    State(control): State<watch::Sender<Control>>,
    Json(new): Json<Control>,
) -> Json<Control> {
    control.send_replace(new);
    Json(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_is_written_in_words_and_a_missing_field_takes_its_default() {
        let slowed: Control = serde_json::from_str(r#"{"stall":"2s"}"#).expect("parses");
        assert_eq!(slowed.stall, HumanDuration::secs(2));
        assert!(slowed.enabled);
        let off: Control = serde_json::from_str(r#"{"enabled":false}"#).expect("parses");
        assert_eq!(off.jitter, HumanDuration::millis(0));
        assert_eq!(off.stall, HumanDuration::millis(0));
        let wrong = serde_json::from_str::<Control>(r#"{"stal":"2s"}"#);
        assert!(wrong.is_err(), "a misspelled field is refused");
    }

    #[test]
    fn a_jittered_stall_stays_within_its_bounds_and_follows_the_seed() {
        use rand::SeedableRng;
        let slowed = Control {
            stall: HumanDuration::millis(1300),
            jitter: HumanDuration::millis(150),
            ..Control::default()
        };
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|_| slowed.next_stall(&mut rng).as_millis())
                .collect::<Vec<_>>()
        };
        let stalls = draw(7);
        assert!(
            stalls.iter().all(|ms| (1150..=1450).contains(ms)),
            "{stalls:?}"
        );
        assert!(stalls.iter().any(|ms| *ms < 1200) && stalls.iter().any(|ms| *ms > 1400));
        assert_eq!(stalls, draw(7), "the same seed, the same stalls");
        assert_eq!(
            Control::default().next_stall(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1)),
            Duration::ZERO
        );
    }
}

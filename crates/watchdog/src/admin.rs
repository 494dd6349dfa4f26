//! The admin API: the harness tells the watchdog what to watch.
//!
//! * `PUT /targets` — JSON list of [`Target`]s; replaces the watched set. The harness sends the
//!   complete list every time a process starts or restarts. Changes state, so it is guarded:
//!   with no `admin_token` only loopback peers may call it (403 otherwise); with a token, the
//!   request must carry `Authorization: Bearer <token>` (401 otherwise).
//! * `GET /targets` — the current list.
//! * `GET /health` — counters, as [`Health`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use outage_lab_ebs_events::wire::Target;
use outage_lab_proto::access;
use serde::{Deserialize, Serialize};

/// Largest accepted request body.
const BODY_LIMIT: usize = 1 << 20;

/// The answer to `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Processes in the watched set.
    pub targets: usize,
    /// Sweeps done since start (sweeps are skipped while nothing is watched).
    pub sweeps: u64,
    /// Leak alarms raised since start.
    pub leak_alarms: u64,
    /// Aggregate alarms raised since start.
    pub aggregate_alarms: u64,
}

/// State shared by the admin handlers and the sweep loop.
#[derive(Debug)]
pub(crate) struct AdminState {
    admin_token: Option<String>,
    /// The watched set and a version that changes on every `PUT`, so the sweep loop only
    /// reconciles when something changed.
    targets: Mutex<(u64, Vec<Target>)>,
    pub(crate) sweeps: AtomicU64,
    pub(crate) leak_alarms: AtomicU64,
    pub(crate) aggregate_alarms: AtomicU64,
}

impl AdminState {
    pub(crate) fn new(admin_token: Option<String>) -> Self {
        Self {
            admin_token,
            targets: Mutex::new((0, Vec::new())),
            sweeps: AtomicU64::new(0),
            leak_alarms: AtomicU64::new(0),
            aggregate_alarms: AtomicU64::new(0),
        }
    }

    /// The current version and list. The lock only guards a plain Vec swap, so a poisoned lock
    /// still holds a consistent value.
    pub(crate) fn targets(&self) -> (u64, Vec<Target>) {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace_targets(&self, targets: Vec<Target>) {
        let mut guard = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0 += 1;
        guard.1 = targets;
    }

    fn health(&self) -> Health {
        Health {
            targets: self.targets().1.len(),
            sweeps: self.sweeps.load(Ordering::Relaxed),
            leak_alarms: self.leak_alarms.load(Ordering::Relaxed),
            aggregate_alarms: self.aggregate_alarms.load(Ordering::Relaxed),
        }
    }
}

/// The admin router. Serve it with connect info (`SocketAddr`) so the loopback check can see
/// the peer.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/targets", get(get_targets).put(put_targets))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn health(State(state): State<Arc<AdminState>>) -> axum::Json<Health> {
    axum::Json(state.health())
}

async fn get_targets(State(state): State<Arc<AdminState>>) -> axum::Json<Vec<Target>> {
    axum::Json(state.targets().1)
}

async fn put_targets(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Authorise before looking at the body, so an outsider learns nothing from parse errors.
    if let Err(denied) = authorize(state.admin_token.as_deref(), peer, &headers) {
        return denied.into_response();
    }
    let targets: Vec<Target> = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid target list: {e}\n"),
            )
                .into_response();
        }
    };
    if let Err(msg) = validate_targets(&targets) {
        return (StatusCode::UNPROCESSABLE_ENTITY, format!("{msg}\n")).into_response();
    }
    tracing::info!(targets = targets.len(), "watched set replaced");
    state.replace_targets(targets.clone());
    axum::Json(targets).into_response()
}

/// Why a state-changing request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// A token is configured and the request did not carry it.
    Unauthorized,
    /// No token is configured and the peer is not on loopback.
    Forbidden,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response(),
            Denied::Forbidden => (
                StatusCode::FORBIDDEN,
                "only loopback clients may change targets (configure admin_token to allow others)\n",
            )
                .into_response(),
        }
    }
}

/// The shared admin rule (`outage_lab_proto::access`), with this API's refusal messages.
pub(crate) fn authorize(
    token: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), Denied> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    access::check(token, peer.ip(), authorization).map_err(|denied| match denied {
        access::Denied::NotLoopback => Denied::Forbidden,
        access::Denied::BadToken => Denied::Unauthorized,
    })
}

/// Rejects lists the alarms could not make sense of.
pub(crate) fn validate_targets(targets: &[Target]) -> Result<(), String> {
    let mut pids = HashSet::new();
    let mut roles = HashSet::new();
    let mut budgets: HashMap<&str, u64> = HashMap::new();
    for t in targets {
        if t.server.is_empty() {
            return Err(format!("target pid {}: server must not be empty", t.pid));
        }
        if t.pid == 0 {
            return Err(format!(
                "target {} {}: pid 0 is not a process",
                t.server, t.role
            ));
        }
        if t.budget_bytes == 0 {
            return Err(format!(
                "target {} {}: budget_bytes must not be 0",
                t.server, t.role
            ));
        }
        // A pid names one process on one reader's machine; launchers' pids may repeat.
        if !pids.insert((t.reader.as_ref().map(|r| r.url.as_str()), t.pid)) {
            return Err(format!("pid {} is listed twice", t.pid));
        }
        if !roles.insert((t.server.as_str(), t.role)) {
            return Err(format!("server {} has two {} targets", t.server, t.role));
        }
        let budget = *budgets.entry(&t.server).or_insert(t.budget_bytes);
        if budget != t.budget_bytes {
            return Err(format!(
                "server {}: its targets disagree on budget_bytes ({budget} vs {})",
                t.server, t.budget_bytes
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use outage_lab_ebs_events::ProcessRole;

    fn peer(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header value"),
        );
        h
    }

    #[test]
    fn without_a_token_only_loopback_peers_may_change_targets() {
        let none = HeaderMap::new();
        assert_eq!(authorize(None, peer("127.0.0.1:5000"), &none), Ok(()));
        assert_eq!(authorize(None, peer("127.3.4.5:5000"), &none), Ok(()));
        assert_eq!(authorize(None, peer("[::1]:5000"), &none), Ok(()));
        assert_eq!(
            authorize(None, peer("[::ffff:127.0.0.1]:5000"), &none),
            Ok(())
        );
        assert_eq!(
            authorize(None, peer("10.0.0.7:5000"), &none),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            authorize(None, peer("[2001:db8::1]:5000"), &none),
            Err(Denied::Forbidden)
        );
    }

    #[test]
    fn with_a_token_the_bearer_header_is_required_from_everyone() {
        let t = Some("s3cret");
        let lo = peer("127.0.0.1:5000");
        assert_eq!(
            authorize(t, lo, &HeaderMap::new()),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            authorize(t, lo, &bearer("Bearer nope")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            authorize(t, lo, &bearer("s3cret")),
            Err(Denied::Unauthorized)
        );
        assert_eq!(authorize(t, lo, &bearer("Bearer s3cret")), Ok(()));
        assert_eq!(
            authorize(t, peer("10.0.0.7:5000"), &bearer("Bearer s3cret")),
            Ok(())
        );
    }

    #[test]
    fn target_lists_that_make_no_sense_are_rejected() {
        let t = |server: &str, role, pid, budget_bytes| Target {
            server: server.into(),
            role,
            pid,
            budget_bytes,
            stale: false,
            cache_url: None,
            tree: false,
            reader: None,
        };
        let (a, s) = (ProcessRole::Agent, ProcessRole::Storage);
        assert!(validate_targets(&[]).is_ok());
        assert!(
            validate_targets(&[t("s0", a, 1, 10), t("s0", s, 2, 10), t("s1", a, 3, 20)]).is_ok()
        );
        assert!(validate_targets(&[t("s0", a, 1, 10), t("s1", a, 1, 10)]).is_err());
        assert!(validate_targets(&[t("s0", a, 1, 10), t("s0", a, 2, 10)]).is_err());
        assert!(validate_targets(&[t("s0", a, 1, 10), t("s0", s, 2, 11)]).is_err());
        assert!(validate_targets(&[t("s0", a, 0, 10)]).is_err());
        assert!(validate_targets(&[t("", a, 1, 10)]).is_err());
        assert!(validate_targets(&[t("s0", a, 1, 0)]).is_err());
        // Two containers' launchers may each have a pid 7.
        let on = |url: &str, target: Target| Target {
            reader: Some(outage_lab_proto::wire::LauncherReader {
                url: url.into(),
                name: "agent".into(),
            }),
            ..target
        };
        let (x, y) = (
            on("http://x", t("s0", a, 7, 10)),
            on("http://y", t("s1", a, 7, 10)),
        );
        assert!(validate_targets(&[x.clone(), y]).is_ok());
        assert!(validate_targets(&[x, on("http://x", t("s1", a, 7, 10))]).is_err());
    }
}

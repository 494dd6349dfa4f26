//! The workshop's control API: what `outage-lab ctl RUN_DIR` and the live page's buttons call.
//! Loopback only, and every call needs the run's token (`admin-token` in the run directory,
//! `Authorization: Bearer`), checked by the one access rule every admin API uses.
//!
//! The routes only carry requests to the driver, which owns the fleet; each answer is the
//! driver's. Routes:
//! - `GET  /workshop/status`: the current stop, the links reached, the monitors, what was done;
//! - `POST /workshop/next`: go on from the current stop;
//! - `POST /workshop/repair`: `{"who": .., "targets": ["dns-c"]}` (empty or `all`: every one);
//! - `POST /workshop/restart`: `{"who": .., "targets": ["s003", ..]}` (or `all`).

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The file in the run directory that says where a live workshop's control API is.
pub const FILE: &str = "workshop.json";

/// What `workshop.json` holds (the token is in `admin-token` beside it, readable by its owner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Located {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The harness's pid (a file left by a run that ended names a dead one).
    pub pid: u32,
}

/// A participant's request, carried to the driver.
#[derive(Debug)]
pub enum Request {
    /// Where the run is.
    Status,
    /// Go on from the current stop.
    Next { who: String },
    /// Point the collector's record at the replacement on these DNS servers.
    Repair { who: String, targets: Vec<String> },
    /// Restart these servers' agents.
    Restart { who: String, targets: Vec<String> },
}

/// A request with where its answer goes.
#[derive(Debug)]
pub struct Asked {
    /// What is asked.
    pub request: Request,
    /// The driver's answer: a JSON body, or why it was refused.
    pub reply: oneshot::Sender<Result<serde_json::Value, RequestError>>,
}

/// Why the driver refused a participant's request; the API answers 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `next` while the run is not held at a stop.
    #[error(
        "the run is not at a stop (t={:.1}s); it stops at the next link by itself",
        *.t_ms as f64 / 1000.0
    )]
    NotAtStop {
        /// The lab clock when it was asked, in milliseconds.
        t_ms: u64,
    },
    /// A repair naming a DNS server the run does not have.
    #[error("no DNS server {name:?} in this run; it has {}", .known.join(", "))]
    UnknownDns {
        /// The name asked for.
        name: String,
        /// The run's DNS servers.
        known: Vec<String>,
    },
    /// A restart naming no server.
    #[error("name the servers whose agents to restart (ids like s003, or all)")]
    NoServersNamed,
    /// A restart naming a server the run does not have.
    #[error("no server {name:?} in this run; its servers are s000 to {last}")]
    UnknownServer {
        /// The id asked for.
        name: String,
        /// The run's last server id.
        last: String,
    },
}

/// The body of a POST.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// Who acts (shown in the journal).
    #[serde(default)]
    pub who: Option<String>,
    /// What to act on.
    #[serde(default)]
    pub targets: Vec<String>,
}

#[derive(Clone)]
struct Api {
    token: String,
    tx: mpsc::UnboundedSender<Asked>,
}

/// The routes, sending every request into `tx`. Merged into the live page's server too.
pub fn router(token: String, tx: mpsc::UnboundedSender<Asked>) -> Router {
    Router::new()
        .route("/workshop/status", get(status))
        .route("/workshop/next", post(next))
        .route("/workshop/repair", post(repair))
        .route("/workshop/restart", post(restart))
        .with_state(Api { token, tx })
}

/// Serves `router` on a free loopback port until `shutdown`; writes `workshop.json`.
pub async fn start(
    run_dir: &Path,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let located = Located {
        url: format!("http://{addr}"),
        pid: std::process::id(),
    };
    std::fs::write(run_dir.join(FILE), serde_json::to_vec_pretty(&located)?)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = axum::serve(listener, router) => {}
            () = shutdown.cancelled() => {}
        }
    });
    Ok(addr)
}

async fn status(State(api): State<Api>, headers: HeaderMap) -> Response {
    ask(&api, &headers, Request::Status).await
}

async fn next(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Option<axum::Json<Body>>,
) -> Response {
    let who = who(body.as_ref().map(|b| &b.0));
    ask(&api, &headers, Request::Next { who }).await
}

async fn repair(
    State(api): State<Api>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Body>,
) -> Response {
    let (who, targets) = (who(Some(&body)), body.targets);
    ask(&api, &headers, Request::Repair { who, targets }).await
}

async fn restart(
    State(api): State<Api>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Body>,
) -> Response {
    let (who, targets) = (who(Some(&body)), body.targets);
    ask(&api, &headers, Request::Restart { who, targets }).await
}

fn who(body: Option<&Body>) -> String {
    body.and_then(|b| b.who.clone())
        .filter(|w| !w.trim().is_empty())
        .unwrap_or_else(|| "someone".to_owned())
}

/// Checks the token, hands the request to the driver and answers with its reply.
async fn ask(api: &Api, headers: &HeaderMap, request: Request) -> Response {
    // Both servers that carry these routes bind loopback only; with a token the peer does not
    // matter to the rule, the token does.
    let peer = std::net::Ipv4Addr::LOCALHOST.into();
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if outage_lab_proto::access::check(Some(&api.token), peer, authorization).is_err() {
        let message = "this needs the run's token: Authorization: Bearer <RUN_DIR/admin-token>";
        return error(StatusCode::UNAUTHORIZED, message);
    }
    let (reply, answer) = oneshot::channel();
    if api.tx.send(Asked { request, reply }).is_err() {
        return error(StatusCode::GONE, "the run has ended");
    }
    match answer.await {
        Ok(Ok(body)) => axum::Json(body).into_response(),
        Ok(Err(why)) => error(StatusCode::BAD_REQUEST, &why.to_string()),
        Err(_) => error(StatusCode::GONE, "the run has ended"),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (status, axum::Json(body)).into_response()
}

//! The API's HTTP routes and the admission every call goes through: known customer, throttle,
//! a place in the queue, a worker.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use outage_lab_proto::access;
use serde::Deserialize;
use std::net::SocketAddr;
use tokio::sync::oneshot;

use super::{Api, CallError, CallOutcome, Command, MAX_BODY_BYTES, ThrottleConfig, VolumeView};

/// `GET /api/volumes?customer=C`, `POST /api/volumes`, `POST /api/volumes/{id}/attach`.
pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/volumes", get(describe).post(create))
        .route("/api/volumes/{id}/attach", post(attach))
        .route("/admin/throttle", get(throttle).put(switch_throttle))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribeQuery {
    customer: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    customer: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachBody {
    customer: String,
    instance: String,
}

async fn describe(
    State(api): State<Arc<Api>>,
    query: Result<Query<DescribeQuery>, QueryRejection>,
) -> Result<Response, Response> {
    let Query(q) = query.map_err(|e| malformed(e.status(), e.body_text(), "?customer=NAME"))?;
    let served = Arc::clone(&api);
    let customer = q.customer.clone();
    Ok(admitted(&api, &customer, async move {
        let mine: Vec<VolumeView> = served
            .views
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|v| v.customer == q.customer)
            .cloned()
            .collect();
        Json(mine).into_response()
    })
    .await)
}

async fn create(
    State(api): State<Arc<Api>>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Response, Response> {
    let Json(body) =
        body.map_err(|e| malformed(e.status(), e.body_text(), r#"{"customer": NAME}"#))?;
    let customer = body.customer.clone();
    let command = |reply| Command::Create { customer, reply };
    Ok(admitted(
        &api,
        &body.customer,
        through_loop(&api, command, StatusCode::CREATED),
    )
    .await)
}

async fn attach(
    State(api): State<Arc<Api>>,
    Path(volume): Path<String>,
    body: Result<Json<AttachBody>, JsonRejection>,
) -> Result<Response, Response> {
    let expected = r#"{"customer": NAME, "instance": ID}"#;
    let Json(body) = body.map_err(|e| malformed(e.status(), e.body_text(), expected))?;
    let (customer, instance) = (body.customer.clone(), body.instance);
    let command = |reply| Command::Attach {
        customer,
        volume,
        instance,
        reply,
    };
    Ok(admitted(
        &api,
        &body.customer,
        through_loop(&api, command, StatusCode::OK),
    )
    .await)
}

/// `GET /admin/throttle`: the policy in force.
async fn throttle(State(api): State<Arc<Api>>) -> Json<ThrottleConfig> {
    Json(
        api.gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .config(),
    )
}

/// `PUT /admin/throttle`: switches the throttling policy now (buckets start full), as 2012 did
/// mid-event. Loopback peers only, or the bearer token when one is configured.
async fn switch_throttle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<ThrottleConfig>, JsonRejection>,
) -> Result<Json<ThrottleConfig>, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    access::check(api.admin_token.as_deref(), peer.ip(), authorization).map_err(|denied| {
        let (status, why) = match denied {
            access::Denied::NotLoopback => (StatusCode::FORBIDDEN, "only loopback clients may change the throttle (configure admin_token to allow others)"),
            access::Denied::BadToken => (StatusCode::UNAUTHORIZED, "missing or wrong bearer token"),
        };
        refuse(status, why.into())
    })?;
    let expected = r#"{"policy": "none" | "global" | "per_customer", "rate": N, "burst": N}"#;
    let Json(config) = body.map_err(|e| malformed(e.status(), e.body_text(), expected))?;
    config
        .validate()
        .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let now = api.now();
    api.gate
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .switch(config, now);
    tracing::info!(
        policy = config.policy.name(),
        rate = config.rate,
        burst = config.burst,
        "API throttle switched"
    );
    Ok(Json(config))
}

/// A request the API could not read: what was wrong and what it expects.
fn malformed(status: StatusCode, what: String, expected: &str) -> Response {
    refuse(status, format!("{what}; expected {expected}"))
}

/// Sends the command `make` builds to the control loop and answers with its reply.
async fn through_loop(
    api: &Api,
    make: impl FnOnce(oneshot::Sender<Result<VolumeView, CallError>>) -> Command,
    ok: StatusCode,
) -> Response {
    let (reply, answer) = oneshot::channel();
    let sent = api.commands.send(make(reply)).await;
    answered(sent.is_ok(), answer, ok).await
}

/// The control loop's answer to a command, as an HTTP response.
async fn answered(
    sent: bool,
    answer: oneshot::Receiver<Result<VolumeView, CallError>>,
    ok: StatusCode,
) -> Response {
    let result = match (sent, answer.await) {
        (true, Ok(result)) => result,
        _ => Err(CallError::Stopping),
    };
    match result {
        Ok(view) => (ok, Json(view)).into_response(),
        Err(e) => {
            let status = match e {
                CallError::UnknownVolume(_) => StatusCode::NOT_FOUND,
                CallError::NotOwner { .. } => StatusCode::FORBIDDEN,
                CallError::Stuck(_) | CallError::NoCapacity => StatusCode::CONFLICT,
                CallError::Place(_) => StatusCode::BAD_GATEWAY,
                CallError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            };
            refuse(status, e.to_string())
        }
    }
}

/// Runs `serve` for `customer` once the call is admitted: a known customer, past the throttle,
/// with a place in the queue and then a worker, held for the service time.
async fn admitted(api: &Api, customer: &str, serve: impl Future<Output = Response>) -> Response {
    if !api.config.customers.iter().any(|c| c == customer) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "unknown customer {customer:?}; this region has {} customer accounts ({})",
                api.config.customers.len(),
                api.config.customers.join(", ")
            ),
        );
    }
    let throttled = api
        .gate
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(customer, api.now());
    if let Err(wait) = throttled {
        api.count(customer, CallOutcome::Throttled);
        let secs = wait.as_secs_f64().ceil().max(1.0);
        let policy = api.policy().name();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, format!("{secs:.0}"))],
            format!(
                "throttled by the {policy} policy; retry in {:.0} ms\n",
                wait.as_secs_f64() * 1e3
            ),
        )
            .into_response();
    }
    let limit = (api.config.workers + api.config.queue) as usize;
    if api.in_system.fetch_add(1, Ordering::AcqRel) >= limit {
        api.in_system.fetch_sub(1, Ordering::AcqRel);
        api.count(customer, CallOutcome::Overloaded);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "over capacity: {} calls in service or waiting (capacity {:.0} calls/s)",
                limit,
                api.config.capacity()
            ),
        );
    }
    let _in_system = Leaving(api);
    let Ok(_worker) = api.workers.acquire().await else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "control is shutting down".into(),
        );
    };
    tokio::time::sleep(api.config.service_time.get()).await;
    let response = serve.await;
    api.count(customer, CallOutcome::Ok);
    response
}

/// Takes a call out of the system when it ends, however it ends.
struct Leaving<'a>(&'a Api);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.in_system.fetch_sub(1, Ordering::AcqRel);
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, format!("{message}\n")).into_response()
}

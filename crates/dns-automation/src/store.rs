//! The plan store: where the planner puts its plans, where the enactors read the newest and
//! note which plan each endpoint now uses, and where clean-up deletes old plans.
//!
//! An HTTP service (axum), one per run, so that the planner and every enactor are separate
//! processes that share nothing but it and the DNS servers:
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `ok` |
//! | `POST /plans` | stores a [`Plan`]; 409 unless it is newer than every plan ever stored |
//! | `GET /plans` | [`PlansMsg`]: the generations stored, oldest first |
//! | `GET /plans/newest` | the newest [`Plan`]; 404 if there is none |
//! | `GET /plans/{g}` | plan `g`; 404 if it was never stored or was deleted |
//! | `DELETE /plans/{g}` | deletes plan `g`; 404 if it is not there |
//! | `GET /endpoints` | [`EndpointsMsg`]: the plan each endpoint uses |
//! | `PUT /endpoints/{name}` | [`UseMsg`]: endpoint `name` now uses a plan; 404 if that plan is not stored (deleted while its enactor wrote); with `only_if_newer`, 409 [`UseMsg`] (what it has) unless the plan is newer than the one it has |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use outage_lab_dynamodb_events::{Generation, Plan};
use serde::{Deserialize, Serialize};

/// `GET /plans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlansMsg {
    /// The generations stored now, oldest first.
    pub generations: Vec<Generation>,
}

/// `GET /endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsMsg {
    /// The plan each endpoint uses, by fully qualified name (the plan may have been deleted).
    pub endpoints: BTreeMap<String, Generation>,
}

/// `PUT /endpoints/{name}`, and the answer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseMsg {
    /// The plan the endpoint uses.
    pub generation: Generation,
    /// Set only if the endpoint has an older plan (or none): a compare-and-set.
    #[serde(default)]
    pub only_if_newer: bool,
}

#[derive(Debug, Default)]
struct Plans {
    plans: BTreeMap<Generation, Plan>,
    newest_ever: Option<Generation>,
    endpoints: BTreeMap<String, Generation>,
}

type Shared = Arc<Mutex<Plans>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Plans> {
    // A handler that panicked mid-update leaves whole values behind (every update is one
    // insert or remove), so a poisoned lock is still a consistent store.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The store's routes, on an empty store.
pub fn router() -> axum::Router {
    let shared = Shared::default();
    axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/plans", get(list).post(publish))
        .route("/plans/newest", get(newest))
        .route("/plans/{generation}", get(one).delete(delete))
        .route("/endpoints", get(endpoints))
        .route("/endpoints/{name}", put(use_plan))
        .with_state(shared)
}

async fn publish(State(shared): State<Shared>, Json(plan): Json<Plan>) -> Response {
    let mut plans = lock(&shared);
    if plans.newest_ever.is_some_and(|n| plan.generation <= n) {
        let newest = plans.newest_ever.unwrap_or_default();
        let why = format!("plan {} is not newer than {newest}", plan.generation);
        return (StatusCode::CONFLICT, why).into_response();
    }
    plans.newest_ever = Some(plan.generation);
    plans.plans.insert(plan.generation, plan);
    StatusCode::CREATED.into_response()
}

async fn list(State(shared): State<Shared>) -> Json<PlansMsg> {
    let generations = lock(&shared).plans.keys().copied().collect();
    Json(PlansMsg { generations })
}

async fn newest(State(shared): State<Shared>) -> Response {
    match lock(&shared).plans.values().next_back() {
        Some(plan) => Json(plan.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no plan yet").into_response(),
    }
}

async fn one(State(shared): State<Shared>, Path(generation): Path<u64>) -> Response {
    match lock(&shared).plans.get(&Generation(generation)) {
        Some(plan) => Json(plan.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no plan g{generation}")).into_response(),
    }
}

async fn delete(State(shared): State<Shared>, Path(generation): Path<u64>) -> Response {
    match lock(&shared).plans.remove(&Generation(generation)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::NOT_FOUND, format!("no plan g{generation}")).into_response(),
    }
}

async fn endpoints(State(shared): State<Shared>) -> Json<EndpointsMsg> {
    let endpoints = lock(&shared).endpoints.clone();
    Json(EndpointsMsg { endpoints })
}

async fn use_plan(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Json(msg): Json<UseMsg>,
) -> Response {
    let mut plans = lock(&shared);
    if !plans.plans.contains_key(&msg.generation) {
        let why = format!(
            "no plan {}: an endpoint can only use a stored plan",
            msg.generation
        );
        return (StatusCode::NOT_FOUND, why).into_response();
    }
    let current = plans.endpoints.get(&name).copied();
    if msg.only_if_newer
        && let Some(current) = current.filter(|c| *c >= msg.generation)
    {
        let has = UseMsg {
            generation: current,
            only_if_newer: false,
        };
        return (StatusCode::CONFLICT, Json(has)).into_response();
    }
    plans.endpoints.insert(name, msg.generation);
    Json(msg).into_response()
}

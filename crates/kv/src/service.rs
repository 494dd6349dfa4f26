//! The service behind the endpoint: a small key-value store over HTTP, one instance per load
//! balancer address. `GET /kv/{key}` answers the value (404 if none), `PUT /kv/{key}` stores
//! the body (up to 64 KiB), `GET /health` answers `ok`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Largest value stored.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

type Shared = Arc<Mutex<HashMap<String, Bytes>>>;

/// The service's routes, on an empty store.
pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/kv/{key}", get(read).put(write))
        .layer(DefaultBodyLimit::max(MAX_VALUE_BYTES))
        .with_state(Shared::default())
}

async fn read(State(shared): State<Shared>, Path(key): Path<String>) -> Response {
    let value = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    match value {
        Some(value) => value.into_response(),
        None => (StatusCode::NOT_FOUND, format!("no key {key:?}")).into_response(),
    }
}

async fn write(State(shared): State<Shared>, Path(key): Path<String>, value: Bytes) -> StatusCode {
    (shared.lock().unwrap_or_else(|p| p.into_inner())).insert(key, value);
    StatusCode::NO_CONTENT
}

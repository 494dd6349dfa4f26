//! Customer I/O over HTTP: `GET`/`PUT /blocks/{n}` and `GET /health`.
//!
//! A request for block `n` lands on slot `n % working_set_blocks`. A cached slot is a *hit*,
//! served straight from the cache's memory. Anything else is a *miss* and must go to the "disk":
//! one [`Semaphore`] permit held for `miss_penalty`, so misses queue behind each other exactly
//! like reads on a single spindle. As the cache shrinks, more requests miss, the queue grows,
//! and latency climbs until requests blow their deadline and get `503 deadline exceeded`: the
//! "stuck volume" of the 2012 incident, emerging from the queue rather than from a script.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use crate::cache::disk_byte;
use crate::shared::{Health, Shared};
use crate::volumes::{VolState, Volumes};

/// The customer-facing router. `PUT` bodies are limited to one block (413 beyond it).
pub(crate) fn router(shared: Arc<Shared>, volumes: Arc<Volumes>) -> Router {
    let body_limit = usize::try_from(shared.block_size).unwrap_or(usize::MAX);
    let vol = crate::volumes::router(VolState {
        shared: Arc::clone(&shared),
        volumes: Arc::clone(&volumes),
    });
    Router::new()
        .route(
            "/blocks/{n}",
            get(get_block)
                .put(put_block)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/health", get(health))
        .with_state(VolState { shared, volumes })
        .merge(vol)
}

async fn health(State(st): State<VolState>) -> axum::Json<Health> {
    axum::Json(st.shared.health(st.volumes.len()))
}

async fn get_block(
    State(VolState { shared, .. }): State<VolState>,
    Path(n): Path<u64>,
) -> Response {
    let started = Instant::now();
    let slot = n % shared.working_set_blocks;
    // Copy a hit out under the read lock; the guard is dropped before any await.
    let hit = shared.read_cache().block(slot).map(Bytes::copy_from_slice);
    if let Some(bytes) = hit {
        shared.hits.fetch_add(1, Ordering::Relaxed);
        return bytes.into_response();
    }
    shared.misses.fetch_add(1, Ordering::Relaxed);
    match shared.disk_read(started).await {
        Ok(()) => {
            let len = usize::try_from(shared.block_size).unwrap_or(0);
            Bytes::from(vec![disk_byte(slot); len]).into_response()
        }
        Err(e) => {
            shared.deadline_misses.fetch_add(1, Ordering::Relaxed);
            e.into_response()
        }
    }
}

async fn put_block(
    State(VolState { shared, .. }): State<VolState>,
    Path(n): Path<u64>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let slot = n % shared.working_set_blocks;
    // A cached block takes the write in memory (write-back); the lab's disk is synthetic, so
    // what a miss "writes" is the time it costs, not the bytes.
    let written = {
        let mut cache = shared.write_cache();
        match cache.block_mut(slot) {
            Some(block) => {
                // The body limit keeps `body` within one block.
                let len = body.len().min(block.len());
                block[..len].copy_from_slice(&body[..len]);
                true
            }
            None => false,
        }
    };
    if written {
        shared.hits.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NO_CONTENT.into_response();
    }
    shared.misses.fetch_add(1, Ordering::Relaxed);
    match shared.disk_read(started).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            shared.deadline_misses.fetch_add(1, Ordering::Relaxed);
            e.into_response()
        }
    }
}

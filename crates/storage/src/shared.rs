//! What the HTTP handlers, the volume routes, the metrics and the resize loop share: the
//! cache, the single disk and the counters, and the `/health` answer built from them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::cache::BlockCache;

/// The answer to `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Bytes of block cache currently resident.
    pub cache_bytes: u64,
    /// What the cache should hold given the budget and the agent's memory.
    pub cache_target_bytes: u64,
    /// The agent's resident memory as last read from /proc.
    pub agent_rss_bytes: u64,
    /// Whether the cache can no longer hold the working set.
    pub degraded: bool,
    /// Block requests served from the cache.
    pub hits: u64,
    /// Block requests that had to go to the disk (including those that then timed out).
    pub misses: u64,
    /// Block requests answered `503 deadline exceeded`.
    pub deadline_misses: u64,
    /// Volume replicas held.
    pub replicas: u64,
}

/// State shared by the HTTP handlers and the resize loop.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The cache. A std lock is right here: it is never held across an `.await`, readers hold it
    /// for one 64 KiB copy, and the resize loop takes it for writing on a blocking thread.
    pub(crate) cache: RwLock<BlockCache>,
    /// Block size in bytes.
    pub(crate) block_size: u64,
    /// Slots customers touch: `ceil(working_set / block_size)`, at least 1.
    pub(crate) working_set_blocks: u64,
    /// How long one miss holds the disk.
    pub(crate) miss_penalty: Duration,
    /// The longest a request may take before it is answered 503.
    pub(crate) request_deadline: Duration,
    /// The single disk: one permit.
    pub(crate) disk: Semaphore,
    /// Resident cache bytes, mirrored here so `/health` never waits behind a resize.
    pub(crate) cache_bytes: AtomicU64,
    /// The last computed target.
    pub(crate) cache_target_bytes: AtomicU64,
    /// The agent's RSS at the last resize tick.
    pub(crate) agent_rss_bytes: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) deadline_misses: AtomicU64,
    /// Health probes served (spreads successive probes over the working set).
    pub(crate) probes: AtomicU64,
}

impl Shared {
    /// The cache, for reading. A poisoned lock only means a panic elsewhere while writing block
    /// bytes; the bytes are still valid memory, so keep serving.
    pub(crate) fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, BlockCache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache, for writing.
    pub(crate) fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, BlockCache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the cache can no longer hold every block of the working set.
    pub(crate) fn degraded(&self, cache_bytes: u64) -> bool {
        cache_bytes / self.block_size < self.working_set_blocks
    }

    /// A snapshot for `/health`.
    pub(crate) fn health(&self, replicas: usize) -> Health {
        let cache_bytes = self.cache_bytes.load(Ordering::Relaxed);
        Health {
            cache_bytes,
            cache_target_bytes: self.cache_target_bytes.load(Ordering::Relaxed),
            agent_rss_bytes: self.agent_rss_bytes.load(Ordering::Relaxed),
            degraded: self.degraded(cache_bytes),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            deadline_misses: self.deadline_misses.load(Ordering::Relaxed),
            replicas: replicas as u64,
        }
    }

    /// Goes to the disk for one block: waits for the disk, then holds it for `miss_penalty`.
    /// `Err` if the request, which started at `started`, could not finish by its deadline; the
    /// wait is cut short as soon as that is certain, so a doomed request does not hold a place in
    /// the queue.
    pub(crate) async fn disk_read(&self, started: Instant) -> Result<(), DeadlineExceeded> {
        let deadline = started + self.request_deadline;
        // The latest moment the disk may be acquired and the read still finish in time.
        let latest_start = deadline
            .checked_sub(self.miss_penalty)
            .filter(|&t| t >= started)
            .ok_or(DeadlineExceeded)?;
        // `timeout_at` polls the inner future before its deadline, so a free disk would be
        // granted even when the deadline has already passed: check the clock first and after.
        if Instant::now() > latest_start {
            return Err(DeadlineExceeded);
        }
        let permit = tokio::time::timeout_at(latest_start, self.disk.acquire())
            .await
            .map_err(|_| DeadlineExceeded)?
            // The semaphore is never closed; treat it like a timeout if it ever were.
            .map_err(|_| DeadlineExceeded)?;
        if Instant::now() > latest_start {
            return Err(DeadlineExceeded);
        }
        tokio::time::sleep(self.miss_penalty).await;
        drop(permit);
        Ok(())
    }
}

/// A miss that could not be served within the request deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl IntoResponse for DeadlineExceeded {
    fn into_response(self) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, "deadline exceeded").into_response()
    }
}

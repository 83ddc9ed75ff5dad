//! Pool figures, reported the same way by every plugin that pools connections
//! (`GET /api/v1/connections/{id}/pool`).
//!
//! A driver's pool knows its size and idle count; what it does not keep is how long
//! requests wait for a connection and how often they give up. [`PoolMeter`] wraps each
//! acquire to count exactly that, without locking on the fast path except to note the wait.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// How many recent acquire times the percentiles are computed over.
const RECENT: usize = 1024;

/// A pooled connection idle for less than this is lent without first being pinged (as
/// HikariCP's `aliveBypassWindowMs`): one used a moment ago is almost surely alive, and a
/// ping per query is a round trip per query (point queries at 64 clients ran a third
/// faster without). Connections
/// idle for longer are pinged, so after a restart of the target the broken ones are found
/// and replaced before they are lent.
pub const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// A pool's state at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max_size: u32,
    /// Connections open now.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections lent out.
    pub in_use: u32,
    /// Requests waiting for a connection now.
    pub waiting: u64,
    /// Connections handed out since the pool was made.
    pub acquired: u64,
    /// Requests that gave up waiting (answered `pool_exhausted`).
    pub timeouts: u64,
    /// Acquire-time percentiles over the recent acquires, in milliseconds.
    pub acquire_ms: Percentiles,
}

/// p50, p95 and p99 of a sample; zero when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Percentiles of `sample` (in any order).
    pub fn of(mut sample: Vec<f64>) -> Percentiles {
        if sample.is_empty() {
            return Percentiles::default();
        }
        sample.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((sample.len() as f64 * q).ceil() as usize).clamp(1, sample.len()) - 1;
            (sample[i] * 1000.0).round() / 1000.0
        };
        Percentiles {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

/// Counts a pool's waits and timeouts.
#[derive(Debug, Default)]
pub struct PoolMeter {
    waiting: AtomicU64,
    acquired: AtomicU64,
    timeouts: AtomicU64,
    recent_ms: Mutex<VecDeque<f64>>,
}

/// Decrements the waiting count however the wait ends (including by being dropped).
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PoolMeter {
    /// Runs `acquire`, timing it; an error for which `is_timeout` holds counts as a timeout.
    pub async fn acquire<T, E>(
        &self,
        acquire: impl Future<Output = Result<T, E>>,
        is_timeout: impl FnOnce(&E) -> bool,
    ) -> Result<T, E> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        let started = Instant::now();
        let result = acquire.await;
        drop(waiting);
        match &result {
            Ok(_) => {
                self.acquired.fetch_add(1, Ordering::Relaxed);
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let mut recent = self.recent_ms.lock().unwrap();
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(ms);
            }
            Err(e) if is_timeout(e) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }

    /// The status, given what the driver's pool says of its connections.
    pub fn status(&self, max_size: u32, size: u32, idle: u32) -> PoolStatus {
        let sample: Vec<f64> = self.recent_ms.lock().unwrap().iter().copied().collect();
        PoolStatus {
            max_size,
            size,
            idle,
            in_use: size.saturating_sub(idle),
            waiting: self.waiting.load(Ordering::Relaxed),
            acquired: self.acquired.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            acquire_ms: Percentiles::of(sample),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks_not_averages() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99), (50.0, 95.0, 99.0));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }

    #[tokio::test]
    async fn waits_and_timeouts_are_counted() {
        let meter = PoolMeter::default();
        let ok: Result<u8, &str> = meter.acquire(async { Ok(1) }, |_| true).await;
        assert_eq!(ok, Ok(1));
        let _ = meter
            .acquire(async { Err::<u8, _>("timed out") }, |e| *e == "timed out")
            .await;
        let _ = meter
            .acquire(async { Err::<u8, _>("refused") }, |e| *e == "timed out")
            .await;
        let status = meter.status(5, 3, 1);
        assert_eq!(
            (status.acquired, status.timeouts, status.waiting),
            (1, 1, 0)
        );
        assert_eq!(status.in_use, 2);
    }
}

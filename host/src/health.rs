//! Connection health: a background checker tests every stored connection on an interval
//! and keeps a short history per connection, which `GET /api/v1/connections/{id}/health`
//! returns and `/health` summarises.
//!
//! A check opens a session of its own and closes it, so checking does not keep idle pools
//! open. Checks of one round are spread over the interval (jitter) and run at most
//! `concurrency` at a time, so a thousand connections do not stampede their targets or
//! the host.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::service::{ErrorBody, Service};

/// Checks kept per connection.
const KEPT: usize = 10;

/// How the checker runs.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Time between rounds; zero turns the checker off.
    pub interval: Duration,
    /// Checks running at once, at most.
    pub concurrency: usize,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            interval: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub checked_at: String,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// How long the check took, in milliseconds.
    pub response_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The recent checks of every connection.
#[derive(Default)]
pub struct HealthMonitor {
    checks: Mutex<HashMap<String, VecDeque<Check>>>,
}

impl HealthMonitor {
    /// Keeps a check, dropping the oldest past [`KEPT`].
    pub fn record(&self, id: &str, check: Check) {
        metrics::counter!("plugboard_health_checks_total", "status" => check.status).increment(1);
        let mut checks = self.checks.lock().unwrap();
        let history = checks.entry(id.to_owned()).or_default();
        if history.len() == KEPT {
            history.pop_back();
        }
        history.push_front(check);
    }

    /// A connection's recent checks, newest first.
    pub fn history(&self, id: &str) -> Vec<Check> {
        let checks = self.checks.lock().unwrap();
        checks
            .get(id)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets a deleted connection.
    pub fn forget(&self, id: &str) {
        self.checks.lock().unwrap().remove(id);
    }

    /// How many connections have been checked, and how many failed their last check.
    pub fn summary(&self) -> (usize, usize) {
        let checks = self.checks.lock().unwrap();
        let failing = checks
            .values()
            .filter(|h| h.front().is_some_and(|c| c.status != "ok"))
            .count();
        (checks.len(), failing)
    }
}

/// Runs check rounds until aborted.
pub fn spawn_checker(
    service: Arc<Service>,
    settings: HealthSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        loop {
            let round = tokio::time::Instant::now();
            let ids = match service.list().await {
                Ok(connections) => connections.into_iter().map(|c| c.id).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "health checker: cannot list connections");
                    Vec::new()
                }
            };
            let mut checks = tokio::task::JoinSet::new();
            for id in ids {
                let (service, limit) = (service.clone(), limit.clone());
                let jitter = jitter(settings.interval);
                checks.spawn(async move {
                    tokio::time::sleep(jitter).await;
                    let Ok(_permit) = limit.acquire().await else {
                        return;
                    };
                    // A connection deleted meanwhile is simply not checked.
                    let _ = service.check_health(&id).await;
                });
            }
            while checks.join_next().await.is_some() {}
            tokio::time::sleep_until(round + settings.interval).await;
        }
    })
}

/// A random pause within the first half of `interval`, so a round's checks spread out.
fn jitter(interval: Duration) -> Duration {
    let half = (interval.as_millis() / 2).max(1);
    let random = uuid::Uuid::new_v4().as_u128();
    Duration::from_millis((random % half) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: &'static str) -> Check {
        Check {
            checked_at: crate::store::now(),
            status,
            response_ms: 1.0,
            server_version: None,
            error: None,
        }
    }

    #[test]
    fn history_is_short_newest_first_and_summarised() {
        let monitor = HealthMonitor::default();
        for _ in 0..KEPT + 5 {
            monitor.record("a", check("ok"));
        }
        monitor.record("a", check("failed"));
        monitor.record("b", check("ok"));
        let history = monitor.history("a");
        assert_eq!(history.len(), KEPT);
        assert_eq!(history[0].status, "failed");
        assert_eq!(monitor.summary(), (2, 1));
        monitor.forget("a");
        assert_eq!(monitor.summary(), (1, 0));
    }

    #[test]
    fn jitter_stays_within_half_the_interval() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(10)) < Duration::from_secs(5));
        }
    }
}

//! `GET /metrics`: Prometheus text, through the `metrics` facade and its Prometheus
//! exporter (without an HTTP listener of its own: the API serves it).
//!
//! What is counted where: HTTP requests by route and status in [`track`]; queries by engine
//! and status in [`crate::queries`]; WASM plugin calls and traps in the plugin wrapper;
//! health checks in [`crate::health`]; pool and session gauges are read when scraped, in
//! [`render`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::service::Service;

/// Histogram buckets, in seconds: from a cached point query to a long export.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the buckets are not empty")
                // Gauges of closed pools disappear instead of freezing at their last value.
                .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(300)))
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Counts every request by method, route (the pattern, not the path, so ids do not make
/// new series) and status, and times it to its response head.
pub async fn track(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "plugboard_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone(),
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "plugboard_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status,
    )
    .increment(1);
    response
}

/// The metrics as Prometheus text, with the gauges read now.
pub fn render(handle: &PrometheusHandle, service: &Service) -> String {
    for (id, session) in service.sessions.all() {
        let Some(pool) = session.pool_status() else {
            continue;
        };
        let gauge = |name: &'static str, value: f64| {
            metrics::gauge!(name, "connection" => id.clone()).set(value);
        };
        gauge("plugboard_pool_size", f64::from(pool.size));
        gauge("plugboard_pool_idle", f64::from(pool.idle));
        gauge("plugboard_pool_in_use", f64::from(pool.in_use));
        gauge("plugboard_pool_max_size", f64::from(pool.max_size));
        gauge("plugboard_pool_waiting", pool.waiting as f64);
        gauge("plugboard_pool_timeouts", pool.timeouts as f64);
        gauge(
            "plugboard_pool_acquire_p99_seconds",
            pool.acquire_ms.p99 / 1000.0,
        );
    }
    metrics::gauge!("plugboard_sessions_open").set(service.sessions.open_count() as f64);
    metrics::gauge!("plugboard_queries_running").set(service.running.count() as f64);
    let (checked, failing) = service.health.summary();
    metrics::gauge!("plugboard_connections_checked").set(checked as f64);
    metrics::gauge!("plugboard_connections_failing").set(failing as f64);
    metrics::gauge!("plugboard_plugins_loaded").set(service.catalog.plugins().len() as f64);
    metrics::gauge!("plugboard_plugins_rejected").set(service.catalog.rejected().len() as f64);
    metrics::gauge!("plugboard_uptime_seconds").set(service.started.elapsed().as_secs_f64());
    handle.run_upkeep();
    handle.render()
}

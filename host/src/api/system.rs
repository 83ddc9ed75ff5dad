//! `/health` and `/api/v1/plugins`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::service::Service;

/// `unhealthy` (503) when the store does not answer: without it the host serves nothing.
/// `degraded` when it serves but something is wrong: a plugin file was rejected, or a
/// connection failed its last health check. `healthy` otherwise.
pub async fn health(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let store = match service.store.ping().await {
        Ok(latency) => json!({
            "status": "ok",
            "kind": service.store.dialect().name(),
            "latency_ms": (latency.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            json!({ "status": "unavailable", "kind": service.store.dialect().name() })
        }
    };
    let rejected = service.catalog.rejected().len();
    let (checked, failing) = service.health.summary();
    let mut reasons = Vec::new();
    if rejected > 0 {
        reasons.push(format!("{rejected} plugin file(s) rejected"));
    }
    if failing > 0 {
        reasons.push(format!(
            "{failing} connection(s) failed their last health check"
        ));
    }
    let (status, code) = if store["status"] != "ok" {
        reasons.insert(0, "the registry store does not answer".into());
        ("unhealthy", StatusCode::SERVICE_UNAVAILABLE)
    } else if !reasons.is_empty() {
        ("degraded", StatusCode::OK)
    } else {
        ("healthy", StatusCode::OK)
    };
    let body = json!({
        "status": status,
        "reasons": reasons,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": service.started.elapsed().as_secs(),
        "store": store,
        "plugins": {
            "status": if rejected == 0 { "ok" } else { "degraded" },
            "loaded": service.catalog.plugins().len(),
            "rejected": rejected,
        },
        "connections": { "checked": checked, "failing": failing },
        "sessions": service.sessions.open_count(),
        "queries_running": service.running.count(),
    });
    (code, Json(body))
}

/// Every plugin: the loaded ones with their info, kind and (for WASM) file and SHA-256;
/// then the files in the plugins folder that were rejected, with the reason.
pub async fn plugins(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let mut plugins: Vec<serde_json::Value> = service
        .catalog
        .plugins()
        .into_iter()
        .map(|entry| {
            let mut value =
                serde_json::to_value(entry.plugin.info()).expect("plugin info serializes");
            value["kind"] = json!(entry.kind);
            value["status"] = json!("loaded");
            if let Some(file) = &entry.file {
                value["file"] = json!(file);
                value["sha256"] = json!(entry.generation);
            }
            value
        })
        .collect();
    plugins.extend(service.catalog.rejected().into_iter().map(|r| {
        json!({
            "kind": "wasm",
            "status": "rejected",
            "file": r.file,
            "sha256": r.sha256,
            "reason": r.reason,
        })
    }));
    Json(json!({ "plugins": plugins }))
}

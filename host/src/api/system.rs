//! `/health` and `/api/v1/plugins`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::service::Service;

/// `healthy` when the store answers, `unhealthy` (with 503) when it does not: without its
/// store the host can serve nothing.
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
    let healthy = store["status"] == "ok";
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": service.started.elapsed().as_secs(),
        "store": store,
        "plugins": {
            "loaded": service.catalog.plugins().len(),
            "rejected": service.catalog.rejected().len(),
        },
        "sessions": service.sessions.open_count(),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
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

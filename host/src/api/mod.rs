//! The HTTP API: `/api/v1/...` and `/health`, built by [`router`] so tests can serve it on
//! any listener.

mod connections;
pub mod error;
pub mod formats;
pub mod queries;
mod system;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use crate::service::Service;
use error::ApiError;

/// Largest request body accepted, by default.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The router over a service; `body_limit` bounds every request body.
pub fn router(service: Arc<Service>, body_limit: usize) -> Router {
    let api = Router::new()
        .route(
            "/connections",
            post(connections::create).get(connections::list),
        )
        .route("/connections/test", post(connections::test_unsaved))
        .route(
            "/connections/{id}",
            get(connections::get)
                .put(connections::replace)
                .delete(connections::delete),
        )
        .route("/connections/{id}/test", post(connections::test))
        .route("/connections/{id}/databases", get(connections::databases))
        .route("/connections/{id}/schema", get(connections::schema))
        .route("/connections/{id}/query", post(queries::query))
        .route("/connections/{id}/transaction", post(queries::transaction))
        .route("/connections/{id}/pool", get(connections::pool))
        .route("/connections/{id}/health", get(connections::health))
        .route("/queries", get(queries::history))
        .route("/queries/running", get(queries::running))
        .route("/queries/{id}", delete(queries::cancel))
        .route("/plugins", get(system::plugins));
    let metrics = crate::metrics::install();
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(system::health))
        .route(
            "/metrics",
            get(move |State(service): State<Arc<Service>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::render(&metrics, &service),
                )
            }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(service)
}

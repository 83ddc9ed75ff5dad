//! `/api/v1/connections`: register, list, read, replace, delete, test, databases, schema,
//! pool, health. (Queries are in [`super::queries`].)

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use plugboard_connector::{IntrospectInclude, IntrospectOptions};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiQuery};
use crate::input::ConnectionInput;
use crate::service::Service;

type ApiResult<T> = Result<T, ApiError>;

pub async fn create(
    State(service): State<Arc<Service>>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<impl IntoResponse> {
    let view = service.create(input).await?;
    let location = format!("/api/v1/connections/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(view),
    ))
}

pub async fn list(State(service): State<Arc<Service>>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.list().await?))
}

pub async fn get(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.get(&id).await?))
}

pub async fn replace(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.replace(&id, input).await?))
}

pub async fn delete(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    service.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_unsaved(
    State(service): State<Arc<Service>>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.test_unsaved(input).await?))
}

pub async fn test(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.test(&id).await?))
}

pub async fn databases(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        serde_json::json!({ "databases": service.databases(&id).await? }),
    ))
}

/// `?refresh=true&schemas=public,sales&tables=orders&system=true&columns=false...`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaParams {
    #[serde(default)]
    refresh: bool,
    /// Comma-separated schema names.
    schemas: Option<String>,
    /// Comma-separated table names.
    tables: Option<String>,
    /// Include system schemas.
    #[serde(default)]
    system: bool,
    columns: Option<bool>,
    indexes: Option<bool>,
    foreign_keys: Option<bool>,
    comments: Option<bool>,
    row_estimates: Option<bool>,
    /// Documents sampled per collection (document stores).
    sample_size: Option<u32>,
}

fn names(list: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = list
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

pub async fn schema(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<SchemaParams>,
) -> ApiResult<impl IntoResponse> {
    let all = IntrospectInclude::default();
    let options = IntrospectOptions {
        schemas: names(params.schemas.as_deref()),
        tables: names(params.tables.as_deref()),
        include: IntrospectInclude {
            columns: params.columns.unwrap_or(all.columns),
            indexes: params.indexes.unwrap_or(all.indexes),
            foreign_keys: params.foreign_keys.unwrap_or(all.foreign_keys),
            comments: params.comments.unwrap_or(all.comments),
            row_estimates: params.row_estimates.unwrap_or(all.row_estimates),
            system_schemas: params.system,
        },
        sample_size: params.sample_size,
    };
    if options.sample_size == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query_string",
            "sample_size must be at least 1",
        ));
    }
    Ok(Json(service.schema(&id, options, params.refresh).await?))
}

pub async fn pool(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(service.pool(&id).await?))
}

/// Checks the connection now and returns the result with its recent history.
pub async fn health(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let now = service.check_health(&id).await?;
    Ok(Json(serde_json::json!({
        "connection_id": id,
        "status": if now.status == "ok" { "healthy" } else { "unhealthy" },
        "response_ms": now.response_ms,
        "checks": service.health.history(&id),
    })))
}

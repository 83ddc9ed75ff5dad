//! The API's one error type, and extractors whose rejections use the same shape:
//! `{"error": {"code", "message"}}` with a status that fits. A client error says what was
//! wrong; an internal error says little to the client and everything to the log.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use plugboard_connector::Error as PluginError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::service::ServiceError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The engine's own code (SQLSTATE, errno), when the target database failed.
    pub engine_code: Option<String>,
    /// One entry per problem, for validation errors.
    pub details: Vec<String>,
    /// For a failed transaction, the 0-based index of the statement that failed.
    pub statement: Option<usize>,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine_code: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    details: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    statement: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            engine_code: None,
            details: Vec::new(),
            statement: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                engine_code: self.engine_code.as_deref(),
                details: &self.details,
                statement: self.statement,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

fn plugin_status(e: &PluginError) -> StatusCode {
    match e {
        PluginError::Configuration(_)
        | PluginError::InvalidInput(_)
        | PluginError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PluginError::Authentication(_) | PluginError::Connection(_) => StatusCode::BAD_GATEWAY,
        PluginError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        PluginError::Cancelled => StatusCode::CONFLICT,
        PluginError::Query(_) => StatusCode::BAD_REQUEST,
        PluginError::PoolExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let mut api = ApiError::new(plugin_status(&e), e.code(), e.to_string());
        if let PluginError::PoolExhausted(_) = &e {
            api.retry_after = Some(1);
        }
        if let PluginError::Query(q) = &e {
            api.engine_code = q.code.clone();
            if let Some(detail) = &q.detail {
                api.details.push(detail.clone());
            }
            if let Some(position) = q.position {
                api.details.push(format!("at character {position}"));
            }
        }
        api
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(problems) => {
                let mut api = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    problems.join("; "),
                );
                api.details = problems;
                api
            }
            ServiceError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ServiceError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            ServiceError::EngineUnavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_unavailable",
                e.to_string(),
            ),
            ServiceError::Plugin(e) => e.into(),
            ServiceError::Transaction(t) => {
                let mut api: ApiError = t.error.into();
                api.message = match t.statement {
                    Some(i) => format!(
                        "statement {} failed: {}; the transaction was rolled back",
                        i + 1,
                        api.message
                    ),
                    None => format!("{}; the transaction was rolled back", api.message),
                };
                api.statement = t.statement;
                api
            }
            ServiceError::NoSchema(e) => {
                let mut api: ApiError = e.into();
                api.message = format!(
                    "{} (and no schema snapshot exists to fall back on)",
                    api.message
                );
                api
            }
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "registry store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the registry store failed; the server log has the details",
                )
            }
            ServiceError::Secret(e) => {
                tracing::error!(error = %e, "stored secret unavailable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s: 400 for malformed JSON, 413 for a body
/// over the limit, 415 for a missing content type, 422 for fields of the wrong shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let (code, message) = match &rejection {
        JsonRejection::JsonSyntaxError(_) => ("malformed_json", rejection.body_text()),
        JsonRejection::JsonDataError(_) => ("validation", rejection.body_text()),
        JsonRejection::MissingJsonContentType(_) => (
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`".to_owned(),
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the request body is larger than the server accepts".to_owned(),
        ),
        _ => ("bad_request", rejection.body_text()),
    };
    ApiError::new(status, code, message)
}

/// `axum::extract::Query` whose rejection is a 400 [`ApiError`].
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_query_string",
        rejection.body_text(),
    )
}

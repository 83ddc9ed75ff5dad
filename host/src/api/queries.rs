//! Queries: running one (JSON, or streamed as NDJSON, CSV or Arrow), running a
//! transaction, listing and cancelling running queries, and reading the history.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use plugboard_connector::{Error as PluginError, Row};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiJson, ApiQuery};
use super::formats::{ENCODE_BATCH_ROWS, Encoder, Format};
use crate::input::{QueryInput, TransactionInput};
use crate::queries::Outcome;
use crate::service::{Caller, QueryRun, Service};
use crate::store::HistoryFilter;

type ApiResult<T> = Result<T, ApiError>;

/// The header that carries a query's id.
pub const QUERY_ID_HEADER: &str = "x-query-id";
/// The header that says who runs a query, for the history.
pub const USER_HEADER: &str = "x-plugboard-user";

/// A streamed body is cut into chunks of about this many bytes (or fewer, at its end).
const CHUNK_BYTES: usize = 256 * 1024;

fn caller(headers: &HeaderMap) -> Caller {
    Caller {
        who: headers
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatParams {
    format: Option<String>,
}

pub async fn query(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<FormatParams>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<QueryInput>,
) -> ApiResult<Response> {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(params.format.as_deref(), accept)?;
    let caller = caller(&headers);
    if format == Format::Json {
        let result = service.query(&id, input, &caller).await?;
        let query_id = HeaderValue::from_str(&result.query_id).expect("a uuid is a header value");
        return Ok(([(QUERY_ID_HEADER, query_id)], Json(result)).into_response());
    }
    // Streamed: no row limit unless one is asked for.
    let limit = input.limit.map(|l| l as usize);
    let query = input
        .validate()
        .map_err(|p| ApiError::from(crate::service::ServiceError::Invalid(p)))?;
    let mut run = service.start_query(&id, query, &caller).await?;
    let encoder = format
        .encoder(run.stream.columns())
        .expect("a streamed format has an encoder");
    // The first rows are read before the response starts, so an error the query meets at
    // once (most do) is answered with its status, not inside a 200.
    let first = match run.pull(ENCODE_BATCH_ROWS).await {
        Ok(first) => first,
        Err(e) => {
            run.ticket.finish(Outcome::Failed(e.code()));
            return Err(e.into());
        }
    };
    let query_id = HeaderValue::from_str(run.ticket.id()).expect("a uuid is a header value");
    let state = Streaming {
        run: Some(run),
        encoder,
        ended: first.is_none(),
        first,
        remaining: limit,
        failure: None,
        header_written: false,
        last_chunk: 0,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, |mut state| async {
        let chunk = state.next_chunk().await?;
        Some((chunk, state))
    }));
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (QUERY_ID_HEADER.parse().expect("a header name"), query_id),
        ],
        body,
    )
        .into_response())
}

/// A streamed body's state: pulls rows, encodes them, and finishes the ticket at the end.
/// Dropped early (the client disconnected), it drops the query's stream, which stops the
/// query on the server, and the ticket records the query as cancelled.
struct Streaming {
    run: Option<QueryRun>,
    encoder: Box<dyn Encoder>,
    /// Rows read before the response started.
    first: Option<Vec<Row>>,
    /// The plugin's stream is exhausted.
    ended: bool,
    remaining: Option<usize>,
    /// An error to end the body with, after its in-band report was sent.
    failure: Option<std::io::Error>,
    header_written: bool,
    /// The size of the last chunk: the next one's buffer starts that large rather than
    /// growing (and copying) its way there.
    last_chunk: usize,
}

impl Streaming {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Some(failure) = self.failure.take() {
            return Some(Err(failure));
        }
        self.run.as_ref()?;
        let mut out = Vec::with_capacity(self.last_chunk + self.last_chunk / 8);
        if !self.header_written {
            self.header_written = true;
            if let Err(e) = self.encoder.header(&mut out) {
                return Some(self.fail(PluginError::Unsupported(e), out));
            }
        }
        // Rows are encoded a batch at a time as they arrive, so a chunk's rows are never all
        // in memory at once (only its bytes are).
        let mut rows = self.first.take().unwrap_or_default();
        loop {
            let run = self.run.as_mut()?;
            while !self.ended
                && rows.len() < ENCODE_BATCH_ROWS
                && self.remaining.is_none_or(|r| rows.len() < r)
            {
                match run.pull(ENCODE_BATCH_ROWS - rows.len()).await {
                    Ok(Some(batch)) if rows.is_empty() => rows = batch,
                    Ok(Some(batch)) => rows.extend(batch),
                    Ok(None) => self.ended = true,
                    Err(e) => return Some(self.fail(e, out)),
                }
            }
            if let Some(remaining) = &mut self.remaining {
                if rows.len() >= *remaining {
                    rows.truncate(*remaining);
                    self.ended = true;
                }
                *remaining -= rows.len();
            }
            if let Err(e) = self.encoder.rows(&rows, &mut out) {
                return Some(self.fail(PluginError::Unsupported(e), out));
            }
            run.ticket.add_rows(rows.len());
            rows.clear();
            if self.ended || out.len() >= CHUNK_BYTES {
                break;
            }
        }
        if self.ended {
            if let Err(e) = self.encoder.finish(&mut out) {
                return Some(self.fail(PluginError::Unsupported(e), out));
            }
            let run = self.run.take().expect("checked above");
            drop(run.stream);
            run.ticket.finish(Outcome::Ok);
        }
        self.last_chunk = out.len();
        Some(Ok(Bytes::from(out)))
    }

    /// Ends the body after a failure: what the format can say in band, then an error that
    /// cuts the body short.
    fn fail(&mut self, e: PluginError, mut out: Vec<u8>) -> Result<Bytes, std::io::Error> {
        tracing::warn!(error = %e, "a streamed query failed after its response started");
        self.encoder.failure(e.code(), &e.to_string(), &mut out);
        if let Some(run) = self.run.take() {
            drop(run.stream);
            run.ticket.finish(Outcome::Failed(e.code()));
        }
        let cut = std::io::Error::other(e.to_string());
        if out.is_empty() {
            Err(cut)
        } else {
            self.failure = Some(cut);
            Ok(Bytes::from(out))
        }
    }
}

pub async fn transaction(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<TransactionInput>,
) -> ApiResult<Response> {
    let result = service.transaction(&id, input, &caller(&headers)).await?;
    let query_id = HeaderValue::from_str(&result.query_id).expect("a uuid is a header value");
    Ok(([(QUERY_ID_HEADER, query_id)], Json(result)).into_response())
}

pub async fn running(State(service): State<Arc<Service>>) -> impl IntoResponse {
    Json(json!({ "queries": service.running.list() }))
}

pub async fn cancel(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    if service.running.cancel(&id) {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "cancelled": true })),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no running query with id `{id}` (it may have finished)"),
        ))
    }
}

/// `?connection_id=&status=&since=&until=&limit=&offset=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    connection_id: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const HISTORY_STATUSES: &[&str] = &["ok", "failed", "cancelled", "timeout"];

pub async fn history(
    State(service): State<Arc<Service>>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<impl IntoResponse> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query_string", m);
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be from 1 to 1000".into()));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(bad("offset must not be negative".into()));
    }
    if let Some(status) = &params.status
        && !HISTORY_STATUSES.contains(&status.as_str())
    {
        return Err(bad(format!(
            "status `{status}` is not one of {}",
            HISTORY_STATUSES.join(", ")
        )));
    }
    // Times are compared as text in the store: normalise them to its format.
    let time = |name: &str, value: Option<String>| -> ApiResult<Option<String>> {
        value
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(&v)
                    .map(|t| crate::store::query_time(t.with_timezone(&chrono::Utc)))
                    .map_err(|_| bad(format!("{name} must be an RFC 3339 time, not `{v}`")))
            })
            .transpose()
    };
    let filter = HistoryFilter {
        connection_id: params.connection_id,
        status: params.status,
        since: time("since", params.since)?,
        until: time("until", params.until)?,
        limit,
        offset,
    };
    service.history.flush().await;
    let queries = service
        .store
        .list_history(&filter)
        .await
        .map_err(|e| ApiError::from(crate::service::ServiceError::Store(e)))?;
    let next_offset = (queries.len() as i64 == limit).then_some(offset + limit);
    Ok(Json(json!({
        "queries": queries,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
    })))
}

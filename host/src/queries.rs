//! Running queries: each has an id, is listed while it runs (`GET /api/v1/queries/running`)
//! and can be cancelled (`DELETE /api/v1/queries/{id}`).
//!
//! A [`Ticket`] is a query's whole life on the host: taken when it starts, it registers the
//! query; finished, it records the outcome in the history and the metrics; dropped without
//! being finished (the client went away mid-query), it records the query as cancelled. Both
//! paths deregister it, so the list cannot leak.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::store::HistoryRecord;

/// A running query, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunningQuery {
    pub id: String,
    pub connection_id: String,
    pub engine: String,
    /// `query` or `transaction`.
    pub kind: &'static str,
    pub who: Option<String>,
    pub started_at: String,
    /// Filled in when listed.
    pub elapsed_ms: f64,
    pub sql_hash: String,
    /// The text, when the operator keeps query text (`--history-sql keep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

struct Entry {
    query: RunningQuery,
    started: Instant,
    cancel: CancellationToken,
}

/// The running queries, by id.
#[derive(Default)]
pub struct RunningQueries {
    entries: Mutex<HashMap<String, Entry>>,
}

impl RunningQueries {
    /// Every running query, oldest first.
    pub fn list(&self) -> Vec<RunningQuery> {
        let entries = self.entries.lock().unwrap();
        let mut list: Vec<(Instant, RunningQuery)> = entries
            .values()
            .map(|e| {
                let mut q = e.query.clone();
                q.elapsed_ms = crate::service::round_ms(e.started.elapsed());
                (e.started, q)
            })
            .collect();
        list.sort_by_key(|(started, _)| *started);
        list.into_iter().map(|(_, q)| q).collect()
    }

    /// Cancels the query `id`; `false` when no such query is running.
    pub fn cancel(&self, id: &str) -> bool {
        match self.entries.lock().unwrap().get(id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// How many queries are running.
    pub fn count(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(&'static str),
}

/// One query's registration; see the module documentation.
pub struct Ticket {
    registry: Arc<RunningQueries>,
    history: History,
    query: RunningQuery,
    started: Instant,
    cancel: CancellationToken,
    rows: u64,
    finished: bool,
}

impl Ticket {
    /// Registers a query.
    pub fn start(
        registry: &Arc<RunningQueries>,
        history: &History,
        connection_id: &str,
        engine: &str,
        kind: &'static str,
        who: Option<String>,
        sql: &str,
    ) -> Ticket {
        let (sql_hash, sql) = history.sql_fields(sql);
        let query = RunningQuery {
            id: uuid::Uuid::new_v4().to_string(),
            connection_id: connection_id.to_owned(),
            engine: engine.to_owned(),
            kind,
            who,
            started_at: crate::store::query_time(chrono::Utc::now()),
            elapsed_ms: 0.0,
            sql_hash,
            sql,
        };
        let cancel = CancellationToken::new();
        let started = Instant::now();
        registry.entries.lock().unwrap().insert(
            query.id.clone(),
            Entry {
                query: query.clone(),
                started,
                cancel: cancel.clone(),
            },
        );
        Ticket {
            registry: registry.clone(),
            history: history.clone(),
            query,
            started,
            cancel,
            rows: 0,
            finished: false,
        }
    }

    /// The query's id.
    pub fn id(&self) -> &str {
        &self.query.id
    }

    /// Completes when the query is cancelled with `DELETE /api/v1/queries/{id}`.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// How long the query has run.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Counts rows handed to the client.
    pub fn add_rows(&mut self, rows: usize) {
        self.rows += rows as u64;
    }

    /// Records how the query ended and deregisters it.
    pub fn finish(mut self, outcome: Outcome) {
        self.close(outcome);
    }

    fn close(&mut self, outcome: Outcome) {
        self.finished = true;
        self.registry.entries.lock().unwrap().remove(&self.query.id);
        let elapsed = self.started.elapsed();
        let (status, error_code) = match outcome {
            Outcome::Ok => ("ok", None),
            Outcome::Failed("cancelled") => ("cancelled", Some("cancelled")),
            Outcome::Failed("timeout") => ("timeout", Some("timeout")),
            Outcome::Failed(code) => ("failed", Some(code)),
        };
        metrics::counter!(
            "plugboard_queries_total",
            "engine" => self.query.engine.clone(),
            "kind" => self.query.kind,
            "status" => status,
        )
        .increment(1);
        metrics::histogram!(
            "plugboard_query_duration_seconds",
            "engine" => self.query.engine.clone(),
            "kind" => self.query.kind,
        )
        .record(elapsed.as_secs_f64());
        let q = &self.query;
        self.history.record(HistoryRecord {
            id: q.id.clone(),
            connection_id: q.connection_id.clone(),
            engine: q.engine.clone(),
            kind: q.kind.to_owned(),
            who: q.who.clone(),
            started_at: q.started_at.clone(),
            duration_ms: crate::service::round_ms(elapsed),
            row_count: i64::try_from(self.rows).unwrap_or(i64::MAX),
            status: status.to_owned(),
            error_code: error_code.map(str::to_owned),
            sql_hash: q.sql_hash.clone(),
            sql: q.sql.clone(),
        });
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            // The request went away before the query ended: the client disconnected.
            self.close(Outcome::Failed("cancelled"));
        }
    }
}

//! Query requests and result streams (WIT `query-request`, `result-stream`).

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::value::{CommonType, Value};

/// A query to run.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The statement, in the engine's language.
    pub sql: String,
    /// Positional parameters.
    pub params: Vec<Value>,
    /// Deadline enforced on the server, in milliseconds.
    pub timeout_ms: Option<u32>,
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnMeta {
    /// Column name as the engine labels it.
    pub name: String,
    /// The engine's type name.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The type in the common vocabulary.
    pub common_type: CommonType,
}

/// One result row, in column order.
pub type Row = Vec<Value>;

/// A running query's result: columns first, then rows pulled batch by batch, so that no
/// result is held whole. Dropping the stream stops the query on the server.
#[async_trait]
pub trait ResultStream: Send {
    /// The result's columns; known before the first row.
    fn columns(&self) -> &[ColumnMeta];

    /// Up to `max_rows` more rows; `None` once the result is exhausted.
    async fn next_batch(&mut self, max_rows: usize) -> Result<Option<Vec<Row>>>;

    /// Rows affected by a statement that changes data; known once the stream is exhausted.
    fn rows_affected(&self) -> Option<u64>;
}

/// One statement's result inside a transaction, bounded like a JSON query's.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementResult {
    /// The result's columns; empty for a statement without a result.
    pub columns: Vec<ColumnMeta>,
    /// Up to the row limit asked for.
    pub rows: Vec<Row>,
    /// Whether rows were left out past the limit.
    pub truncated: bool,
    /// Rows the statement changed, for one without a result.
    pub rows_affected: Option<u64>,
}

impl StatementResult {
    /// A result with these columns and, as yet, nothing in it.
    pub fn new(columns: Vec<ColumnMeta>) -> StatementResult {
        StatementResult {
            columns,
            rows: Vec::new(),
            truncated: false,
            rows_affected: None,
        }
    }
}

/// Why a transaction was rolled back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", match .statement {
    Some(i) => format!("statement {} failed: {}", i + 1, .error),
    None => .error.to_string(),
})]
pub struct TransactionError {
    /// The 0-based index of the statement that failed; `None` when beginning or committing
    /// failed.
    pub statement: Option<usize>,
    /// What went wrong.
    pub error: crate::error::Error,
}

impl TransactionError {
    /// A failure of the statement at `index`.
    pub fn at(index: usize, error: crate::error::Error) -> TransactionError {
        TransactionError {
            statement: Some(index),
            error,
        }
    }

    /// A failure outside any statement (begin, commit, the connection).
    pub fn outside(error: crate::error::Error) -> TransactionError {
        TransactionError {
            statement: None,
            error,
        }
    }
}

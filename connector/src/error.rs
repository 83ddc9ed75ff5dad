//! The one error every plugin returns (WIT `types.error`).

use serde::Serialize;

/// A `Result` whose error is the connector [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The engine rejected a query: its own code and message, never rewritten.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryError {
    /// The engine's code: SQLSTATE, MySQL errno, SQL Server number, ...
    pub code: Option<String>,
    /// The engine's message.
    pub message: String,
    /// Extra detail the engine gave (PostgreSQL's DETAIL and HINT).
    pub detail: Option<String>,
    /// 1-based character position in the query text.
    pub position: Option<u32>,
}

/// Why a plugin call failed. Messages never contain a secret: plugins build them from the
/// engine's answer and the connection's non-secret fields only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection's configuration is invalid.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The target refused the credentials.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The target could not be reached, or the connection broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The operation ran past its deadline and was stopped on the server.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
    /// The engine rejected a query.
    #[error("{}", format_query_error(.0))]
    Query(QueryError),
    /// The request cannot be carried out as given (a parameter of the wrong type).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The plugin or engine does not support this operation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Every pooled connection stayed busy past the pool's acquire timeout: the target is
    /// fine, the pool is full. Worth retrying after a moment. Raised by native plugins that
    /// pool; the WIT `error` has no case for it (a WASM plugin reports `connection`).
    #[error("pool exhausted: {0}")]
    PoolExhausted(String),
    /// The plugin itself failed: a WebAssembly plugin trapped, panicked or hit a sandbox
    /// limit. Raised by the host, never by a plugin, so it has no case in the WIT `error`.
    #[error("plugin failed: {0}")]
    Plugin(String),
}

fn format_query_error(e: &QueryError) -> String {
    match &e.code {
        Some(code) => format!("query failed ({code}): {}", e.message),
        None => format!("query failed: {}", e.message),
    }
}

impl Error {
    /// A stable, machine-readable name for the kind of error, as the API reports it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Configuration(_) => "configuration",
            Error::Authentication(_) => "authentication",
            Error::Connection(_) => "connection",
            Error::Timeout(_) => "timeout",
            Error::Cancelled => "cancelled",
            Error::Query(_) => "query",
            Error::InvalidInput(_) => "invalid_input",
            Error::Unsupported(_) => "unsupported",
            Error::PoolExhausted(_) => "pool_exhausted",
            Error::Plugin(_) => "plugin_failed",
        }
    }

    /// Whether retrying the same call later might succeed (the target was unreachable or
    /// the connection broke), as opposed to an answer that will not change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Connection(_) | Error::PoolExhausted(_))
    }
}

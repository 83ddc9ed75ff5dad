//! sqlx's SQLite errors mapped onto the connector's one error, keeping SQLite's result code.

use plugboard_connector::{Error, QueryError};

/// Primary result codes (the low byte of an extended code).
/// <https://www.sqlite.org/rescode.html>
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_INTERRUPT: i64 = 9;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_AUTH: i64 = 23;
const SQLITE_NOTADB: i64 = 26;

/// Maps a sqlx error; `interrupted_by_deadline` says whether an interrupt was the query's
/// own deadline (a timeout) rather than a cancellation.
pub(crate) fn map(err: sqlx::Error, what: &str, interrupted_by_deadline: bool) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let message = db.message().to_owned();
            let primary = code
                .as_deref()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(SQLITE_INTERRUPT) if interrupted_by_deadline => Error::Timeout(format!(
                    "{message} (SQLite code 9): the query ran past its deadline"
                )),
                Some(SQLITE_INTERRUPT) => Error::Cancelled,
                Some(SQLITE_BUSY | SQLITE_LOCKED) => Error::Timeout(format!(
                    "{message} (SQLite code {}): the database stayed locked past busy_timeout_ms",
                    code.unwrap_or_default()
                )),
                Some(SQLITE_CANTOPEN | SQLITE_NOTADB) => {
                    Error::Configuration(format!("{what}: {message}"))
                }
                Some(SQLITE_AUTH) => Error::Authentication(message),
                _ => Error::Query(QueryError {
                    code,
                    message,
                    detail: None,
                    position: None,
                }),
            }
        }
        sqlx::Error::Io(io) => Error::Connection(format!("{what}: {io}")),
        sqlx::Error::PoolTimedOut => Error::Timeout(format!(
            "{what}: no pooled connection became available in time"
        )),
        sqlx::Error::Configuration(c) => Error::Configuration(c.to_string()),
        other => Error::Connection(format!("{what}: {other}")),
    }
}

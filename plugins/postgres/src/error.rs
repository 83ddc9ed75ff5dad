//! sqlx's errors mapped onto the connector's one error, keeping PostgreSQL's SQLSTATE.

use plugboard_connector::{Error, QueryError};
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};

/// SQLSTATE classes and codes that mean something other than "the query was wrong".
/// <https://www.postgresql.org/docs/current/errcodes-appendix.html>
const INVALID_PASSWORD: &str = "28P01";
const INVALID_AUTHORIZATION: &str = "28000";
const QUERY_CANCELED: &str = "57014";
const CONNECTION_CLASS: &str = "08";
const ADMIN_SHUTDOWN: &str = "57P01";
const CANNOT_CONNECT_NOW: &str = "57P03";
const INVALID_CATALOG_NAME: &str = "3D000";

/// Maps a sqlx error. `what` names the operation for messages that would otherwise say
/// nothing ("while connecting to db.example:5432").
pub(crate) fn map(err: sqlx::Error, what: &str) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let message = db.message().to_owned();
            match code.as_deref() {
                Some(INVALID_PASSWORD | INVALID_AUTHORIZATION) => {
                    Error::Authentication(format!("{message} (SQLSTATE {})", code.unwrap()))
                }
                Some(INVALID_CATALOG_NAME) => {
                    Error::Configuration(format!("{message} (SQLSTATE 3D000)"))
                }
                Some(QUERY_CANCELED) if message.contains("statement timeout") => {
                    Error::Timeout(format!("{message} (SQLSTATE 57014)"))
                }
                Some(QUERY_CANCELED) => Error::Cancelled,
                Some(c)
                    if c.starts_with(CONNECTION_CLASS)
                        || c == ADMIN_SHUTDOWN
                        || c == CANNOT_CONNECT_NOW =>
                {
                    Error::Connection(format!("{what}: {message} (SQLSTATE {c})"))
                }
                _ => {
                    let pg = db.try_downcast_ref::<PgDatabaseError>();
                    let detail = pg.and_then(|pg| {
                        let parts: Vec<String> = [
                            pg.detail().map(|d| format!("DETAIL: {d}")),
                            pg.hint().map(|h| format!("HINT: {h}")),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        (!parts.is_empty()).then(|| parts.join("\n"))
                    });
                    let position = pg.and_then(|pg| match pg.position() {
                        Some(PgErrorPosition::Original(p)) => u32::try_from(p).ok(),
                        _ => None,
                    });
                    Error::Query(QueryError {
                        code,
                        message,
                        detail,
                        position,
                    })
                }
            }
        }
        sqlx::Error::Io(io) => Error::Connection(format!("{what}: {io}")),
        sqlx::Error::Tls(tls) => Error::Connection(format!("{what}: TLS: {tls}")),
        sqlx::Error::Protocol(p) => Error::Connection(format!("{what}: protocol error: {p}")),
        sqlx::Error::PoolTimedOut => Error::Connection(format!(
            "{what}: no pooled connection became available in time (the server is unreachable \
             or refusing connections, or every pooled connection is busy)"
        )),
        sqlx::Error::PoolClosed => Error::Connection(format!("{what}: the pool was closed")),
        sqlx::Error::Configuration(c) => Error::Configuration(c.to_string()),
        other => Error::Connection(format!("{what}: {other}")),
    }
}

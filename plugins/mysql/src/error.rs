//! sqlx's MySQL errors mapped onto the connector's one error, keeping the server's error
//! number (errno), which is what MySQL and MariaDB documentation and users go by.

use plugboard_connector::{Error, QueryError};
use sqlx::mysql::MySqlDatabaseError;

/// <https://mariadb.com/kb/en/mariadb-error-codes/>
const ACCESS_DENIED_DB: u16 = 1044;
const ACCESS_DENIED: u16 = 1045;
const UNKNOWN_DATABASE: u16 = 1049;
const QUERY_INTERRUPTED: u16 = 1317;
const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
const MYSQL_EXECUTION_TIMEOUT: u16 = 3024;
const TOO_MANY_CONNECTIONS: u16 = 1040;

/// Maps a sqlx error; `deadline_passed` says whether an interrupted query was stopped by
/// its own deadline (a timeout) rather than cancelled.
pub(crate) fn map(err: sqlx::Error, what: &str, deadline_passed: bool) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let sqlstate = db.code().map(|c| c.into_owned());
            let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() else {
                return Error::Query(QueryError {
                    code: sqlstate,
                    message,
                    detail: None,
                    position: None,
                });
            };
            let number = my.number();
            match number {
                ACCESS_DENIED | ACCESS_DENIED_DB | ACCESS_DENIED_NO_PASSWORD => {
                    Error::Authentication(format!("{message} (error {number})"))
                }
                UNKNOWN_DATABASE => Error::Configuration(format!("{message} (error {number})")),
                TOO_MANY_CONNECTIONS => {
                    Error::Connection(format!("{what}: {message} (error {number})"))
                }
                QUERY_INTERRUPTED | MARIADB_STATEMENT_TIMEOUT | MYSQL_EXECUTION_TIMEOUT
                    if deadline_passed || number != QUERY_INTERRUPTED =>
                {
                    Error::Timeout(format!(
                        "{message} (error {number}): the query ran past its deadline"
                    ))
                }
                QUERY_INTERRUPTED => Error::Cancelled,
                _ => Error::Query(QueryError {
                    code: Some(number.to_string()),
                    message,
                    detail: sqlstate.map(|s| format!("SQLSTATE {s}")),
                    position: None,
                }),
            }
        }
        sqlx::Error::Io(io) => Error::Connection(format!("{what}: {io}")),
        sqlx::Error::Tls(tls) => Error::Connection(format!("{what}: TLS: {tls}")),
        sqlx::Error::Protocol(p) => Error::Connection(format!("{what}: protocol error: {p}")),
        sqlx::Error::PoolTimedOut => Error::Connection(format!(
            "{what}: no pooled connection became available in time (the server is unreachable \
             or refusing connections, or every pooled connection is busy)"
        )),
        sqlx::Error::Configuration(c) => Error::Configuration(c.to_string()),
        other => Error::Connection(format!("{what}: {other}")),
    }
}

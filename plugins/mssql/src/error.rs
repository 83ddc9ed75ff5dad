//! tiberius' errors mapped onto the connector's one error, keeping SQL Server's error
//! number.

use plugboard_connector::{Error, QueryError};

/// <https://learn.microsoft.com/sql/relational-databases/errors-events/database-engine-events-and-errors>
const LOGIN_FAILED: u32 = 18456;
const CANNOT_OPEN_DATABASE: u32 = 4060;
const PASSWORD_EXPIRED: u32 = 18487;
const PASSWORD_MUST_CHANGE: u32 = 18488;
const QUERY_CANCELLED: u32 = 3621;

pub(crate) fn map(err: tiberius::error::Error, what: &str) -> Error {
    use tiberius::error::Error as T;
    match err {
        T::Server(token) => {
            let code = token.code();
            let message = token.message().to_owned();
            match code {
                LOGIN_FAILED | PASSWORD_EXPIRED | PASSWORD_MUST_CHANGE => {
                    Error::Authentication(format!("{message} (error {code})"))
                }
                CANNOT_OPEN_DATABASE => Error::Configuration(format!("{message} (error {code})")),
                _ => Error::Query(QueryError {
                    code: Some(code.to_string()),
                    message,
                    detail: None,
                    position: None,
                }),
            }
        }
        T::Io {
            kind: std::io::ErrorKind::TimedOut,
            message,
        } => Error::Timeout(format!("{what}: {message}")),
        T::Io { message, .. } => Error::Connection(format!("{what}: {message}")),
        T::Tls(message) => Error::Connection(format!("{what}: TLS: {message}")),
        T::Routing { host, port } => Error::Connection(format!(
            "{what}: the server redirects to {host}:{port}; connect there directly"
        )),
        T::Protocol(message) => Error::Connection(format!("{what}: protocol error: {message}")),
        other => Error::Connection(format!("{what}: {other}")),
    }
}

/// Whether an error means the query was cancelled by an attention (our own deadline).
pub(crate) fn is_cancellation(err: &tiberius::error::Error) -> bool {
    matches!(err, tiberius::error::Error::Server(t) if t.code() == QUERY_CANCELLED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_connection_errors_and_keep_their_cause() {
        let err = map(
            tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionRefused,
                message: "refused".into(),
            },
            "connecting to db:1433",
        );
        assert_eq!(
            err,
            Error::Connection("connecting to db:1433: refused".into())
        );
        let err = map(
            tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: "no answer".into(),
            },
            "running",
        );
        assert!(matches!(err, Error::Timeout(_)));
        let err = map(
            tiberius::error::Error::Routing {
                host: "h".into(),
                port: 1,
            },
            "x",
        );
        assert!(matches!(err, Error::Connection(m) if m.contains("h:1")));
    }
}

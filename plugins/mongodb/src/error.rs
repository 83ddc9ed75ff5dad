//! The driver's errors mapped onto the connector's one error, keeping MongoDB's error code.

use mongodb::error::{ErrorKind, WriteFailure};
use plugboard_connector::{Error, QueryError};

/// <https://www.mongodb.com/docs/manual/reference/error-codes/>
const UNAUTHORIZED: i32 = 13;
const AUTHENTICATION_FAILED: i32 = 18;
const MAX_TIME_MS_EXPIRED: i32 = 50;
const INTERRUPTED: i32 = 11601;

fn query(code: i32, message: String) -> Error {
    Error::Query(QueryError {
        code: Some(code.to_string()),
        message,
        detail: None,
        position: None,
    })
}

pub(crate) fn map(err: mongodb::error::Error, what: &str) -> Error {
    match *err.kind {
        ErrorKind::Authentication { ref message, .. } => Error::Authentication(message.clone()),
        ErrorKind::Command(ref c) => match c.code {
            AUTHENTICATION_FAILED => {
                Error::Authentication(format!("{} (code {})", c.message, c.code))
            }
            MAX_TIME_MS_EXPIRED => Error::Timeout(format!("{} (code {})", c.message, c.code)),
            INTERRUPTED => Error::Cancelled,
            UNAUTHORIZED => query(c.code, format!("not authorized: {}", c.message)),
            code => query(code, c.message.clone()),
        },
        ErrorKind::Write(WriteFailure::WriteError(ref w)) => query(w.code, w.message.clone()),
        ErrorKind::ServerSelection { ref message, .. } => {
            Error::Connection(format!("{what}: {message}"))
        }
        ErrorKind::Io(ref io) => Error::Connection(format!("{what}: {io}")),
        ErrorKind::ConnectionPoolCleared { ref message, .. } => {
            Error::Connection(format!("{what}: {message}"))
        }
        ErrorKind::InvalidArgument { ref message, .. } => Error::InvalidInput(message.clone()),
        ErrorKind::DnsResolve { ref message, .. } => {
            Error::Connection(format!("{what}: {message}"))
        }
        _ => Error::Connection(format!("{what}: {err}")),
    }
}

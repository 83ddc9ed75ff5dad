//! ClickHouse's HTTP interface: one POST per statement, the SQL in the body, settings in
//! the query string, credentials in headers (never in the URL, which servers log).

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use plugboard_sdk::http::{Client, Response, query_string};
use plugboard_sdk::{Config, Error, QueryError, Result};

/// The default HTTP port, plain and TLS.
pub const PORT: u16 = 8123;
pub const TLS_PORT: u16 = 8443;

/// Server versions, compared as (major, minor).
pub type Version = (u32, u32);

/// The first version taken to bind `{name:Type}` parameters itself (they came in 19.11;
/// 19.12 leaves a margin). Older servers get escaped literals.
pub const SERVER_PARAMETERS: Version = (19, 12);

/// A session's connection to one server.
pub struct ClickHouse {
    client: Client,
    database: String,
    pub tls: bool,
    /// Every statement is sent with `readonly=2`: the server refuses writes (and a
    /// statement cannot lift it), while our output settings are still accepted.
    read_only: bool,
    version: OnceCell<(String, Version)>,
}

/// Settings sent with every statement: 64-bit integers and special floats quoted so no
/// value loses precision through a JSON number.
const OUTPUT_SETTINGS: [(&str, &str); 3] = [
    ("default_format", "JSONCompact"),
    ("output_format_json_quote_64bit_integers", "1"),
    ("output_format_json_quote_denormals", "1"),
];

impl ClickHouse {
    pub fn new(config: &Config) -> Result<ClickHouse> {
        config.reject_unknown_options(&["secure", "read_only"])?;
        let tls = config.bool_option("secure")?.unwrap_or(false);
        let user = config.username.clone().unwrap_or_else(|| "default".into());
        let mut client = Client::for_config(config, if tls { TLS_PORT } else { PORT }, tls)?
            .header("X-ClickHouse-User", &user);
        if let Some(password) = config.password() {
            client = client.header("X-ClickHouse-Key", password);
        }
        Ok(ClickHouse {
            client,
            database: config
                .database
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "default".into()),
            tls,
            read_only: config.bool_option("read_only")?.unwrap_or(false),
            version: OnceCell::new(),
        })
    }

    /// The connection's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Sends `sql` with `settings` and returns the response once its status is known: the
    /// body of a 2xx streams from it, anything else is turned into an error.
    pub fn send(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<Response> {
        let mut pairs: Vec<(&str, &str)> = vec![("database", &self.database)];
        pairs.extend_from_slice(&OUTPUT_SETTINGS);
        pairs.extend_from_slice(settings);
        if self.read_only {
            pairs.push(("readonly", "2"));
        }
        let mut request = self
            .client
            .post(&format!("/?{}", query_string(pairs)))
            .body(sql.as_bytes().to_vec());
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send()?;
        if (200..300).contains(&response.status()) {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text()?;
        Err(server_error(status, &text))
    }

    /// Runs a small statement and returns its whole body.
    pub fn fetch(&self, sql: &str) -> Result<String> {
        Ok(self.send(sql, &[], None)?.text()?)
    }

    /// The server's version text and (major, minor); asked once per session.
    pub fn version(&self) -> Result<&(String, Version)> {
        if let Some(v) = self.version.get() {
            return Ok(v);
        }
        let text = self.fetch("SELECT version() FORMAT TabSeparated")?;
        let text = text.trim().to_owned();
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let parsed = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Ok(self.version.get_or_init(|| (text, parsed)))
    }

    /// Times a trivial request.
    pub fn ping(&self) -> Result<(String, f64)> {
        let started = Instant::now();
        self.fetch("SELECT 1 FORMAT TabSeparated")?;
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let version = self.version()?.0.clone();
        Ok((version, latency))
    }

    /// Stops a running query by its id (from a second request: the first is busy).
    pub fn kill(&self, query_id: &str) {
        let sql = format!(
            "KILL QUERY WHERE query_id = '{}' ASYNC FORMAT TabSeparated",
            crate::params::escape_literal(query_id)
        );
        if let Err(e) = self.send(&sql, &[], Some(Duration::from_secs(5))) {
            plugboard_sdk::log::warn(&format!("could not stop query {query_id}: {e}"));
        }
    }
}

/// ClickHouse's exception code in an error text (`Code: 62, e.displayText() = ...`).
pub fn exception_code(text: &str) -> Option<u32> {
    let after = text.split("Code: ").nth(1)?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The message of an exception text, without the code prefix and the C++ noise.
fn exception_message(text: &str) -> String {
    let text = text.trim();
    let message = text
        .split_once("e.displayText() = ")
        .map(|(_, m)| m)
        .unwrap_or(text);
    let message = message.split(", e.what() = ").next().unwrap_or(message);
    message
        .trim_start_matches("DB::Exception: ")
        .trim()
        .to_owned()
}

/// An error answer as the right kind of error, keeping ClickHouse's own code.
pub fn server_error(status: u16, text: &str) -> Error {
    let code = exception_code(text);
    let message = exception_message(text);
    match code {
        // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
        Some(192 | 193 | 194 | 516) => Error::Authentication(message),
        // TIMEOUT_EXCEEDED
        Some(159) => Error::Timeout(message),
        // QUERY_WAS_CANCELLED
        Some(394) => Error::Cancelled,
        Some(code) => Error::Query(QueryError {
            code: Some(code.to_string()),
            message,
            detail: None,
            position: None,
        }),
        None if status == 401 || status == 403 => Error::Authentication(message),
        None => Error::Connection(format!("ClickHouse answered HTTP {status}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_keep_their_code() {
        let text = "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: SELEC 1, e.what() = DB::Exception\n";
        match server_error(400, text) {
            Error::Query(q) => {
                assert_eq!(q.code.as_deref(), Some("62"));
                assert_eq!(q.message, "Syntax error: failed at position 1: SELEC 1");
            }
            other => panic!("{other:?}"),
        }
        let wrong = "Code: 193, e.displayText() = DB::Exception: Wrong password for user kit, e.what() = DB::Exception";
        assert!(matches!(server_error(401, wrong), Error::Authentication(_)));
        assert!(matches!(
            server_error(
                500,
                "Code: 159, e.displayText() = DB::Exception: Timeout exceeded"
            ),
            Error::Timeout(_)
        ));
        // Newer servers: `Code: 62. DB::Exception: ... (SYNTAX_ERROR) (version 23.8)`.
        assert_eq!(
            exception_code("Code: 62. DB::Exception: Syntax error"),
            Some(62)
        );
        assert!(matches!(
            server_error(502, "bad gateway"),
            Error::Connection(_)
        ));
    }
}

//! Request bodies as users send them, and their validation into what the service stores.
//!
//! Validation reports every problem at once, in words a user can act on. Fields that can
//! carry a secret (`password`, `url`) are read as raw JSON and checked here, because a
//! deserializer's type error would quote the value back.

use plugboard_connector::{Secret, Value};
use serde::{Deserialize, Deserializer};

use crate::store::ConnectionFields;

/// Longest connection name accepted.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest notes accepted.
pub const MAX_NOTES_CHARS: usize = 10_000;
/// Most rows a JSON query answer holds; streaming formats are for more.
pub const MAX_LIMIT: u64 = 100_000;
/// Rows a JSON query answer holds when the request does not say.
pub const DEFAULT_LIMIT: u64 = 1_000;
/// The longest a query may run, and the default when a request does not say.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Reads a field that is present (even as `null`) as `Some`, so absent and null differ.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// The body of create, replace and test-unsaved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: Option<String>,
    pub engine: Option<String>,
    /// A connection URL instead of the discrete fields; may hold a password.
    #[serde(default, deserialize_with = "present")]
    pub url: Option<serde_json::Value>,
    pub host: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub port: Option<serde_json::Value>,
    pub database: Option<String>,
    pub username: Option<String>,
    /// Absent: keep the stored one (on replace); `null`: none; a string: this one.
    #[serde(default, deserialize_with = "present")]
    pub password: Option<serde_json::Value>,
    pub options: Option<serde_json::Value>,
    pub notes: Option<String>,
}

/// What a request says about the password.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordInput {
    /// Not mentioned: on replace, keep the stored one.
    Unchanged,
    /// Explicitly none.
    Cleared,
    /// This one.
    Set(Secret),
}

/// A validated connection.
#[derive(Debug, Clone)]
pub struct ValidConnection {
    pub fields: ConnectionFields,
    pub password: PasswordInput,
}

/// The URL schemes understood, and the engine each names.
const URL_SCHEMES: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("mysql", "mysql"),
    ("mariadb", "mysql"),
    ("mssql", "mssql"),
    ("sqlserver", "mssql"),
    ("mongodb", "mongodb"),
    ("mongodb+srv", "mongodb"),
    ("clickhouse", "clickhouse"),
];

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// A URL query value as the JSON an option would hold: `true`/`false` and integers keep
/// their type (`?connect_timeout_ms=500&tls=true`), anything else stays text.
fn url_option(value: &str) -> serde_json::Value {
    match value {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        v => v
            .parse::<u64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::String(v.to_owned())),
    }
}

impl ConnectionInput {
    /// Validates the input; `known_engines` are the engine ids plugins serve. `Err` holds
    /// one message per problem.
    pub fn validate(self, known_engines: &[&str]) -> Result<ValidConnection, Vec<String>> {
        let mut problems = Vec::new();
        let mut host = self.host.filter(|h| !h.trim().is_empty());
        let mut database = self.database.filter(|d| !d.is_empty());
        let mut username = self.username.filter(|u| !u.is_empty());
        let mut engine = self.engine.map(|e| e.trim().to_ascii_lowercase());
        let mut port = None;
        let mut options = match self.options {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => {
                problems.push("options must be a JSON object".to_owned());
                serde_json::Map::new()
            }
        };
        let mut password = match self.password {
            None => PasswordInput::Unchanged,
            Some(serde_json::Value::Null) => PasswordInput::Cleared,
            Some(serde_json::Value::String(p)) => PasswordInput::Set(Secret::new(p)),
            Some(_) => {
                problems.push("password must be a string or null".to_owned());
                PasswordInput::Unchanged
            }
        };

        match self.port {
            None | Some(serde_json::Value::Null) => {}
            Some(p) => match p.as_u64().filter(|p| (1..=65_535).contains(p)) {
                Some(p) => port = Some(p as u16),
                None => problems.push(format!("port must be an integer from 1 to 65535, got {p}")),
            },
        }

        match self.url {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(text)) => {
                if host.is_some() || port.is_some() || database.is_some() || username.is_some() {
                    problems.push(
                        "give either url or host/port/database/username, not both".to_owned(),
                    );
                }
                // The URL may hold a password: messages below never quote it.
                match url::Url::parse(&text) {
                    Err(e) => problems.push(format!("url is not a valid URL ({e})")),
                    Ok(url) => {
                        match URL_SCHEMES.iter().find(|(s, _)| *s == url.scheme()) {
                            None => problems.push(format!(
                                "url scheme `{}` is not one of {}",
                                url.scheme(),
                                URL_SCHEMES
                                    .iter()
                                    .map(|(s, _)| *s)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                            Some((_, named)) => match &engine {
                                Some(e) if e != named => problems.push(format!(
                                    "engine `{e}` does not match the url's scheme `{}`",
                                    url.scheme()
                                )),
                                _ => engine = Some((*named).to_owned()),
                            },
                        }
                        host = url
                            .host_str()
                            .map(|h| h.trim_matches(['[', ']']).to_owned());
                        port = url.port();
                        let path = url.path().trim_start_matches('/');
                        database = (!path.is_empty()).then(|| decode(path));
                        username = (!url.username().is_empty()).then(|| decode(url.username()));
                        if let Some(p) = url.password() {
                            if !matches!(password, PasswordInput::Unchanged) {
                                problems.push(
                                    "give the password in the url or in password, not both"
                                        .to_owned(),
                                );
                            }
                            password = PasswordInput::Set(Secret::new(decode(p)));
                        }
                        for (key, value) in url.query_pairs() {
                            options
                                .entry(key.into_owned())
                                .or_insert_with(|| url_option(&value));
                        }
                    }
                }
            }
            Some(_) => problems.push("url must be a string".to_owned()),
        }

        let name = self.name.map(|n| n.trim().to_owned()).unwrap_or_default();
        if name.is_empty() {
            problems.push("name is required".to_owned());
        } else if name.chars().count() > MAX_NAME_CHARS {
            problems.push(format!("name must be at most {MAX_NAME_CHARS} characters"));
        } else if name.chars().any(char::is_control) {
            problems.push("name must not contain control characters".to_owned());
        }
        match &engine {
            None => problems.push(format!(
                "engine is required (known engines: {})",
                known_engines.join(", ")
            )),
            Some(e) if !known_engines.contains(&e.as_str()) => problems.push(format!(
                "unknown engine `{e}` (known engines: {})",
                known_engines.join(", ")
            )),
            Some(_) => {}
        }
        if self
            .notes
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS)
        {
            problems.push(format!(
                "notes must be at most {MAX_NOTES_CHARS} characters"
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ValidConnection {
            fields: ConnectionFields {
                name,
                engine: engine.unwrap_or_default(),
                host,
                port,
                database,
                username,
                options,
                notes: self.notes,
            },
            password,
        })
    }
}

/// The body of the query endpoint: `sql` for SQL engines, or `command` (a JSON object) for
/// document stores.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub command: Option<serde_json::Value>,
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    pub limit: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// A validated query.
#[derive(Debug, Clone)]
pub struct ValidQuery {
    pub sql: String,
    pub params: Vec<Value>,
    pub limit: usize,
    pub timeout_ms: u32,
}

impl QueryInput {
    /// Validates the query; `Err` holds one message per problem.
    pub fn validate(self) -> Result<ValidQuery, Vec<String>> {
        let mut problems = Vec::new();
        let text = match (self.sql, self.command) {
            (Some(sql), None) if !sql.trim().is_empty() => sql,
            (Some(_), None) => {
                problems.push("sql must not be empty".to_owned());
                String::new()
            }
            (None, Some(command @ serde_json::Value::Object(_))) => command.to_string(),
            (None, Some(_)) => {
                problems.push("command must be a JSON object".to_owned());
                String::new()
            }
            (Some(_), Some(_)) => {
                problems.push("give either sql or command, not both".to_owned());
                String::new()
            }
            (None, None) => {
                problems.push("sql (or, for document stores, command) is required".to_owned());
                String::new()
            }
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            problems.push(format!("limit must be from 1 to {MAX_LIMIT}"));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            problems.push(format!("timeout_ms must be from 1 to {MAX_TIMEOUT_MS}"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ValidQuery {
            sql: text,
            params: self.params.iter().map(Value::from_json).collect(),
            limit: limit as usize,
            timeout_ms: timeout_ms as u32,
        })
    }
}

/// Most statements a transaction takes.
pub const MAX_STATEMENTS: usize = 1_000;

/// The body of the transaction endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionInput {
    pub statements: Vec<StatementInput>,
    /// Rows kept per statement's result.
    pub limit: Option<u64>,
}

/// One statement of a transaction.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementInput {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    pub timeout_ms: Option<u64>,
}

/// A validated transaction.
#[derive(Debug, Clone)]
pub struct ValidTransaction {
    pub statements: Vec<ValidQuery>,
    pub limit: usize,
}

impl TransactionInput {
    /// Validates every statement; `Err` holds one message per problem, naming the statement.
    pub fn validate(self) -> Result<ValidTransaction, Vec<String>> {
        let mut problems = Vec::new();
        if self.statements.is_empty() || self.statements.len() > MAX_STATEMENTS {
            problems.push(format!(
                "statements must hold 1 to {MAX_STATEMENTS} statements"
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let mut statements = Vec::with_capacity(self.statements.len());
        for (i, statement) in self.statements.into_iter().enumerate() {
            let query = QueryInput {
                sql: Some(statement.sql),
                command: None,
                params: statement.params,
                limit: Some(limit),
                timeout_ms: statement.timeout_ms,
            };
            match query.validate() {
                Ok(valid) => statements.push(valid),
                Err(p) => problems.extend(p.into_iter().map(|p| format!("statements[{i}]: {p}"))),
            }
        }
        if !problems.is_empty() {
            problems.dedup();
            return Err(problems);
        }
        Ok(ValidTransaction {
            statements,
            limit: limit as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(body: serde_json::Value) -> ConnectionInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_url_fills_the_fields_and_its_password_is_never_quoted() {
        let v = input(json!({
            "name": "main",
            "url": "postgresql://app%40corp:p%40ss-w0rd@db.example:6543/sales?sslmode=require"
        }))
        .validate(&["postgres"])
        .unwrap();
        assert_eq!(v.fields.engine, "postgres");
        assert_eq!(v.fields.host.as_deref(), Some("db.example"));
        assert_eq!(v.fields.port, Some(6543));
        assert_eq!(v.fields.database.as_deref(), Some("sales"));
        assert_eq!(v.fields.username.as_deref(), Some("app@corp"));
        assert_eq!(v.password, PasswordInput::Set(Secret::new("p@ss-w0rd")));
        assert_eq!(v.fields.options["sslmode"], "require");
        let v = input(json!({"name": "m", "url": "mssql://sa:pw@h/db?trust_server_certificate=true&connect_timeout_ms=500"}))
            .validate(&["mssql"])
            .unwrap();
        assert_eq!(v.fields.options["trust_server_certificate"], true);
        assert_eq!(v.fields.options["connect_timeout_ms"], 500);

        let problems = input(json!({"name": "x", "url": "nosuch://u:hunter2@h/db"}))
            .validate(&["postgres"])
            .unwrap_err();
        assert!(
            problems.iter().all(|p| !p.contains("hunter2")),
            "{problems:?}"
        );
        let problems = input(json!({"name": "x", "password": 12345}))
            .validate(&["postgres"])
            .unwrap_err();
        assert!(
            problems.iter().all(|p| !p.contains("12345")),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = input(json!({"name": "", "engine": "oracle", "port": 70000}))
            .validate(&["postgres", "sqlite"])
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("port must be an integer from 1 to 65535"))
        );
        assert!(problems.iter().any(|p| p == "name is required"));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown engine `oracle` (known engines: postgres, sqlite)"))
        );
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        let problems = input(json!({"name": long, "engine": "postgres"}))
            .validate(&["postgres"])
            .unwrap_err();
        assert_eq!(
            problems,
            [format!("name must be at most {MAX_NAME_CHARS} characters")]
        );
    }

    #[test]
    fn password_absent_null_and_set_differ() {
        let ok = |body| input(body).validate(&["postgres"]).unwrap().password;
        assert_eq!(
            ok(json!({"name": "a", "engine": "postgres"})),
            PasswordInput::Unchanged
        );
        assert_eq!(
            ok(json!({"name": "a", "engine": "postgres", "password": null})),
            PasswordInput::Cleared
        );
        assert_eq!(
            ok(json!({"name": "a", "engine": "postgres", "password": "pw"})),
            PasswordInput::Set(Secret::new("pw"))
        );
    }

    #[test]
    fn query_bounds_are_checked() {
        let q = |body| {
            serde_json::from_value::<QueryInput>(body)
                .unwrap()
                .validate()
        };
        let v = q(json!({"sql": "select 1"})).unwrap();
        assert_eq!((v.limit, v.timeout_ms), (1000, 30_000));
        assert!(q(json!({"sql": " "})).is_err());
        assert!(q(json!({})).is_err());
        assert!(q(json!({"sql": "x", "command": {"find": "c"}})).is_err());
        assert!(q(json!({"command": "find"})).is_err());
        assert_eq!(
            q(json!({"command": {"find": "c"}})).unwrap().sql,
            r#"{"find":"c"}"#
        );
        assert!(q(json!({"sql": "x", "limit": 0})).is_err());
        assert!(q(json!({"sql": "x", "limit": MAX_LIMIT + 1})).is_err());
        assert!(q(json!({"sql": "x", "timeout_ms": 0})).is_err());
    }
}

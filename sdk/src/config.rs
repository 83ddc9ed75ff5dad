//! A connection's configuration as a plugin reads it: the connection's own fields and its
//! options, with readers that turn a wrong option into a clear [`Error::Configuration`].

use serde_json::{Map, Value as Json};

use crate::{ConnectionConfig, Error, Result};

/// What a session is opened from.
#[derive(Clone)]
pub struct Config {
    /// The engine id the connection names.
    pub engine: String,
    /// The server's host name or address.
    pub host: Option<String>,
    /// The server's port; the plugin's default when `None`.
    pub port: Option<u16>,
    /// The database (or catalog, keyspace, ...) the connection names.
    pub database: Option<String>,
    /// The user to log in as.
    pub username: Option<String>,
    password: Option<String>,
    /// The connection's options.
    pub options: Map<String, Json>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("options", &self.options)
            .finish()
    }
}

impl Config {
    pub(crate) fn from_wit(config: ConnectionConfig) -> Result<Config> {
        let options = match serde_json::from_str::<Json>(&config.options) {
            Ok(Json::Object(map)) => map,
            Ok(_) | Err(_) => {
                return Err(Error::Configuration(
                    "the connection's options are not a JSON object".into(),
                ));
            }
        };
        Ok(Config {
            engine: config.engine,
            host: config.host,
            port: config.port,
            database: config.database,
            username: config.username,
            password: config.password,
            options,
        })
    }

    /// A configuration built by hand (for tests of a plugin's own logic).
    pub fn new(engine: &str) -> Config {
        Config {
            engine: engine.into(),
            host: None,
            port: None,
            database: None,
            username: None,
            password: None,
            options: Map::new(),
        }
    }

    /// Sets the password (for tests).
    pub fn with_password(mut self, password: &str) -> Config {
        self.password = Some(password.into());
        self
    }

    /// The password, for the one place that sends it to the target. Never log it or put it
    /// in an error message.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The host, which must be set.
    pub fn required_host(&self) -> Result<&str> {
        self.host
            .as_deref()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| Error::Configuration("`host` is required".into()))
    }

    /// Fails on any option not in `known`, so a typo does not pass silently.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        let mut unknown: Vec<&str> = self
            .options
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::Configuration(format!(
            "unknown option(s) {}; this engine takes: {}",
            unknown.join(", "),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )))
    }

    /// A text option, if set.
    pub fn text_option(&self, name: &str) -> Result<Option<&str>> {
        match self.options.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "text", other)),
        }
    }

    /// A boolean option, if set.
    pub fn bool_option(&self, name: &str) -> Result<Option<bool>> {
        match self.options.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(name, "true or false", other)),
        }
    }

    /// An integer option within `min..=max`, if set.
    pub fn integer_option(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.options.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
                _ => Err(Error::Configuration(format!(
                    "option `{name}` must be an integer from {min} to {max}, not {n}"
                ))),
            },
            Some(other) => Err(wrong_type(name, "an integer", other)),
        }
    }
}

fn wrong_type(name: &str, expected: &str, got: &Json) -> Error {
    let kind = match got {
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
        Json::Null => "null",
    };
    Error::Configuration(format!("option `{name}` must be {expected}, not {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(options: &str) -> Result<Config> {
        Config::from_wit(ConnectionConfig {
            engine: "x".into(),
            host: Some("h".into()),
            port: None,
            database: None,
            username: None,
            password: Some("hunter2".into()),
            options: options.into(),
        })
    }

    #[test]
    fn options_are_read_with_clear_errors() {
        let c = config(r#"{"secure": true, "timeout": 5, "name": 3}"#).unwrap();
        assert_eq!(c.bool_option("secure").unwrap(), Some(true));
        assert_eq!(c.integer_option("timeout", 1, 10).unwrap(), Some(5));
        assert!(c.integer_option("timeout", 6, 10).is_err());
        let e = c.text_option("name").unwrap_err();
        assert!(e.to_string().contains("must be text, not a number"), "{e}");
        let e = c.reject_unknown_options(&["secure"]).unwrap_err();
        assert!(e.to_string().contains("name, timeout"), "{e}");
        assert!(config("[1]").is_err());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let c = config("{}").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password(), Some("hunter2"));
    }
}

//! What a plugin says about itself (WIT `plugin-info`) and what a session is opened from
//! (WIT `connection-config`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kind of a configuration field, so a client can build a form for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum FieldKind {
    Text,
    Integer,
    Boolean,
    /// A JSON value.
    Json,
    /// A file-system path on the host running Plugboard.
    Path,
}

/// One configuration field a plugin takes. `host`, `port`, `database`, `username` and
/// `password` are the connection's own fields; every other lives in its `options`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigField {
    /// Field name, e.g. `port` or `sslmode`.
    pub name: String,
    /// What kind of value it takes.
    pub kind: FieldKind,
    /// Whether a connection must set it.
    pub required: bool,
    /// A secret is stored encrypted and never returned.
    pub secret: bool,
    /// The default, as the text a user would type.
    pub default: Option<String>,
    /// One sentence for a form's help text.
    pub description: String,
}

impl ConfigField {
    /// A field with no default that is neither required nor secret.
    pub fn new(name: &str, kind: FieldKind, description: &str) -> Self {
        ConfigField {
            name: name.to_owned(),
            kind,
            required: false,
            secret: false,
            default: None,
            description: description.to_owned(),
        }
    }

    /// Marks the field required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the field secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Sets the field's default.
    pub fn default(mut self, default: impl Into<String>) -> Self {
        self.default = Some(default.into());
        self
    }
}

/// What a plugin can do beyond the basics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[allow(missing_docs)]
pub struct Capabilities {
    pub transactions: bool,
    pub cancellation: bool,
    pub streaming: bool,
    pub multiple_databases: bool,
    pub documents: bool,
}

/// Static facts about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// Unique plugin name, e.g. `postgres`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line on what it connects to.
    pub description: String,
    /// The engine ids it serves.
    pub engines: Vec<String>,
    /// The configuration fields it takes.
    pub config_fields: Vec<ConfigField>,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// A secret in memory: its `Debug` never shows it, so it cannot reach a log by accident.
/// The only way to read it is [`Secret::expose`], which makes each use easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must hand it to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a session is opened from: a connection's fields, its secret decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    /// The engine id the connection was registered with.
    pub engine: String,
    /// Host name or address.
    pub host: Option<String>,
    /// TCP port; the plugin's default when absent.
    pub port: Option<u16>,
    /// Database name.
    pub database: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Every other setting, as a JSON object.
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl ConnectionConfig {
    /// A configuration for `engine` with no field or option set yet.
    pub fn new(engine: impl Into<String>) -> Self {
        ConnectionConfig {
            engine: engine.into(),
            host: None,
            port: None,
            database: None,
            username: None,
            password: None,
            options: serde_json::Map::new(),
        }
    }

    /// The host, which the engine needs.
    pub fn required_host(&self) -> Result<&str> {
        self.host
            .as_deref()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::Configuration(format!("{} needs a host", self.engine)))
    }

    /// The username, which the engine needs.
    pub fn required_username(&self) -> Result<&str> {
        self.username
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Configuration(format!("{} needs a username", self.engine)))
    }

    /// Refuses any option not in `known`, so a typo (`sslmod`) is reported instead of being
    /// silently ignored.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        match self.options.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(Error::Configuration(format!(
                "unknown option `{unknown}` for {}; known options: {}",
                self.engine,
                known.join(", ")
            ))),
        }
    }

    /// A string option; absent or `null` is `None`.
    pub fn text_option(&self, name: &str) -> Result<Option<&str>> {
        match self.options.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::Configuration(format!(
                "option `{name}` must be a string"
            ))),
        }
    }

    /// A boolean option; absent or `null` is `None`.
    pub fn bool_option(&self, name: &str) -> Result<Option<bool>> {
        match self.options.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Error::Configuration(format!(
                "option `{name}` must be true or false"
            ))),
        }
    }

    /// An integer option within `range`; absent or `null` is `None`.
    pub fn integer_option(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>> {
        match self.options.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| range.contains(n))
                .map(Some)
                .ok_or_else(|| {
                    Error::Configuration(format!(
                        "option `{name}` must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ))
                }),
        }
    }

    /// `options.read_only`: whether the engine must refuse writes (default `false`). A
    /// plugin that cannot make its engine enforce it rejects `true` with
    /// [`ConnectionConfig::refuse_read_only`].
    pub fn read_only(&self) -> Result<bool> {
        Ok(self.bool_option("read_only")?.unwrap_or(false))
    }

    /// A configuration error for `read_only: true` on an engine whose plugin cannot make the
    /// engine enforce it: a regex over SQL would be a promise it cannot keep.
    pub fn refuse_read_only(&self, advice: &str) -> Result<()> {
        if self.read_only()? {
            return Err(Error::Configuration(format!(
                "read_only is not enforced by the {} plugin: {advice}",
                self.engine
            )));
        }
        Ok(())
    }

    /// `options.pool`, with bounded defaults for what it leaves out.
    pub fn pool_settings(&self) -> Result<PoolSettings> {
        let pool = match self.options.get("pool") {
            None | Some(serde_json::Value::Null) => PoolSettings::default(),
            Some(v) => PoolSettings::deserialize(v)
                .map_err(|e| Error::Configuration(format!("options.pool: {e}")))?,
        };
        if !(1..=1000).contains(&pool.max_size) {
            return Err(Error::Configuration(
                "options.pool.max_size must be from 1 to 1000".into(),
            ));
        }
        if pool.acquire_timeout_ms == 0 {
            return Err(Error::Configuration(
                "options.pool.acquire_timeout_ms must be positive".into(),
            ));
        }
        Ok(pool)
    }
}

/// `options.pool` for plugins that pool connections: bounded by default, so one connection
/// cannot exhaust its target. `0` for a timeout or lifetime means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: u32,
    /// How long a request waits for a connection.
    pub acquire_timeout_ms: u64,
    /// Idle connections are closed after this long.
    pub idle_timeout_s: u64,
    /// Connections are replaced after this long.
    pub max_lifetime_s: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: 5,
            acquire_timeout_ms: 10_000,
            idle_timeout_s: 300,
            max_lifetime_s: 3_600,
        }
    }
}

impl PoolSettings {
    /// How long a request waits for a connection.
    pub fn acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.acquire_timeout_ms)
    }

    /// After how long idle connections close; `None` for never (`0`).
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        (self.idle_timeout_s > 0).then(|| std::time::Duration::from_secs(self.idle_timeout_s))
    }

    /// After how long connections are replaced; `None` for never (`0`).
    pub fn max_lifetime(&self) -> Option<std::time::Duration> {
        (self.max_lifetime_s > 0).then(|| std::time::Duration::from_secs(self.max_lifetime_s))
    }

    /// The default, as the JSON a configuration form shows.
    pub fn default_json() -> String {
        serde_json::to_string(&PoolSettings::default()).expect("pool settings serialize")
    }
}

/// What a successful test reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerInfo {
    /// The server's version as it reports it.
    pub version: String,
    /// Round-trip time of a trivial request, in milliseconds.
    pub latency_ms: f64,
    /// Whether the session's transport is encrypted.
    pub tls: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_options(options: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            engine: "x".into(),
            host: None,
            port: None,
            database: None,
            username: None,
            password: None,
            options: options.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn options_are_typed_and_checked() {
        let c =
            with_options(serde_json::json!({"a": "s", "b": true, "n": 7, "pool": {"max_size": 2}}));
        assert_eq!(c.text_option("a").unwrap(), Some("s"));
        assert_eq!(c.bool_option("b").unwrap(), Some(true));
        assert_eq!(c.integer_option("n", 1..=10).unwrap(), Some(7));
        assert!(c.integer_option("n", 1..=5).is_err());
        assert!(c.text_option("b").is_err());
        assert_eq!(c.text_option("missing").unwrap(), None);
        assert_eq!(c.pool_settings().unwrap().max_size, 2);
        assert_eq!(c.pool_settings().unwrap().idle_timeout_s, 300);
        let forever = PoolSettings {
            idle_timeout_s: 0,
            max_lifetime_s: 0,
            ..PoolSettings::default()
        };
        assert_eq!(
            (forever.idle_timeout(), forever.max_lifetime()),
            (None, None)
        );
        assert_eq!(
            PoolSettings::default().acquire_timeout().as_millis(),
            10_000
        );
        let err = c.reject_unknown_options(&["a", "b", "n"]).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("`pool`")));
        for bad in [
            serde_json::json!({"max_size": 0}),
            serde_json::json!({"max": 1}),
        ] {
            let c = with_options(serde_json::json!({ "pool": bad }));
            assert!(matches!(c.pool_settings(), Err(Error::Configuration(_))));
        }
    }

    #[test]
    fn secret_debug_never_shows_the_secret() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let config = ConnectionConfig {
            engine: "postgres".into(),
            host: None,
            port: None,
            database: None,
            username: None,
            password: Some(s),
            options: Default::default(),
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}

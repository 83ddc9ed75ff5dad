//! What a plugin says about itself (WIT `plugin-info`) and what a session is opened from
//! (WIT `connection-config`).

use serde::Serialize;

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

//! From a connection's configuration to sqlx connect options and a bounded pool.

use std::str::FromStr;
use std::time::Duration;

use plugboard_connector::{ConnectionConfig, Error, PoolSettings, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, PgPool};

/// The options this plugin understands; any other key is a configuration error, so a typo
/// (`sslmod`) is reported instead of silently ignored.
pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "application_name",
    "connect_timeout_ms",
    "pool",
];

pub(crate) const DEFAULT_PORT: u16 = 5432;

/// Everything a session needs to connect, checked once when the session opens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub options: PgConnectOptions,
    pub pool: PoolSettings,
    pub connect_timeout: Duration,
    /// `host:port`, for messages; never the password.
    pub address: String,
}

impl Target {
    pub(crate) fn from_config(config: &ConnectionConfig) -> Result<Target> {
        config.reject_unknown_options(KNOWN_OPTIONS)?;
        let host = config.required_host()?;
        let username = config.required_username()?;
        let port = config.port.unwrap_or(DEFAULT_PORT);

        let mut options = PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(port)
            .username(username)
            .application_name(
                config
                    .text_option("application_name")?
                    .unwrap_or("plugboard"),
            )
            // A statement's text may hold a secret (`ALTER ROLE .. PASSWORD '..'`): sqlx must
            // not log it. Plugboard decides what of a query is recorded.
            .disable_statement_logging();
        if let Some(db) = config.database.as_deref().filter(|d| !d.is_empty()) {
            options = options.database(db);
        }
        if let Some(password) = &config.password {
            options = options.password(password.expose());
        }
        if let Some(mode) = config.text_option("sslmode")? {
            let mode = PgSslMode::from_str(mode).map_err(|_| {
                Error::Configuration(format!(
                    "sslmode `{mode}` is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                ))
            })?;
            options = options.ssl_mode(mode);
        }
        if let Some(path) = config.text_option("sslrootcert")? {
            options = options.ssl_root_cert(path);
        }

        let connect_timeout = Duration::from_millis(
            config
                .integer_option("connect_timeout_ms", 1..=600_000)?
                .unwrap_or(10_000),
        );
        let pool = config.pool_settings()?;
        Ok(Target {
            options,
            pool,
            connect_timeout,
            address: format!("{host}:{port}"),
        })
    }

    /// A pool that connects on first use, so opening a session costs no round trip.
    pub(crate) fn lazy_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(self.pool.max_size)
            .min_connections(0)
            .acquire_timeout(self.pool.acquire_timeout())
            .idle_timeout(self.pool.idle_timeout())
            .max_lifetime(self.pool.max_lifetime())
            .connect_lazy_with(self.options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(options: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            engine: "postgres".into(),
            host: Some("db.internal".into()),
            port: None,
            database: Some("app".into()),
            username: Some("app".into()),
            password: None,
            options: options.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn defaults_are_bounded() {
        let t = Target::from_config(&config(json!({}))).unwrap();
        assert_eq!(t.pool, PoolSettings::default());
        assert_eq!(t.pool.max_size, 5);
        assert_eq!(t.address, "db.internal:5432");
    }

    #[test]
    fn pool_settings_are_read_and_checked() {
        let t = Target::from_config(&config(
            json!({"pool": {"max_size": 2, "idle_timeout_s": 0}}),
        ))
        .unwrap();
        assert_eq!(t.pool.max_size, 2);
        assert_eq!(t.pool.idle_timeout_s, 0);
        let err = Target::from_config(&config(json!({"pool": {"max_size": 0}}))).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("max_size")));
        let err = Target::from_config(&config(json!({"pool": {"max": 3}}))).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("unknown field `max`")));
    }

    #[test]
    fn typos_and_bad_values_are_configuration_errors() {
        let err = Target::from_config(&config(json!({"sslmod": "require"}))).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("`sslmod`")));
        let err = Target::from_config(&config(json!({"sslmode": "sometimes"}))).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("sometimes")));
        let mut no_host = config(json!({}));
        no_host.host = None;
        assert!(matches!(
            Target::from_config(&no_host),
            Err(Error::Configuration(_))
        ));
    }
}

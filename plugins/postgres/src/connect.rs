//! From a connection's configuration to sqlx connect options and a bounded pool.

use std::str::FromStr;
use std::time::Duration;

use plugboard_connector::{
    ConnectionConfig, Error, PING_AFTER_IDLE, PoolMeter, PoolSettings, PoolStatus, Result,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{
    ConnectOptions, Connection as _, Executor as _, PgPool, Postgres, TransactionManager as _,
};

/// The options this plugin understands; any other key is a configuration error, so a typo
/// (`sslmod`) is reported instead of silently ignored.
pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "application_name",
    "connect_timeout_ms",
    "pool",
    "read_only",
];

pub(crate) const DEFAULT_PORT: u16 = 5432;

/// Everything a session needs to connect, checked once when the session opens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub options: PgConnectOptions,
    pub pool: PoolSettings,
    pub connect_timeout: Duration,
    /// Every query runs in a `READ ONLY` transaction, and sessions default to read-only.
    pub read_only: bool,
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
        // Every connection starts with the timeout most queries ask for, so they need no
        // round trip to set it (see `query::start`).
        options = options.options([(
            "statement_timeout",
            crate::query::DEFAULT_STATEMENT_TIMEOUT_MS,
        )]);
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
        let read_only = config.read_only()?;
        if read_only {
            // Belt and braces: introspection and anything else outside a query's own
            // transaction is read-only too.
            options = options.options([("default_transaction_read_only", "on")]);
        }
        Ok(Target {
            options,
            pool,
            connect_timeout,
            read_only,
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
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // PostgreSQL 14+ can notice, during a long query, that its client is
                    // gone; that is how dropping a query's connection stops it on the
                    // server. Older servers stop at their next write instead.
                    conn.execute(
                        "SELECT set_config('client_connection_check_interval', '200ms', false) \
                         WHERE current_setting('server_version_num')::int >= 140000",
                    )
                    .await
                    .map(drop)
                })
            })
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A query on a read-only connection runs in a transaction; whatever
                    // way it ended, none is left open on a pooled connection.
                    if conn.is_in_transaction() {
                        <Postgres as sqlx::Database>::TransactionManager::start_rollback(conn);
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(self.options.clone())
    }
}

/// A session's pool with its meter: every acquire goes through [`Pool::acquire`], so waits
/// and timeouts are counted and a full pool is told apart from an unreachable server.
pub(crate) struct Pool {
    pub pool: PgPool,
    meter: PoolMeter,
    settings: PoolSettings,
}

impl Pool {
    pub(crate) fn new(target: &Target) -> Pool {
        Pool {
            pool: target.lazy_pool(),
            meter: PoolMeter::default(),
            settings: target.pool,
        }
    }

    /// A pooled connection, or `PoolExhausted` when every one stayed busy past the acquire
    /// timeout.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Postgres>> {
        let acquired = self
            .meter
            .acquire(self.pool.acquire(), |e| {
                matches!(e, sqlx::Error::PoolTimedOut)
            })
            .await;
        match acquired {
            Ok(conn) => Ok(conn),
            Err(sqlx::Error::PoolTimedOut)
                if self.pool.size() >= self.settings.max_size && self.pool.num_idle() == 0 =>
            {
                Err(Error::PoolExhausted(format!(
                    "all {} pooled connections stayed busy for {} ms",
                    self.settings.max_size, self.settings.acquire_timeout_ms
                )))
            }
            Err(e) => Err(crate::error::map(e, "acquiring a connection")),
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        self.meter.status(
            self.settings.max_size,
            self.pool.size(),
            u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        )
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

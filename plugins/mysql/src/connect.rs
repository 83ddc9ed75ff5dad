//! From a connection's configuration to sqlx connect options and a bounded pool.

use std::str::FromStr;
use std::time::Duration;

use plugboard_connector::{
    ConnectionConfig, Error, PING_AFTER_IDLE, PoolMeter, PoolSettings, PoolStatus, Result,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions as _, Connection as _, MySql, MySqlPool, TransactionManager as _};

pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "ssl_mode",
    "ssl_ca",
    "connect_timeout_ms",
    "pool",
    "read_only",
];
pub(crate) const DEFAULT_PORT: u16 = 3306;

/// Everything a session needs to connect, checked once when the session opens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub options: MySqlConnectOptions,
    pub pool: PoolSettings,
    pub connect_timeout: Duration,
    /// Every query runs in a `READ ONLY` transaction.
    pub read_only: bool,
    /// The database the connection names, if any.
    pub database: Option<String>,
    /// `host:port`, for messages; never the password.
    pub address: String,
}

impl Target {
    pub(crate) fn from_config(config: &ConnectionConfig) -> Result<Target> {
        config.reject_unknown_options(KNOWN_OPTIONS)?;
        let host = config.required_host()?;
        let username = config.required_username()?;
        let port = config.port.unwrap_or(DEFAULT_PORT);
        let mut options = MySqlConnectOptions::new()
            .host(host)
            .port(port)
            .username(username)
            .charset("utf8mb4")
            // A statement's text may hold a secret: sqlx must not log it.
            .disable_statement_logging();
        let database = config.database.clone().filter(|d| !d.is_empty());
        if let Some(db) = &database {
            options = options.database(db);
        }
        if let Some(password) = &config.password {
            options = options.password(password.expose());
        }
        if let Some(mode) = config.text_option("ssl_mode")? {
            let mode = MySqlSslMode::from_str(mode).map_err(|_| {
                Error::Configuration(format!(
                    "ssl_mode `{mode}` is not one of disabled, preferred, required, verify_ca, \
                     verify_identity"
                ))
            })?;
            options = options.ssl_mode(mode);
        }
        if let Some(ca) = config.text_option("ssl_ca")? {
            options = options.ssl_ca(ca);
        }
        let connect_timeout = Duration::from_millis(
            config
                .integer_option("connect_timeout_ms", 1..=600_000)?
                .unwrap_or(10_000),
        );
        Ok(Target {
            options,
            pool: config.pool_settings()?,
            connect_timeout,
            read_only: config.read_only()?,
            database,
            address: format!("{host}:{port}"),
        })
    }

    /// A pool that connects on first use.
    pub(crate) fn lazy_pool(&self) -> MySqlPool {
        MySqlPoolOptions::new()
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
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A query on a read-only connection runs in a transaction; whatever
                    // way it ended, none is left open on a pooled connection.
                    if conn.is_in_transaction() {
                        <MySql as sqlx::Database>::TransactionManager::start_rollback(conn);
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
    pub pool: MySqlPool,
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
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<MySql>> {
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
            Err(e) => Err(crate::error::map(e, "acquiring a connection", false)),
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

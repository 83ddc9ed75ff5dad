//! Plugboard's native MySQL and MariaDB plugin (engine id `mysql`).
//!
//! Laid out as every plugin is: [`connect`] builds connect options and a bounded pool,
//! [`introspect`] reads `information_schema`, [`query`] streams results and stops a query
//! past its deadline with `KILL QUERY`, [`types`] maps types and binary-protocol values,
//! [`error`] maps errors (keeping the server's errno).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use plugboard_connector::{
    Capabilities, ConfigField, ConnectionConfig, Error, FieldKind, IntrospectOptions, Plugin,
    PluginInfo, PoolSettings, PoolStatus, QueryRequest, Result, ResultStream, SchemaInfo,
    ServerInfo, Session, StatementResult, TransactionError,
};
use sqlx::{ConnectOptions as _, Connection as _};

mod connect;
mod error;
pub mod introspect;
mod query;
mod types;

use connect::{Pool, Target};

/// How long introspection may run.
const INTROSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// The MySQL/MariaDB plugin.
pub struct MysqlPlugin {
    info: PluginInfo,
}

impl Default for MysqlPlugin {
    fn default() -> Self {
        let field = ConfigField::new;
        MysqlPlugin {
            info: PluginInfo {
                name: "mysql".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "MySQL and MariaDB, natively (sqlx)".into(),
                engines: vec!["mysql".into()],
                config_fields: vec![
                    field("host", FieldKind::Text, "Server host name or address").required(),
                    field("port", FieldKind::Integer, "Server port").default(connect::DEFAULT_PORT.to_string()),
                    field("database", FieldKind::Text, "Default database; introspection reads it alone"),
                    field("username", FieldKind::Text, "User to log in as").required(),
                    field("password", FieldKind::Text, "The user's password").secret(),
                    field("ssl_mode", FieldKind::Text, "disabled, preferred, required, verify_ca or verify_identity")
                        .default("preferred"),
                    field("ssl_ca", FieldKind::Path, "CA certificate file for verify_ca and verify_identity"),
                    field("connect_timeout_ms", FieldKind::Integer, "How long a test waits to connect").default("10000"),
                    field("read_only", FieldKind::Boolean, "Refuse writes: every query runs in a READ ONLY transaction")
                        .default("false"),
                    field("pool", FieldKind::Json, "Pool settings: max_size, acquire_timeout_ms, idle_timeout_s, max_lifetime_s")
                        .default(PoolSettings::default_json()),
                ],
                capabilities: Capabilities {
                    transactions: true,
                    cancellation: true,
                    streaming: true,
                    multiple_databases: true,
                    documents: false,
                },
            },
        }
    }
}

#[async_trait]
impl Plugin for MysqlPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let target = Target::from_config(&config)?;
        let pool = Pool::new(&target);
        Ok(Box::new(MysqlSession { target, pool }))
    }
}

struct MysqlSession {
    target: Target,
    pool: Pool,
}

#[async_trait]
impl Session for MysqlSession {
    async fn test(&self) -> Result<ServerInfo> {
        let connecting = format!("connecting to {}", self.target.address);
        let mut conn =
            tokio::time::timeout(self.target.connect_timeout, self.target.options.connect())
                .await
                .map_err(|_| {
                    Error::Connection(format!(
                        "{connecting}: no answer within {} ms",
                        self.target.connect_timeout.as_millis()
                    ))
                })?
                .map_err(|e| error::map(e, &connecting, false))?;
        let started = Instant::now();
        conn.ping()
            .await
            .map_err(|e| error::map(e, "pinging", false))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| error::map(e, "reading the server version", false))?;
        // A non-empty Ssl_cipher is the session's TLS cipher. (A server without the status
        // variable has no TLS to report.)
        let cipher: Option<(String, String)> =
            sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                .fetch_optional(&mut conn)
                .await
                .unwrap_or(None);
        let _ = conn.close().await;
        Ok(ServerInfo {
            version,
            latency_ms,
            tls: cipher.is_some_and(|(_, c)| !c.is_empty()),
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA ORDER BY 1",
        )
        .fetch_all(&self.pool.pool)
        .await
        .map_err(|e| error::map(e, "listing databases", false))
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let mut conn = self.pool.acquire().await?;
        tokio::time::timeout(
            INTROSPECT_TIMEOUT,
            introspect::introspect(&mut conn, self.target.database.as_deref(), options),
        )
        .await
        .map_err(|_| {
            // The connection may be mid-query: do not return it to the pool.
            Error::Timeout("introspection ran past 120 s".into())
        })?
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        query::start(&self.pool, &self.target, request).await
    }

    async fn transaction(
        &self,
        statements: Vec<QueryRequest>,
        max_rows: usize,
    ) -> std::result::Result<Vec<StatementResult>, TransactionError> {
        query::transaction(&self.pool, &self.target, statements, max_rows).await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(self.pool.status())
    }

    async fn close(&self) {
        self.pool.pool.close().await;
    }
}

//! Plugboard's native PostgreSQL plugin.
//!
//! Laid out as every plugin is: [`connect`] turns a connection's configuration into connect
//! options and a bounded pool, [`introspect`] reads the catalogs, [`query`] streams results,
//! [`types`] maps types and values, [`error`] maps errors (keeping the SQLSTATE).
//!
//! A session owns one pool, created lazily: opening a session costs no round trip, and the
//! first call connects. `test` opens a fresh connection of its own instead of borrowing a
//! pooled one, so that it reports on the server as it answers now (and the TLS a new
//! connection negotiates), not on a connection made minutes ago.

use std::time::Instant;

use async_trait::async_trait;
use plugboard_connector::{
    Capabilities, ConfigField, ConnectionConfig, Error, FieldKind, IntrospectOptions, Plugin,
    PluginInfo, PoolStatus, QueryRequest, Result, ResultStream, SchemaInfo, ServerInfo, Session,
    StatementResult, TransactionError,
};
use sqlx::{Connection as _, PgConnection};

mod connect;
mod error;
pub mod introspect;
mod query;
mod types;

use connect::{Pool, Target};

/// The PostgreSQL plugin: serves the `postgres` engine.
pub struct PostgresPlugin {
    info: PluginInfo,
}

impl Default for PostgresPlugin {
    fn default() -> Self {
        let field = ConfigField::new;
        PostgresPlugin {
            info: PluginInfo {
                name: "postgres".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "PostgreSQL, natively (sqlx)".into(),
                engines: vec!["postgres".into()],
                config_fields: vec![
                    field("host", FieldKind::Text, "Server host name or address").required(),
                    field("port", FieldKind::Integer, "Server port")
                        .default(connect::DEFAULT_PORT.to_string()),
                    field("database", FieldKind::Text, "Database; the user's name when unset"),
                    field("username", FieldKind::Text, "Role to log in as").required(),
                    field("password", FieldKind::Text, "The role's password").secret(),
                    field("sslmode", FieldKind::Text, "disable, allow, prefer, require, verify-ca or verify-full")
                        .default("prefer"),
                    field("sslrootcert", FieldKind::Path, "CA certificate file for verify-ca and verify-full"),
                    field("application_name", FieldKind::Text, "Shown in pg_stat_activity")
                        .default("plugboard"),
                    field("connect_timeout_ms", FieldKind::Integer, "How long a test waits to connect")
                        .default("10000"),
                    field("read_only", FieldKind::Boolean, "Refuse writes: every query runs in a READ ONLY transaction")
                        .default("false"),
                    field(
                        "pool",
                        FieldKind::Json,
                        "Pool settings: max_size, acquire_timeout_ms, idle_timeout_s, max_lifetime_s",
                    )
                    .default(plugboard_connector::PoolSettings::default_json()),
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
impl Plugin for PostgresPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let target = Target::from_config(&config)?;
        let pool = Pool::new(&target);
        Ok(Box::new(PgSession { target, pool }))
    }
}

struct PgSession {
    target: Target,
    pool: Pool,
}

#[async_trait]
impl Session for PgSession {
    async fn test(&self) -> Result<ServerInfo> {
        let connecting = format!("connecting to {}", self.target.address);
        let mut conn = tokio::time::timeout(
            self.target.connect_timeout,
            PgConnection::connect_with(&self.target.options),
        )
        .await
        .map_err(|_| {
            Error::Connection(format!(
                "{connecting}: no answer within {} ms",
                self.target.connect_timeout.as_millis()
            ))
        })?
        .map_err(|e| error::map(e, &connecting))?;

        let started = Instant::now();
        conn.ping().await.map_err(|e| error::map(e, "pinging"))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;

        let (version, tls): (String, bool) = sqlx::query_as(
            "SELECT current_setting('server_version'), \
                    COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| error::map(e, "reading the server version"))?;
        // The answer is in; a failure to say goodbye is not the caller's problem.
        let _ = conn.close().await;
        Ok(ServerInfo {
            version,
            latency_ms,
            tls,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT datname::text FROM pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY 1",
        )
        .fetch_all(&self.pool.pool)
        .await
        .map_err(|e| error::map(e, "listing databases"))
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        introspect::introspect(&self.pool.pool, options).await
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        query::start(&self.pool, self.target.read_only, request).await
    }

    async fn transaction(
        &self,
        statements: Vec<QueryRequest>,
        max_rows: usize,
    ) -> std::result::Result<Vec<StatementResult>, TransactionError> {
        query::transaction(&self.pool, self.target.read_only, statements, max_rows).await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(self.pool.status())
    }

    async fn close(&self) {
        self.pool.pool.close().await;
    }
}

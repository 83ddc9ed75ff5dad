//! Plugboard's native SQLite plugin.
//!
//! Laid out as every plugin is: [`connect`] confines a connection's file to the directories
//! the operator allows and builds a pool, [`introspect`] reads `sqlite_schema` and the
//! pragmas, [`query`] streams results and interrupts a statement past its deadline,
//! [`types`] maps declared types and values, [`error`] maps errors (keeping SQLite's result
//! code).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use plugboard_connector::{
    Capabilities, ConfigField, ConnectionConfig, FieldKind, IntrospectOptions, Plugin, PluginInfo,
    PoolSettings, QueryRequest, Result, ResultStream, SchemaInfo, ServerInfo, Session,
};
use sqlx::{ConnectOptions as _, Connection as _, SqlitePool};

pub mod connect;
mod error;
pub mod introspect;
mod query;
mod types;

use connect::Target;

/// How long introspection may run before it is interrupted.
const INTROSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// The SQLite plugin: serves the `sqlite` engine, for files in the allowed directories.
pub struct SqlitePlugin {
    info: PluginInfo,
    allowed_dirs: Vec<PathBuf>,
}

impl SqlitePlugin {
    /// A plugin that opens files only inside `allowed_dirs` (canonical paths; see
    /// [`connect::allowed_dirs_from`]). With none, every connection is refused with a
    /// message that says how to allow a directory.
    pub fn new(allowed_dirs: Vec<PathBuf>) -> SqlitePlugin {
        let field = ConfigField::new;
        SqlitePlugin {
            info: PluginInfo {
                name: "sqlite".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "SQLite database files, natively (sqlx)".into(),
                engines: vec!["sqlite".into()],
                config_fields: vec![
                    field("database", FieldKind::Path, "Absolute path of the database file, inside an allowed directory")
                        .required(),
                    field("writable", FieldKind::Boolean, "Open for writing (files open read-only otherwise)")
                        .default("false"),
                    field("busy_timeout_ms", FieldKind::Integer, "How long to wait for a locked database")
                        .default("5000"),
                    field("pool", FieldKind::Json, "Pool settings: max_size, acquire_timeout_ms, idle_timeout_s, max_lifetime_s")
                        .default(PoolSettings::default_json()),
                ],
                capabilities: Capabilities {
                    transactions: true,
                    cancellation: true,
                    streaming: true,
                    multiple_databases: false,
                    documents: false,
                },
            },
            allowed_dirs,
        }
    }
}

#[async_trait]
impl Plugin for SqlitePlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let target = Target::from_config(&config, &self.allowed_dirs)?;
        let pool = target.lazy_pool();
        Ok(Box::new(SqliteSession { target, pool }))
    }
}

struct SqliteSession {
    target: Target,
    pool: SqlitePool,
}

#[async_trait]
impl Session for SqliteSession {
    async fn test(&self) -> Result<ServerInfo> {
        let opening = format!("opening {}", self.target.path.display());
        let mut conn = self
            .target
            .options
            .connect()
            .await
            .map_err(|e| error::map(e, &opening, false))?;
        let started = Instant::now();
        // Reading the schema proves the file is a database, not just a file.
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| error::map(e, &opening, false))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| error::map(e, "reading the version", false))?;
        let _ = conn.close().await;
        Ok(ServerInfo {
            version,
            latency_ms,
            tls: false,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM pragma_database_list ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| error::map(e, "listing databases", false))
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| error::map(e, "acquiring a connection", false))?;
        let interrupt = query::Interrupt::arm(&mut conn, Some(INTROSPECT_TIMEOUT)).await?;
        let result = introspect::introspect(&mut conn, options).await;
        query::disarm(&mut conn).await;
        result.map_err(|e| match e {
            plugboard_connector::Error::Cancelled if interrupt.deadline_passed() => {
                plugboard_connector::Error::Timeout("introspection ran past 120 s".into())
            }
            other => other,
        })
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        query::start(&self.pool, request).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

//! Plugboard's native SQL Server plugin (engine id `mssql`), over tiberius.
//!
//! Laid out as every plugin is: [`connect`] builds the tiberius configuration (encryption,
//! certificate trust) and a bounded pool, [`introspect`] reads the `sys` catalog views,
//! [`query`] streams results and cancels on the server with a TDS attention, [`types`] maps
//! types and values, [`error`] maps errors (keeping SQL Server's error number).
//!
//! No SQL Server runs on Plugboard's CI machines: the type mapping, SQL text and error
//! mapping are unit tested, and the end-to-end suite runs against a real server when
//! `PLUGBOARD_TEST_MSSQL_URL` is set.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use plugboard_connector::{
    Capabilities, ConfigField, ConnectionConfig, FieldKind, IntrospectOptions, Plugin, PluginInfo,
    PoolSettings, QueryRequest, Result, ResultStream, SchemaInfo, ServerInfo, Session,
};

mod connect;
mod error;
mod introspect;
mod query;
mod types;

use connect::{Pool, Target};

/// The SQL Server plugin.
pub struct MssqlPlugin {
    info: PluginInfo,
}

impl Default for MssqlPlugin {
    fn default() -> Self {
        let field = ConfigField::new;
        MssqlPlugin {
            info: PluginInfo {
                name: "mssql".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "Microsoft SQL Server and Azure SQL, natively (tiberius)".into(),
                engines: vec!["mssql".into()],
                config_fields: vec![
                    field("host", FieldKind::Text, "Server host name or address").required(),
                    field("port", FieldKind::Integer, "Server port")
                        .default(connect::DEFAULT_PORT.to_string()),
                    field(
                        "database",
                        FieldKind::Text,
                        "Database; the login's default when unset",
                    ),
                    field("username", FieldKind::Text, "SQL Server login").required(),
                    field("password", FieldKind::Text, "The login's password").secret(),
                    field("encrypt", FieldKind::Text, "required, off or not_supported")
                        .default("required"),
                    field(
                        "trust_server_certificate",
                        FieldKind::Boolean,
                        "Accept any server certificate (testing only)",
                    )
                    .default("false"),
                    field("ca_file", FieldKind::Path, "CA certificate file to trust"),
                    field("instance", FieldKind::Text, "Named instance"),
                    field(
                        "connect_timeout_ms",
                        FieldKind::Integer,
                        "How long to wait to connect",
                    )
                    .default("10000"),
                    field(
                        "pool",
                        FieldKind::Json,
                        "Pool settings: max_size, acquire_timeout_ms",
                    )
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
impl Plugin for MssqlPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let target = Target::from_config(&config)?;
        Ok(Box::new(MssqlSession {
            pool: Arc::new(Pool::new(target.clone())),
            target,
        }))
    }
}

struct MssqlSession {
    target: Target,
    pool: Arc<Pool>,
}

/// Runs `sql` on a pooled client and returns the first result set's rows.
async fn rows(pool: &Pool, sql: &str, what: &str) -> Result<Vec<tiberius::Row>> {
    let mut lease = pool.acquire().await?;
    let result = async {
        let stream = lease.client.simple_query(sql).await?;
        stream.into_first_result().await
    }
    .await;
    match result {
        Ok(rows) => {
            pool.release(lease);
            Ok(rows)
        }
        Err(e) => Err(error::map(e, what)),
    }
}

#[async_trait]
impl Session for MssqlSession {
    async fn test(&self) -> Result<ServerInfo> {
        let mut client = self.target.connect().await?;
        let started = Instant::now();
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| error::map(e, "pinging"))?
            .into_row_stream()
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| error::map(e, "pinging"))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let rows = client
            .simple_query(
                "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)), \
                        CAST(SERVERPROPERTY('Edition') AS nvarchar(128)), \
                        (SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID)",
            )
            .await
            .map_err(|e| error::map(e, "reading the server version"))?
            .into_first_result()
            .await
            .map_err(|e| error::map(e, "reading the server version"))?;
        let _ = client.close().await;
        let row = rows.first();
        let version = row.and_then(|r| r.get::<&str, _>(0)).unwrap_or("unknown");
        let edition = row.and_then(|r| r.get::<&str, _>(1)).unwrap_or("");
        let encrypted = row
            .and_then(|r| r.get::<&str, _>(2))
            .map(|e| e.eq_ignore_ascii_case("TRUE"));
        Ok(ServerInfo {
            version: if edition.is_empty() {
                version.to_owned()
            } else {
                format!("{version} ({edition})")
            },
            latency_ms,
            tls: encrypted.unwrap_or(self.target.encrypted),
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        let rows = rows(
            &self.pool,
            "SELECT name FROM sys.databases ORDER BY name",
            "listing databases",
        )
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<&str, _>(0).map(str::to_owned))
            .collect())
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let mut lease = self.pool.acquire().await?;
        let result = introspect::introspect(&mut lease.client, options).await;
        if result.is_ok() {
            self.pool.release(lease);
        }
        result
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        query::start(self.pool.clone(), request).await
    }

    async fn close(&self) {
        self.pool.close();
    }
}

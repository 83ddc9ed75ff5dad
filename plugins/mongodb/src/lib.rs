//! Plugboard's native MongoDB plugin (engine id `mongodb`).
//!
//! Laid out as the other plugins, with one room of its own: [`connect`] builds driver
//! options, [`introspect`] lists collections and their indexes and samples their
//! documents, [`infer`] turns samples into fields with type distributions, [`query`] runs
//! `find` and `aggregate` commands given as JSON, [`error`] maps errors (keeping MongoDB's
//! code).
//!
//! When a connection names no database, the session picks one as the reference systems do
//! ("smart database selection"): the first database, by name, that is not `admin`,
//! `config` or `local` and has collections.

use std::time::Instant;

use async_trait::async_trait;
use mongodb::Client;
use mongodb::bson::doc;
use plugboard_connector::{
    Capabilities, ConfigField, ConnectionConfig, Error, FieldKind, IntrospectOptions, Plugin,
    PluginInfo, PoolSettings, QueryRequest, Result, ResultStream, SchemaInfo, ServerInfo, Session,
};

mod connect;
mod error;
pub mod infer;
mod introspect;
mod query;

use connect::Target;

const SYSTEM_DATABASES: &[&str] = &["admin", "config", "local"];

/// The MongoDB plugin.
pub struct MongoPlugin {
    info: PluginInfo,
}

impl Default for MongoPlugin {
    fn default() -> Self {
        let field = ConfigField::new;
        MongoPlugin {
            info: PluginInfo {
                name: "mongodb".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "MongoDB and wire-compatible servers, natively (the official driver)"
                    .into(),
                engines: vec!["mongodb".into()],
                config_fields: vec![
                    field("host", FieldKind::Text, "Server host name or address").required(),
                    field("port", FieldKind::Integer, "Server port")
                        .default(connect::DEFAULT_PORT.to_string()),
                    field(
                        "database",
                        FieldKind::Text,
                        "Database; when unset, the first with collections",
                    ),
                    field(
                        "username",
                        FieldKind::Text,
                        "User to authenticate as (SCRAM)",
                    ),
                    field("password", FieldKind::Text, "The user's password").secret(),
                    field("auth_source", FieldKind::Text, "Database holding the user")
                        .default("admin"),
                    field("tls", FieldKind::Boolean, "Connect over TLS").default("false"),
                    field("tls_ca_file", FieldKind::Path, "CA certificate file"),
                    field(
                        "tls_allow_invalid_certificates",
                        FieldKind::Boolean,
                        "Skip certificate checks (testing only)",
                    ),
                    field(
                        "sample_size",
                        FieldKind::Integer,
                        "Documents sampled per collection to infer fields",
                    )
                    .default(connect::DEFAULT_SAMPLE_SIZE.to_string()),
                    field(
                        "sample_time_ms",
                        FieldKind::Integer,
                        "Server-side time limit of each sample",
                    )
                    .default(connect::DEFAULT_SAMPLE_TIME_MS.to_string()),
                    field(
                        "max_depth",
                        FieldKind::Integer,
                        "How deep nested documents are inferred",
                    )
                    .default(connect::DEFAULT_MAX_DEPTH.to_string()),
                    field(
                        "connect_timeout_ms",
                        FieldKind::Integer,
                        "How long to wait for the server",
                    )
                    .default("10000"),
                    field(
                        "pool",
                        FieldKind::Json,
                        "Pool settings: max_size, idle_timeout_s",
                    )
                    .default(PoolSettings::default_json()),
                ],
                capabilities: Capabilities {
                    transactions: false,
                    cancellation: true,
                    streaming: true,
                    multiple_databases: true,
                    documents: true,
                },
            },
        }
    }
}

#[async_trait]
impl Plugin for MongoPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let target = Target::from_config(&config)?;
        // The client connects lazily, on its first operation.
        let client = Client::with_options(target.options.clone())
            .map_err(|e| error::map(e, "configuring the client"))?;
        Ok(Box::new(MongoSession { target, client }))
    }
}

struct MongoSession {
    target: Target,
    client: Client,
}

impl MongoSession {
    /// The connection's database, or the first non-system one that has collections.
    async fn database(&self) -> Result<String> {
        if let Some(db) = &self.target.database {
            return Ok(db.clone());
        }
        let mut names = self.list_databases().await?;
        names.retain(|n| !SYSTEM_DATABASES.contains(&n.as_str()));
        for name in names {
            let collections = self
                .client
                .database(&name)
                .list_collection_names()
                .await
                .map_err(|e| error::map(e, "listing collections"))?;
            if !collections.is_empty() {
                return Ok(name);
            }
        }
        Err(Error::Configuration(
            "the connection names no database and the server has none with collections".into(),
        ))
    }
}

#[async_trait]
impl Session for MongoSession {
    async fn test(&self) -> Result<ServerInfo> {
        let admin = self.client.database("admin");
        let started = Instant::now();
        admin
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| error::map(e, "pinging"))?;
        let first = started.elapsed();
        // The first command also connects and authenticates: time a second one for latency.
        let started = Instant::now();
        admin
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| error::map(e, "pinging"))?;
        let latency = started.elapsed().min(first);
        let info = admin
            .run_command(doc! {"buildInfo": 1})
            .await
            .map_err(|e| error::map(e, "reading the server version"))?;
        Ok(ServerInfo {
            version: info.get_str("version").unwrap_or("unknown").to_owned(),
            latency_ms: latency.as_secs_f64() * 1000.0,
            tls: self.target.tls,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        let mut names = self
            .client
            .list_database_names()
            .await
            .map_err(|e| error::map(e, "listing databases"))?;
        names.sort();
        Ok(names)
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let database = self.database().await?;
        introspect::introspect(&self.client, &self.target, &database, options).await
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        let database = self.database().await?;
        query::start(&self.client, &database, request).await
    }

    async fn close(&self) {
        self.client.clone().shutdown().await;
    }
}

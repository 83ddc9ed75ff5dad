//! The service layer: every operation on connections, used by the HTTP API (and by any
//! other front end), so each rule lives in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard_connector::{
    ColumnMeta, ConnectionConfig, Error as PluginError, IntrospectOptions, QueryRequest,
    SchemaInfo, ServerInfo, Session, Value,
};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::input::{ConnectionInput, PasswordInput, QueryInput, ValidConnection};
use crate::secrets::{SecretBox, SecretError};
use crate::sessions::SessionCache;
use crate::store::{self, ConnectionRecord, PasswordChange, Snapshot, Store, StoreError};

/// Why a service operation failed; the API turns each into a status and a message.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is invalid: one message per problem.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// No connection has this id.
    #[error("no connection with id `{0}`")]
    NotFound(String),
    /// The name is taken.
    #[error("{0}")]
    Conflict(String),
    /// No plugin serves the stored connection's engine any more.
    #[error("no plugin serves engine `{0}` (it may have been removed)")]
    EngineUnavailable(String),
    /// The plugin failed (the target refused, timed out, rejected the query, ...).
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The live schema could not be read and no snapshot exists to fall back on.
    #[error("{0}")]
    NoSchema(PluginError),
    /// The registry store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A stored secret could not be decrypted.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(_) => ServiceError::Conflict(e.to_string()),
            other => ServiceError::Store(other),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// A connection as the API shows it: the secret replaced by whether one is set.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub engine: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub username: Option<String>,
    pub password_set: bool,
    pub options: serde_json::Map<String, serde_json::Value>,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ConnectionRecord> for ConnectionView {
    fn from(r: ConnectionRecord) -> Self {
        ConnectionView {
            id: r.id,
            name: r.fields.name,
            engine: r.fields.engine,
            host: r.fields.host,
            port: r.fields.port,
            database: r.fields.database,
            username: r.fields.username,
            password_set: r.password_set,
            options: r.fields.options,
            notes: r.fields.notes,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The answer to a test: a failed test is an answer too, not an error.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TestOutcome {
    Passed {
        ok: bool,
        server_version: String,
        latency_ms: f64,
        tls: bool,
    },
    Failed {
        ok: bool,
        error: ErrorBody,
    },
}

/// `{"code", "message"}`, the error shape used everywhere.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_code: Option<String>,
}

impl TestOutcome {
    fn from_result(result: Result<ServerInfo, PluginError>) -> TestOutcome {
        match result {
            Ok(info) => TestOutcome::Passed {
                ok: true,
                server_version: info.version,
                latency_ms: (info.latency_ms * 1000.0).round() / 1000.0,
                tls: info.tls,
            },
            Err(e) => TestOutcome::Failed {
                ok: false,
                error: ErrorBody {
                    code: e.code().to_owned(),
                    engine_code: match &e {
                        PluginError::Query(q) => q.code.clone(),
                        _ => None,
                    },
                    message: e.to_string(),
                },
            },
        }
    }
}

/// A schema, live or from the last snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaView {
    pub schemas: Vec<SchemaInfo>,
    pub fetched_at: String,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A query's answer, bounded by its limit.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<ColumnMeta>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_affected: Option<u64>,
    pub elapsed_ms: f64,
}

/// Rows asked of a plugin per pull.
const PULL_ROWS: usize = 1_000;

/// Everything the operations need.
pub struct Service {
    pub store: Store,
    pub secrets: SecretBox,
    pub catalog: Catalog,
    pub sessions: SessionCache,
    pub started: Instant,
    /// Tasks that run as long as the service does (the plugin-folder watcher); aborted by
    /// [`crate::serve`] at shutdown.
    pub background: Vec<tokio::task::AbortHandle>,
}

impl Service {
    /// A service over these parts.
    pub fn new(store: Store, secrets: SecretBox, catalog: Catalog) -> Service {
        Service {
            store,
            secrets,
            catalog,
            sessions: SessionCache::default(),
            started: Instant::now(),
            background: Vec::new(),
        }
    }

    fn validate(&self, input: ConnectionInput) -> Result<ValidConnection> {
        let engines = self.catalog.engines();
        let engines: Vec<&str> = engines.iter().map(String::as_str).collect();
        input.validate(&engines).map_err(ServiceError::Invalid)
    }

    /// Asks the engine's plugin whether the configuration makes sense. Opening a session is
    /// cheap (no network), so this catches a bad option before it is stored.
    async fn check_config(
        &self,
        valid: &ValidConnection,
        password: Option<plugboard_connector::Secret>,
    ) -> Result<()> {
        let config = config_of(&valid.fields, password);
        let plugin = self.plugin_for(&valid.fields.engine)?.plugin;
        match plugin.open(config).await {
            Ok(session) => {
                session.close().await;
                Ok(())
            }
            Err(PluginError::Configuration(m)) => Err(ServiceError::Invalid(vec![m])),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a connection.
    pub async fn create(&self, input: ConnectionInput) -> Result<ConnectionView> {
        let valid = self.validate(input)?;
        let password = match &valid.password {
            PasswordInput::Set(p) => Some(p.clone()),
            _ => None,
        };
        self.check_config(&valid, password.clone()).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = password.map(|p| self.secrets.seal(p.expose(), &id));
        let record = self
            .store
            .insert_connection(&id, &valid.fields, sealed.as_ref())
            .await?;
        tracing::info!(connection = %id, name = %record.fields.name, engine = %record.fields.engine, "connection registered");
        Ok(record.into())
    }

    /// Every connection.
    pub async fn list(&self) -> Result<Vec<ConnectionView>> {
        Ok(self
            .store
            .list_connections()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn record(&self, id: &str) -> Result<ConnectionRecord> {
        self.store
            .get_connection(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))
    }

    /// One connection.
    pub async fn get(&self, id: &str) -> Result<ConnectionView> {
        Ok(self.record(id).await?.into())
    }

    /// Replaces a connection. An absent `password` keeps the stored one; `null` removes it.
    pub async fn replace(&self, id: &str, input: ConnectionInput) -> Result<ConnectionView> {
        let valid = self.validate(input)?;
        let existing = self.record(id).await?;
        let password = match &valid.password {
            PasswordInput::Set(p) => Some(p.clone()),
            PasswordInput::Cleared => None,
            PasswordInput::Unchanged => self.password_of(&existing).await?,
        };
        self.check_config(&valid, password).await?;
        let change = match valid.password {
            PasswordInput::Unchanged => PasswordChange::Keep,
            PasswordInput::Cleared => PasswordChange::Clear,
            PasswordInput::Set(p) => PasswordChange::Set(self.secrets.seal(p.expose(), id)),
        };
        let record = self
            .store
            .replace_connection(id, &valid.fields, &change)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        self.sessions.evict(id).await;
        tracing::info!(connection = %id, name = %record.fields.name, "connection replaced");
        Ok(record.into())
    }

    /// Deletes a connection, closing its session.
    pub async fn delete(&self, id: &str) -> Result<()> {
        if !self.store.delete_connection(id).await? {
            return Err(ServiceError::NotFound(id.to_owned()));
        }
        self.sessions.evict(id).await;
        tracing::info!(connection = %id, "connection deleted");
        Ok(())
    }

    async fn password_of(
        &self,
        record: &ConnectionRecord,
    ) -> Result<Option<plugboard_connector::Secret>> {
        match self.store.get_secret(&record.id).await? {
            None => Ok(None),
            Some(sealed) => Ok(Some(plugboard_connector::Secret::new(
                self.secrets.open(&sealed, &record.id)?,
            ))),
        }
    }

    /// The live session for a stored connection, opening it on first use.
    async fn session(&self, id: &str) -> Result<Arc<dyn Session>> {
        let record = self.record(id).await?;
        let entry = match self.plugin_for(&record.fields.engine) {
            Ok(entry) => entry,
            Err(e) => {
                self.sessions.evict(id).await;
                return Err(e);
            }
        };
        // A session belongs to one version of the connection and one build of its plugin:
        // after either changes, the next request opens a new one.
        let version = format!("{} {}", record.updated_at, entry.generation);
        if let Some(session) = self.sessions.get(id, &version) {
            return Ok(session);
        }
        let password = self.password_of(&record).await?;
        let session: Arc<dyn Session> = Arc::from(
            entry
                .plugin
                .open(config_of(&record.fields, password))
                .await?,
        );
        Ok(self.sessions.insert(id, &version, session).await)
    }

    /// The catalogue entry serving `engine`; plugins come and go while the host runs.
    fn plugin_for(&self, engine: &str) -> Result<crate::catalog::CatalogEntry> {
        self.catalog
            .get(engine)
            .ok_or_else(|| ServiceError::EngineUnavailable(engine.to_owned()))
    }

    /// Tests an unsaved configuration.
    pub async fn test_unsaved(&self, input: ConnectionInput) -> Result<TestOutcome> {
        let valid = self.validate(input)?;
        let password = match &valid.password {
            PasswordInput::Set(p) => Some(p.clone()),
            _ => None,
        };
        let plugin = self.plugin_for(&valid.fields.engine)?.plugin;
        let session = match plugin.open(config_of(&valid.fields, password)).await {
            Ok(s) => s,
            Err(PluginError::Configuration(m)) => return Err(ServiceError::Invalid(vec![m])),
            Err(e) => return Ok(TestOutcome::from_result(Err(e))),
        };
        let outcome = TestOutcome::from_result(session.test().await);
        session.close().await;
        Ok(outcome)
    }

    /// Tests a stored connection.
    pub async fn test(&self, id: &str) -> Result<TestOutcome> {
        match self.session(id).await {
            Ok(session) => Ok(TestOutcome::from_result(session.test().await)),
            Err(ServiceError::Plugin(e)) => Ok(TestOutcome::from_result(Err(e))),
            Err(e) => Err(e),
        }
    }

    /// The databases on a stored connection's server.
    pub async fn databases(&self, id: &str) -> Result<Vec<String>> {
        Ok(self.session(id).await?.list_databases().await?)
    }

    /// A stored connection's schema: the newest snapshot for these filters unless
    /// `refresh` (or there is none); live results are stored as snapshots; when live fails,
    /// the newest snapshot with a warning.
    pub async fn schema(
        &self,
        id: &str,
        options: IntrospectOptions,
        refresh: bool,
    ) -> Result<SchemaView> {
        let key = serde_json::to_string(&options).expect("options serialize");
        let cached = self.store.latest_snapshot(id, &key).await?;
        if let (false, Some(snapshot)) = (refresh, &cached) {
            return from_snapshot(snapshot, None);
        }
        let live = match self.session(id).await {
            Ok(session) => session
                .introspect(&options)
                .await
                .map_err(ServiceError::Plugin),
            Err(e) => Err(e),
        };
        match live {
            Ok(schemas) => {
                let fetched_at = store::now();
                let body = serde_json::to_string(&schemas).expect("schema serializes");
                self.store
                    .insert_snapshot(
                        id,
                        &key,
                        &Snapshot {
                            fetched_at: fetched_at.clone(),
                            body,
                        },
                    )
                    .await?;
                Ok(SchemaView {
                    schemas,
                    fetched_at,
                    source: "live",
                    warning: None,
                })
            }
            Err(ServiceError::Plugin(e)) => match cached {
                Some(snapshot) => {
                    tracing::warn!(connection = %id, error = %e, "live introspection failed; serving the last snapshot");
                    from_snapshot(
                        &snapshot,
                        Some(format!(
                            "live introspection failed ({e}); this is the snapshot taken at {}",
                            snapshot.fetched_at
                        )),
                    )
                }
                None => Err(ServiceError::NoSchema(e)),
            },
            Err(other) => Err(other),
        }
    }

    /// Runs a query, holding at most `limit` rows: one more is read to know whether the
    /// result was truncated, then the stream is dropped, which stops the query.
    pub async fn query(&self, id: &str, input: QueryInput) -> Result<QueryResult> {
        let query = input.validate().map_err(ServiceError::Invalid)?;
        let session = self.session(id).await?;
        let started = Instant::now();
        let mut stream = session
            .query(QueryRequest {
                sql: query.sql,
                params: query.params,
                timeout_ms: Some(query.timeout_ms),
            })
            .await?;
        let mut rows: Vec<Vec<serde_json::Value>> = Vec::new();
        let mut truncated = false;
        while let Some(batch) = stream
            .next_batch(PULL_ROWS.min(query.limit + 1 - rows.len()))
            .await?
        {
            for row in batch {
                if rows.len() == query.limit {
                    truncated = true;
                    break;
                }
                rows.push(row.iter().map(Value::to_json).collect());
            }
            if truncated {
                break;
            }
        }
        let columns = stream.columns().to_vec();
        // For a statement that returns rows, engines count those rows (PostgreSQL) or say 0
        // (MySQL): `row_count` says it better. Only a statement without a result has
        // something to add.
        let rows_affected = if columns.is_empty() {
            stream.rows_affected()
        } else {
            None
        };
        drop(stream);
        Ok(QueryResult {
            columns,
            row_count: rows.len(),
            rows,
            truncated,
            rows_affected,
            elapsed_ms: round_ms(started.elapsed()),
        })
    }

    /// Closes idle sessions; run periodically.
    pub async fn close_idle_sessions(&self, idle: Duration) {
        let closed = self.sessions.close_idle(idle).await;
        if closed > 0 {
            tracing::debug!(closed, "closed idle sessions");
        }
    }
}

fn from_snapshot(snapshot: &Snapshot, warning: Option<String>) -> Result<SchemaView> {
    let schemas = serde_json::from_str(&snapshot.body)
        .map_err(|e| ServiceError::Store(StoreError::Corrupt(format!("schema snapshot: {e}"))))?;
    Ok(SchemaView {
        schemas,
        fetched_at: snapshot.fetched_at.clone(),
        source: "cache",
        warning,
    })
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn config_of(
    fields: &store::ConnectionFields,
    password: Option<plugboard_connector::Secret>,
) -> ConnectionConfig {
    ConnectionConfig {
        engine: fields.engine.clone(),
        host: fields.host.clone(),
        port: fields.port,
        database: fields.database.clone(),
        username: fields.username.clone(),
        password,
        options: fields.options.clone(),
    }
}

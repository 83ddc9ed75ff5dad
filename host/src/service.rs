//! The service layer: every operation on connections, used by the HTTP API (and by any
//! other front end), so each rule lives in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard_connector::{
    ColumnMeta, ConnectionConfig, Error as PluginError, IntrospectOptions, QueryRequest,
    ResultStream, Row, SchemaInfo, ServerInfo, Session, StatementResult, TransactionError, Value,
};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::health::{Check, HealthMonitor};
use crate::history::{History, HistorySettings};
use crate::input::{
    ConnectionInput, PasswordInput, QueryInput, TransactionInput, ValidConnection, ValidQuery,
};
use crate::queries::{Outcome, RunningQueries, Ticket};
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
    /// A transaction was rolled back.
    #[error(transparent)]
    Transaction(TransactionError),
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
    pub query_id: String,
    #[serde(flatten)]
    pub result: ResultSet,
    pub elapsed_ms: f64,
}

/// Columns and rows as JSON, at most a limit of them: a query's answer, or one statement's
/// in a transaction.
#[derive(Debug, Clone, Serialize)]
pub struct ResultSet {
    pub columns: Vec<ColumnMeta>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: usize,
    pub truncated: bool,
    /// Rows changed, for a statement that returns none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_affected: Option<u64>,
}

impl From<StatementResult> for ResultSet {
    fn from(r: StatementResult) -> Self {
        ResultSet {
            row_count: r.rows.len(),
            rows: r
                .rows
                .iter()
                .map(|row| row.iter().map(Value::to_json).collect())
                .collect(),
            columns: r.columns,
            truncated: r.truncated,
            rows_affected: r.rows_affected,
        }
    }
}

/// How long a session is used without checking its connection's version in the store.
const SESSION_RECHECK: Duration = Duration::from_secs(1);

/// How long a health check waits for its test.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Rows asked of a plugin per pull.
const PULL_ROWS: usize = 1_000;

/// How long past a query's own deadline the host waits before dropping it: the plugin
/// enforces the deadline on the server and should answer first (a WASM plugin's calls get
/// 2 s of grace, so this is longer, for their more precise message); this catches one
/// that does not.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// Attempts at a test or an introspection that fails transiently, and the first pause
/// between them (doubled each time).
const RETRY_ATTEMPTS: u32 = 3;
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// A started query: its ticket (id, cancellation, history) and its result stream.
pub struct QueryRun {
    pub ticket: Ticket,
    pub stream: Box<dyn ResultStream>,
    pub deadline: tokio::time::Instant,
}

impl QueryRun {
    /// Up to `max_rows` more rows; stops the query (by returning an error, after which the
    /// caller drops the stream) when it is cancelled or runs past the host's deadline.
    pub async fn pull(&mut self, max_rows: usize) -> Result<Option<Vec<Row>>, PluginError> {
        let QueryRun {
            ticket,
            stream,
            deadline,
        } = self;
        tokio::select! {
            biased;
            () = ticket.cancelled() => Err(PluginError::Cancelled),
            () = tokio::time::sleep_until(*deadline) => Err(host_deadline()),
            batch = stream.next_batch(max_rows) => batch,
        }
    }
}

/// Who asks: what of a request, beyond its body, the service records.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The `X-Plugboard-User` header.
    pub who: Option<String>,
}

/// Runs `attempt` until it succeeds, fails for good, or has failed transiently
/// [`RETRY_ATTEMPTS`] times, pausing with exponential backoff between tries.
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, PluginError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PluginError>>,
{
    let mut pause = RETRY_FIRST_PAUSE;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_transient() && tries < RETRY_ATTEMPTS => {
                tracing::debug!(error = %e, tries, "{what} failed transiently; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Everything the operations need.
pub struct Service {
    pub store: Store,
    pub secrets: SecretBox,
    pub catalog: Catalog,
    pub sessions: SessionCache,
    pub running: Arc<RunningQueries>,
    pub history: History,
    pub health: HealthMonitor,
    pub started: Instant,
    /// Tasks that run as long as the service does (the history writer, the plugin-folder
    /// watcher, the health checker); aborted by [`crate::serve`] at shutdown.
    background: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Service {
    /// A service over these parts; starts the history writer.
    pub fn new(
        store: Store,
        secrets: SecretBox,
        catalog: Catalog,
        history: HistorySettings,
    ) -> Service {
        let (history, writer) = History::start(store.clone(), history);
        Service {
            store,
            secrets,
            catalog,
            sessions: SessionCache::default(),
            running: Arc::default(),
            history,
            health: HealthMonitor::default(),
            started: Instant::now(),
            background: std::sync::Mutex::new(vec![writer.abort_handle()]),
        }
    }

    /// Keeps `task` running until [`Service::stop_background`].
    pub fn keep_running(&self, task: tokio::task::JoinHandle<()>) {
        self.background.lock().unwrap().push(task.abort_handle());
    }

    /// Stops every background task (at shutdown).
    pub fn stop_background(&self) {
        for task in self.background.lock().unwrap().drain(..) {
            task.abort();
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
        self.health.forget(id);
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
        Ok(self.session_and_engine(id).await?.0)
    }

    /// The live session for a stored connection, and the connection's engine.
    async fn session_and_engine(&self, id: &str) -> Result<(Arc<dyn Session>, String)> {
        let current = |engine: &str| self.catalog.get(engine).map(|e| e.generation);
        if let Some(recent) = self.sessions.get_recent(id, SESSION_RECHECK, current) {
            return Ok(recent);
        }
        let record = self.record(id).await?;
        let engine = record.fields.engine.clone();
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
            return Ok((session, engine));
        }
        let password = self.password_of(&record).await?;
        let session: Arc<dyn Session> = Arc::from(
            entry
                .plugin
                .open(config_of(&record.fields, password))
                .await?,
        );
        Ok((
            self.sessions
                .insert(id, &version, (&engine, &entry.generation), session)
                .await,
            engine,
        ))
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

    /// Tests a stored connection, retrying a transient failure with backoff.
    pub async fn test(&self, id: &str) -> Result<TestOutcome> {
        match self.session(id).await {
            Ok(session) => Ok(TestOutcome::from_result(
                with_retries("test", || session.test()).await,
            )),
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
            Ok(session) => with_retries("introspection", || session.introspect(&options))
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

    /// Starts a query: registers it (so it can be listed and cancelled) and waits for the
    /// plugin to start it. The caller pulls the rows and finishes the ticket.
    pub async fn start_query(
        &self,
        id: &str,
        query: ValidQuery,
        caller: &Caller,
    ) -> Result<QueryRun> {
        let (session, engine) = self.session_and_engine(id).await?;
        let ticket = Ticket::start(
            &self.running,
            &self.history,
            id,
            &engine,
            "query",
            caller.who.clone(),
            &query.sql,
        );
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(query.timeout_ms.into())
            + DEADLINE_GRACE;
        let started = tokio::select! {
            biased;
            () = ticket.cancelled() => Err(PluginError::Cancelled),
            () = tokio::time::sleep_until(deadline) => Err(host_deadline()),
            started = session.query(QueryRequest {
                sql: query.sql,
                params: query.params,
                timeout_ms: Some(query.timeout_ms),
            }) => started,
        };
        match started {
            Ok(stream) => Ok(QueryRun {
                ticket,
                stream,
                deadline,
            }),
            Err(e) => {
                ticket.finish(Outcome::Failed(e.code()));
                Err(e.into())
            }
        }
    }

    /// Runs a query, holding at most `limit` rows: one more is read to know whether the
    /// result was truncated, then the stream is dropped, which stops the query.
    pub async fn query(&self, id: &str, input: QueryInput, caller: &Caller) -> Result<QueryResult> {
        let query = input.validate().map_err(ServiceError::Invalid)?;
        let limit = query.limit;
        let mut run = self.start_query(id, query, caller).await?;
        let mut rows: Vec<Vec<serde_json::Value>> = Vec::new();
        let mut truncated = false;
        let pulled = async {
            while let Some(batch) = run.pull(PULL_ROWS.min(limit + 1 - rows.len())).await? {
                for row in batch {
                    if rows.len() == limit {
                        truncated = true;
                        break;
                    }
                    rows.push(row.iter().map(Value::to_json).collect());
                }
                if truncated {
                    break;
                }
            }
            Ok::<_, PluginError>(())
        }
        .await;
        let QueryRun {
            mut ticket, stream, ..
        } = run;
        if let Err(e) = pulled {
            ticket.finish(Outcome::Failed(e.code()));
            return Err(e.into());
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
        ticket.add_rows(rows.len());
        let query_id = ticket.id().to_owned();
        let elapsed_ms = round_ms(ticket.elapsed());
        ticket.finish(Outcome::Ok);
        Ok(QueryResult {
            query_id,
            result: ResultSet {
                columns,
                row_count: rows.len(),
                rows,
                truncated,
                rows_affected,
            },
            elapsed_ms,
        })
    }

    /// Runs statements in one transaction: all or nothing.
    pub async fn transaction(
        &self,
        id: &str,
        input: TransactionInput,
        caller: &Caller,
    ) -> Result<TransactionResult> {
        let valid = input.validate().map_err(ServiceError::Invalid)?;
        let (session, engine) = self.session_and_engine(id).await?;
        let text: Vec<&str> = valid.statements.iter().map(|s| s.sql.as_str()).collect();
        let mut ticket = Ticket::start(
            &self.running,
            &self.history,
            id,
            &engine,
            "transaction",
            caller.who.clone(),
            &text.join(";\n"),
        );
        let total_timeout: u64 = valid
            .statements
            .iter()
            .map(|s| u64::from(s.timeout_ms))
            .sum();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(total_timeout) + DEADLINE_GRACE;
        let requests = valid
            .statements
            .into_iter()
            .map(|s| QueryRequest {
                sql: s.sql,
                params: s.params,
                timeout_ms: Some(s.timeout_ms),
            })
            .collect();
        let outcome = tokio::select! {
            biased;
            () = ticket.cancelled() => Err(TransactionError::outside(PluginError::Cancelled)),
            () = tokio::time::sleep_until(deadline) => Err(TransactionError::outside(host_deadline())),
            outcome = session.transaction(requests, valid.limit) => outcome,
        };
        match outcome {
            Ok(results) => {
                let statements: Vec<ResultSet> = results.into_iter().map(ResultSet::from).collect();
                ticket.add_rows(statements.iter().map(|s| s.row_count).sum());
                let result = TransactionResult {
                    query_id: ticket.id().to_owned(),
                    committed: true,
                    elapsed_ms: round_ms(ticket.elapsed()),
                    statements,
                };
                ticket.finish(Outcome::Ok);
                Ok(result)
            }
            Err(e) => {
                ticket.finish(Outcome::Failed(e.error.code()));
                Err(ServiceError::Transaction(e))
            }
        }
    }

    /// Checks a stored connection now, on a session of its own (so checking keeps no pool
    /// open), and keeps the result in its health history.
    pub async fn check_health(&self, id: &str) -> Result<Check> {
        let record = self.record(id).await?;
        let plugin = self.plugin_for(&record.fields.engine)?.plugin;
        let password = self.password_of(&record).await?;
        let started = Instant::now();
        let result = match plugin.open(config_of(&record.fields, password)).await {
            Ok(session) => {
                let result = tokio::time::timeout(HEALTH_CHECK_TIMEOUT, session.test())
                    .await
                    .unwrap_or_else(|_| {
                        Err(PluginError::Timeout(format!(
                            "no answer within {} s",
                            HEALTH_CHECK_TIMEOUT.as_secs()
                        )))
                    });
                session.close().await;
                result
            }
            Err(e) => Err(e),
        };
        let response_ms = round_ms(started.elapsed());
        let check = match TestOutcome::from_result(result) {
            TestOutcome::Passed { server_version, .. } => Check {
                checked_at: store::now(),
                status: "ok",
                response_ms,
                server_version: Some(server_version),
                error: None,
            },
            TestOutcome::Failed { error, .. } => Check {
                checked_at: store::now(),
                status: "failed",
                response_ms,
                server_version: None,
                error: Some(error),
            },
        };
        self.health.record(id, check.clone());
        Ok(check)
    }

    /// A connection's pool, for plugins that pool; `None` when the plugin does not, or no
    /// session is open (nothing has used the connection since it was last idle).
    pub async fn pool(&self, id: &str) -> Result<PoolView> {
        let record = self.record(id).await?;
        let open = self.sessions.peek(id);
        Ok(PoolView {
            connection_id: record.id,
            session_open: open.is_some(),
            pool: open.and_then(|s| s.pool_status()),
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

/// The error for a query the host dropped at its deadline (plus grace) because the plugin
/// had not stopped it.
fn host_deadline() -> PluginError {
    PluginError::Timeout("the query ran past its deadline and was stopped by the host".into())
}

/// A transaction's answer.
#[derive(Debug, Clone, Serialize)]
pub struct TransactionResult {
    pub query_id: String,
    pub committed: bool,
    pub statements: Vec<ResultSet>,
    pub elapsed_ms: f64,
}

/// `GET /api/v1/connections/{id}/pool`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub connection_id: String,
    /// Whether a session (and so a pool) is open now; pools close when idle.
    pub session_open: bool,
    /// `null` when no session is open or the plugin does not pool.
    pub pool: Option<plugboard_connector::PoolStatus>,
}

/// Milliseconds, to the microsecond.
pub fn round_ms(d: Duration) -> f64 {
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

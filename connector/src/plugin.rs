//! The traits every plugin implements (WIT `connector`): native plugins directly, WASM
//! plugins through the host's wrapper.

use async_trait::async_trait;

use crate::config::{ConnectionConfig, PluginInfo, ServerInfo};
use crate::error::Result;
use crate::pool::PoolStatus;
use crate::query::{QueryRequest, ResultStream, StatementResult, TransactionError};
use crate::schema::{IntrospectOptions, SchemaInfo};

/// A connector plugin: describes itself and opens sessions.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// Static facts about the plugin.
    fn info(&self) -> &PluginInfo;

    /// Opens a session for one connection. Cheap: network work may wait for the first call,
    /// but configuration errors are reported here.
    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>>;
}

/// A live session with one connection's target, kept by the host across calls and shared
/// by concurrent requests; this is where a pool or a login token lives.
#[async_trait]
pub trait Session: Send + Sync {
    /// Checks the target answers; reports its version, latency and TLS.
    async fn test(&self) -> Result<ServerInfo>;

    /// The databases on the target server.
    async fn list_databases(&self) -> Result<Vec<String>>;

    /// Schemas, tables, columns, keys and indexes, as the options ask.
    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>>;

    /// Starts a query; rows are pulled from the returned stream.
    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>>;

    /// Runs `statements` in one transaction: all of them or none. Each result holds at most
    /// `max_rows` rows. On failure everything is rolled back and the error names the
    /// statement that failed.
    async fn transaction(
        &self,
        statements: Vec<QueryRequest>,
        max_rows: usize,
    ) -> Result<Vec<StatementResult>, TransactionError> {
        let _ = (statements, max_rows);
        Err(TransactionError::outside(crate::Error::Unsupported(
            "this plugin does not run transactions".into(),
        )))
    }

    /// The session's pool, for plugins that pool connections.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Releases everything the session holds (pooled connections, tokens). The host calls
    /// it when the session idles out or its connection changes; dropping must also be safe.
    async fn close(&self) {}
}

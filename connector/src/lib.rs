//! The connector contract, in Rust.
//!
//! `wit/connector@0.1.0` is the single source of truth for what a connector is; this crate
//! mirrors it type for type so that native plugins (compiled into the host) and WebAssembly
//! plugins (wrapped by the host) stand behind one trait, and nothing above that line can tell
//! them apart. It knows nothing of wasmtime or HTTP: native plugins depend on it alone.
//!
//! Layout:
//! - [`value`]: the typed values and the common type vocabulary;
//! - [`config`]: what a plugin says about itself and what a session is opened from;
//! - [`schema`]: introspection options and results;
//! - [`query`]: query requests and result streams;
//! - [`error`]: the one error every plugin returns;
//! - [`stream`]: a result stream fed by a producing task through a bounded channel;
//! - [`plugin`]: the [`Plugin`] and [`Session`] traits;
//! - [`pool`]: pool figures, reported alike by every pooling plugin.
//!
//! A test parses the WIT package and checks that its names match this crate's, so the two
//! cannot drift apart silently.

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod plugin;
pub mod pool;
pub mod query;
pub mod schema;
pub mod stream;
pub mod value;

pub use config::{
    Capabilities, ConfigField, ConnectionConfig, FieldKind, PluginInfo, PoolSettings, Secret,
    ServerInfo,
};
pub use error::{Error, QueryError, Result};
pub use plugin::{Plugin, Session};
pub use pool::{PING_AFTER_IDLE, Percentiles, PoolMeter, PoolStatus};
pub use query::{ColumnMeta, QueryRequest, ResultStream, Row, StatementResult, TransactionError};
pub use schema::{
    ColumnInfo, FieldStats, ForeignKeyInfo, IndexInfo, IntrospectInclude, IntrospectOptions,
    SchemaInfo, TableInfo, TableKind, TypeShare, schemas_from,
};
pub use stream::{ChannelResultStream, StreamEvent};
pub use value::{CommonType, Value};

/// The WIT package version this crate mirrors.
pub const CONTRACT_VERSION: &str = "0.1.0";

#[cfg(test)]
mod wit_contract;

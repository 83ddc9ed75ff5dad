//! Plugboard's ClickHouse plugin, a WebAssembly component built with the SDK.
//!
//! It speaks ClickHouse's HTTP interface ([`client`]): results come as JSONCompact with
//! their type names and are read row by row as they arrive ([`stream`]); parameters are
//! written `{p1:Type}` and bound by the server where it can, escaped otherwise
//! ([`params`]); a deadline is `max_execution_time`, and a result dropped before its end
//! has its query killed by id. Errors keep ClickHouse's exception code.

pub mod client;
pub mod introspect;
pub mod params;
pub mod stream;
pub mod types;

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plugboard_sdk::http::Response;
use plugboard_sdk::prelude::*;
use plugboard_sdk::{Capabilities, ConfigField, FieldKind, IntrospectOptions, SchemaInfo};

use client::{ClickHouse, SERVER_PARAMETERS, exception_code, server_error};
use stream::{CompactReader, Meta, ReadError};

/// A session: the HTTP client for the connection's server.
pub struct ClickHousePlugin {
    ch: Rc<ClickHouse>,
}

impl Connector for ClickHousePlugin {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "clickhouse",
            env!("CARGO_PKG_VERSION"),
            "ClickHouse over its HTTP interface (port 8123, or 8443 with `secure`)",
            &["clickhouse"],
        )
        .field(
            ConfigField::new(
                "secure",
                FieldKind::Boolean,
                "Use HTTPS (port 8443 by default)",
            )
            .default("false"),
        )
        .field(
            ConfigField::new(
                "read_only",
                FieldKind::Boolean,
                "Refuse writes: every statement is sent with readonly=2",
            )
            .default("false"),
        )
        .capabilities(Capabilities {
            transactions: false,
            cancellation: true,
            streaming: true,
            multiple_databases: true,
            documents: false,
        })
    }

    fn open(config: Config) -> Result<Self> {
        Ok(ClickHousePlugin {
            ch: Rc::new(ClickHouse::new(&config)?),
        })
    }

    fn test(&self) -> Result<ServerInfo> {
        let (version, latency_ms) = self.ch.ping()?;
        Ok(ServerInfo::new(version, latency_ms, self.ch.tls))
    }

    fn list_databases(&self) -> Result<Vec<String>> {
        introspect::list_databases(&self.ch)
    }

    fn introspect(&self, options: IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        introspect::introspect(&self.ch, &options)
    }

    fn query(&self, request: QueryRequest) -> Result<Box<dyn Rows>> {
        let server_side = !request.params.is_empty() && self.ch.version()?.1 >= SERVER_PARAMETERS;
        let bound = params::bind(&request.sql, &request.params, server_side)?;
        let query_id = new_query_id();
        let seconds = request
            .timeout_ms
            .map(|ms| ms.div_ceil(1000).max(1).to_string());
        let mut settings: Vec<(&str, &str)> = vec![("query_id", &query_id)];
        if let Some(seconds) = &seconds {
            settings.push(("max_execution_time", seconds));
        }
        settings.extend(bound.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let http_timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)) + Duration::from_secs(5));
        let response = self.ch.send(&bound.sql, &settings, http_timeout)?;
        let written = written_rows(&response);
        let mut reader = CompactReader::new(response);
        match reader.meta().map_err(read_error)? {
            None => Ok(Box::new(RowSet::affected(written))),
            Some(meta) => Ok(Box::new(ClickHouseRows {
                columns: meta,
                reader,
                ch: self.ch.clone(),
                query_id,
                finished: false,
            })),
        }
    }
}

plugboard_sdk::export_connector!(ClickHousePlugin);

/// A unique id per query, so a dropped result can be killed by it.
fn new_query_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "plugboard-{nanos:x}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Rows written, from the `X-ClickHouse-Summary` header newer servers send.
fn written_rows(response: &Response) -> Option<u64> {
    let summary: serde_json::Value =
        serde_json::from_str(&response.header("X-ClickHouse-Summary")?).ok()?;
    summary["written_rows"].as_str()?.parse().ok()
}

fn read_error(e: ReadError) -> Error {
    match e {
        ReadError::Malformed(text) if exception_code(&text).is_some() => server_error(200, &text),
        ReadError::Malformed(text) => Error::Connection(format!(
            "ClickHouse sent an answer that is not JSONCompact: {}",
            text.chars().take(200).collect::<String>()
        )),
        ReadError::Io(message) => {
            Error::Connection(format!("reading ClickHouse's answer failed: {message}"))
        }
    }
}

/// A result being read; dropped before its end, it kills its query on the server.
struct ClickHouseRows {
    columns: Vec<Meta>,
    reader: CompactReader<Response>,
    ch: Rc<ClickHouse>,
    query_id: String,
    finished: bool,
}

impl Rows for ClickHouseRows {
    fn columns(&self) -> Vec<ColumnMeta> {
        self.columns
            .iter()
            .map(|m| ColumnMeta::new(&m.name, &m.data_type, types::common_type(&m.data_type)))
            .collect()
    }

    fn next_batch(&mut self, max_rows: u32) -> Result<Option<Vec<Row>>> {
        let mut batch = Vec::new();
        while batch.len() < max_rows as usize {
            let row = match self.reader.row() {
                Ok(Some(row)) => row,
                Ok(None) => {
                    self.finished = true;
                    break;
                }
                Err(e) => {
                    self.finished = true;
                    return Err(read_error(e));
                }
            };
            batch.push(
                row.iter()
                    .zip(&self.columns)
                    .map(|(raw, meta)| types::value(raw, &meta.data_type))
                    .collect(),
            );
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

impl Drop for ClickHouseRows {
    fn drop(&mut self) {
        if !self.finished {
            self.ch.kill(&self.query_id);
        }
    }
}

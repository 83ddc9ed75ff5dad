//! The host side of the WIT contract (`wit/connector@0.1.0`): generated bindings and the
//! conversions between their types and the connector crate's, so the rest of the runtime
//! speaks only `plugboard_connector`.

#![allow(missing_docs)]

use plugboard_connector as c;

wasmtime::component::bindgen!({
    path: "../wit/connector@0.1.0",
    world: "plugboard:connector/plugin",
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use exports::plugboard::connector::connector as guest;
pub use plugboard::connector::host::LogLevel;
pub use plugboard::connector::types as wit;

/// The contract version this host speaks; a component must export exactly this.
pub const CONNECTOR_EXPORT: &str = "plugboard:connector/connector@0.1.0";

pub fn common_type(t: wit::CommonType) -> c::CommonType {
    use wit::CommonType as W;
    match t {
        W::Boolean => c::CommonType::Boolean,
        W::Int16 => c::CommonType::Int16,
        W::Int32 => c::CommonType::Int32,
        W::Int64 => c::CommonType::Int64,
        W::Float32 => c::CommonType::Float32,
        W::Float64 => c::CommonType::Float64,
        W::Decimal => c::CommonType::Decimal,
        W::Text => c::CommonType::Text,
        W::Binary => c::CommonType::Binary,
        W::Date => c::CommonType::Date,
        W::Time => c::CommonType::Time,
        W::Timestamp => c::CommonType::Timestamp,
        W::Timestamptz => c::CommonType::Timestamptz,
        W::Interval => c::CommonType::Interval,
        W::Uuid => c::CommonType::Uuid,
        W::Json => c::CommonType::Json,
        W::Array => c::CommonType::Array,
        W::Document => c::CommonType::Document,
        W::Other => c::CommonType::Other,
    }
}

fn json_of(text: String) -> c::Value {
    match serde_json::from_str(&text) {
        Ok(json) => c::Value::Json(json),
        // A plugin that sends text that is not JSON under `json` still gets it through.
        Err(_) => c::Value::Text(text),
    }
}

pub fn value_from_guest(v: wit::Value) -> c::Value {
    use wit::Value as W;
    match v {
        W::Null => c::Value::Null,
        W::Boolean(b) => c::Value::Boolean(b),
        W::Int(i) => c::Value::Int(i),
        W::Uint(u) => c::Value::Uint(u),
        W::Float(f) => c::Value::Float(f),
        W::Decimal(s) => c::Value::Decimal(s),
        W::Text(s) => c::Value::Text(s),
        W::Bytes(b) => c::Value::Bytes(b),
        W::Date(s) => c::Value::Date(s),
        W::Time(s) => c::Value::Time(s),
        W::Timestamp(s) => c::Value::Timestamp(s),
        W::Json(s) => json_of(s),
        W::Array(elements) => {
            c::Value::Array(elements.into_iter().map(element_from_guest).collect())
        }
    }
}

fn element_from_guest(e: wit::Element) -> c::Value {
    use wit::Element as W;
    match e {
        W::Null => c::Value::Null,
        W::Boolean(b) => c::Value::Boolean(b),
        W::Int(i) => c::Value::Int(i),
        W::Uint(u) => c::Value::Uint(u),
        W::Float(f) => c::Value::Float(f),
        W::Decimal(s) => c::Value::Decimal(s),
        W::Text(s) => c::Value::Text(s),
        W::Bytes(b) => c::Value::Bytes(b),
        W::Date(s) => c::Value::Date(s),
        W::Time(s) => c::Value::Time(s),
        W::Timestamp(s) => c::Value::Timestamp(s),
        W::Json(s) => json_of(s),
    }
}

/// A host value as the guest receives it. WIT types cannot recurse, so an array holding
/// arrays travels as JSON.
pub fn value_to_guest(v: &c::Value) -> wit::Value {
    use wit::Value as W;
    match v {
        c::Value::Array(items) => match items.iter().map(element_to_guest).collect() {
            Some(elements) => W::Array(elements),
            None => W::Json(v.to_json().to_string()),
        },
        c::Value::Null => W::Null,
        c::Value::Boolean(b) => W::Boolean(*b),
        c::Value::Int(i) => W::Int(*i),
        c::Value::Uint(u) => W::Uint(*u),
        c::Value::Float(f) => W::Float(*f),
        c::Value::Decimal(s) => W::Decimal(s.clone()),
        c::Value::Text(s) => W::Text(s.clone()),
        c::Value::Bytes(b) => W::Bytes(b.clone()),
        c::Value::Date(s) => W::Date(s.clone()),
        c::Value::Time(s) => W::Time(s.clone()),
        c::Value::Timestamp(s) => W::Timestamp(s.clone()),
        c::Value::Json(j) => W::Json(j.to_string()),
    }
}

fn element_to_guest(v: &c::Value) -> Option<wit::Element> {
    use wit::Element as W;
    Some(match v {
        c::Value::Array(_) => return None,
        c::Value::Null => W::Null,
        c::Value::Boolean(b) => W::Boolean(*b),
        c::Value::Int(i) => W::Int(*i),
        c::Value::Uint(u) => W::Uint(*u),
        c::Value::Float(f) => W::Float(*f),
        c::Value::Decimal(s) => W::Decimal(s.clone()),
        c::Value::Text(s) => W::Text(s.clone()),
        c::Value::Bytes(b) => W::Bytes(b.clone()),
        c::Value::Date(s) => W::Date(s.clone()),
        c::Value::Time(s) => W::Time(s.clone()),
        c::Value::Timestamp(s) => W::Timestamp(s.clone()),
        c::Value::Json(j) => W::Json(j.to_string()),
    })
}

pub fn error_from_guest(e: wit::Error) -> c::Error {
    use wit::Error as W;
    match e {
        W::Configuration(m) => c::Error::Configuration(m),
        W::Authentication(m) => c::Error::Authentication(m),
        W::Connection(m) => c::Error::Connection(m),
        W::Timeout(m) => c::Error::Timeout(m),
        W::Cancelled => c::Error::Cancelled,
        W::Query(q) => c::Error::Query(c::QueryError {
            code: q.code,
            message: q.message,
            detail: q.detail,
            position: q.position,
        }),
        W::InvalidInput(m) => c::Error::InvalidInput(m),
        W::Unsupported(m) => c::Error::Unsupported(m),
    }
}

pub fn plugin_info(info: wit::PluginInfo) -> c::PluginInfo {
    c::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        engines: info.engines,
        config_fields: info
            .config_fields
            .into_iter()
            .map(|f| c::ConfigField {
                name: f.name,
                kind: match f.kind {
                    wit::FieldKind::Text => c::FieldKind::Text,
                    wit::FieldKind::Integer => c::FieldKind::Integer,
                    wit::FieldKind::Boolean => c::FieldKind::Boolean,
                    wit::FieldKind::Json => c::FieldKind::Json,
                    wit::FieldKind::Path => c::FieldKind::Path,
                },
                required: f.required,
                secret: f.secret,
                default: f.default,
                description: f.description,
            })
            .collect(),
        capabilities: c::Capabilities {
            transactions: info.capabilities.transactions,
            cancellation: info.capabilities.cancellation,
            streaming: info.capabilities.streaming,
            multiple_databases: info.capabilities.multiple_databases,
            documents: info.capabilities.documents,
        },
    }
}

pub fn connection_config(config: &c::ConnectionConfig) -> wit::ConnectionConfig {
    wit::ConnectionConfig {
        engine: config.engine.clone(),
        host: config.host.clone(),
        port: config.port,
        database: config.database.clone(),
        username: config.username.clone(),
        password: config.password.as_ref().map(|p| p.expose().to_owned()),
        options: serde_json::Value::Object(config.options.clone()).to_string(),
    }
}

pub fn server_info(info: wit::ServerInfo) -> c::ServerInfo {
    c::ServerInfo {
        version: info.version,
        latency_ms: info.latency_ms,
        tls: info.tls,
    }
}

pub fn introspect_options(o: &c::IntrospectOptions) -> wit::IntrospectOptions {
    let mut include = wit::IntrospectInclude::empty();
    for (wanted, flag) in [
        (o.include.columns, wit::IntrospectInclude::COLUMNS),
        (o.include.indexes, wit::IntrospectInclude::INDEXES),
        (o.include.foreign_keys, wit::IntrospectInclude::FOREIGN_KEYS),
        (o.include.comments, wit::IntrospectInclude::COMMENTS),
        (
            o.include.row_estimates,
            wit::IntrospectInclude::ROW_ESTIMATES,
        ),
        (
            o.include.system_schemas,
            wit::IntrospectInclude::SYSTEM_SCHEMAS,
        ),
    ] {
        if wanted {
            include |= flag;
        }
    }
    wit::IntrospectOptions {
        schemas: o.schemas.clone(),
        tables: o.tables.clone(),
        include,
        sample_size: o.sample_size,
    }
}

pub fn schemas(schemas: Vec<wit::SchemaInfo>) -> Vec<c::SchemaInfo> {
    schemas
        .into_iter()
        .map(|s| c::SchemaInfo {
            name: s.name,
            tables: s.tables.into_iter().map(table).collect(),
        })
        .collect()
}

fn table(t: wit::TableInfo) -> c::TableInfo {
    c::TableInfo {
        name: t.name,
        kind: match t.kind {
            wit::TableKind::Table => c::TableKind::Table,
            wit::TableKind::View => c::TableKind::View,
            wit::TableKind::MaterializedView => c::TableKind::MaterializedView,
            wit::TableKind::ForeignTable => c::TableKind::ForeignTable,
            wit::TableKind::PartitionedTable => c::TableKind::PartitionedTable,
            wit::TableKind::Collection => c::TableKind::Collection,
        },
        columns: t
            .columns
            .into_iter()
            .map(|col| c::ColumnInfo {
                name: col.name,
                position: col.position,
                data_type: col.data_type,
                common_type: common_type(col.common_type),
                nullable: col.nullable,
                default: col.default,
                primary_key: col.primary_key,
                comment: col.comment,
                stats: col.stats.map(|s| c::FieldStats {
                    presence: s.presence,
                    types: s
                        .types
                        .into_iter()
                        .map(|t| c::TypeShare {
                            common_type: common_type(t.common_type),
                            data_type: t.data_type,
                            share: t.share,
                        })
                        .collect(),
                }),
            })
            .collect(),
        indexes: t
            .indexes
            .into_iter()
            .map(|i| c::IndexInfo {
                name: i.name,
                columns: i.columns,
                unique: i.unique,
                primary: i.primary,
                method: i.method,
                definition: i.definition,
            })
            .collect(),
        foreign_keys: t
            .foreign_keys
            .into_iter()
            .map(|f| c::ForeignKeyInfo {
                name: f.name,
                columns: f.columns,
                referenced_schema: f.referenced_schema,
                referenced_table: f.referenced_table,
                referenced_columns: f.referenced_columns,
                on_update: f.on_update,
                on_delete: f.on_delete,
            })
            .collect(),
        row_estimate: t.row_estimate,
        comment: t.comment,
    }
}

pub fn column(m: wit::ColumnMeta) -> c::ColumnMeta {
    c::ColumnMeta {
        name: m.name,
        data_type: m.data_type,
        common_type: common_type(m.common_type),
    }
}

//! The contract's data types, with constructors that keep plugin code short.

use std::collections::VecDeque;

pub use crate::bindings::plugboard::connector::types::{
    Capabilities, ColumnInfo, ColumnMeta, CommonType, ConfigField, ConnectionConfig, Element,
    Error, FieldKind, FieldStats, ForeignKeyInfo, IndexInfo, IntrospectInclude, IntrospectOptions,
    PluginInfo, QueryError, QueryRequest, Row, SchemaInfo, ServerInfo, TableInfo, TableKind,
    TypeShare, Value,
};

use crate::Rows;

impl Error {
    /// An error the engine reported for a query, with its own code (kept as the engine
    /// wrote it: SQLSTATE, errno, exception code).
    pub fn query(code: impl Into<Option<String>>, message: impl Into<String>) -> Error {
        Error::Query(QueryError {
            code: code.into(),
            message: message.into(),
            detail: None,
            position: None,
        })
    }
}

impl PluginInfo {
    /// Plugin info with no configuration fields beyond the connection's own and no
    /// capabilities; add them with [`PluginInfo::field`] and [`PluginInfo::capabilities`].
    pub fn new(name: &str, version: &str, description: &str, engines: &[&str]) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            engines: engines.iter().map(|e| (*e).to_owned()).collect(),
            config_fields: Vec::new(),
            capabilities: Capabilities {
                transactions: false,
                cancellation: false,
                streaming: false,
                multiple_databases: false,
                documents: false,
            },
        }
    }

    /// Adds a configuration field.
    pub fn field(mut self, field: ConfigField) -> PluginInfo {
        self.config_fields.push(field);
        self
    }

    /// Sets what the plugin can do.
    pub fn capabilities(mut self, capabilities: Capabilities) -> PluginInfo {
        self.capabilities = capabilities;
        self
    }
}

impl ConfigField {
    /// An optional, non-secret field with no default.
    pub fn new(name: &str, kind: FieldKind, description: &str) -> ConfigField {
        ConfigField {
            name: name.into(),
            kind,
            required: false,
            secret: false,
            default: None,
            description: description.into(),
        }
    }

    /// The field must be given.
    pub fn required(mut self) -> ConfigField {
        self.required = true;
        self
    }

    /// The field is a secret: stored encrypted, never shown.
    pub fn secret(mut self) -> ConfigField {
        self.secret = true;
        self
    }

    /// The default, as a user would type it.
    pub fn default(mut self, default: &str) -> ConfigField {
        self.default = Some(default.into());
        self
    }
}

impl ServerInfo {
    /// A test's answer.
    pub fn new(version: impl Into<String>, latency_ms: f64, tls: bool) -> ServerInfo {
        ServerInfo {
            version: version.into(),
            latency_ms,
            tls,
        }
    }
}

impl ColumnMeta {
    /// A result column: its name, the engine's type name, and the common type.
    pub fn new(
        name: impl Into<String>,
        data_type: impl Into<String>,
        common_type: CommonType,
    ) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            data_type: data_type.into(),
            common_type,
        }
    }
}

impl IntrospectOptions {
    /// Whether the options ask for `flag`.
    pub fn wants(&self, flag: IntrospectInclude) -> bool {
        self.include.bits() & flag.bits() == flag.bits()
    }

    /// Whether `schema` passes the schema filter (an empty filter passes everything).
    pub fn wants_schema(&self, schema: &str) -> bool {
        self.schemas.is_empty() || self.schemas.iter().any(|s| s == schema)
    }

    /// Whether `table` passes the table filter (an empty filter passes everything).
    pub fn wants_table(&self, table: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|t| t == table)
    }
}

impl Value {
    /// The value as the element of an array; `None` for an array (arrays do not nest).
    pub fn into_element(self) -> Option<Element> {
        Some(match self {
            Value::Null => Element::Null,
            Value::Boolean(b) => Element::Boolean(b),
            Value::Int(i) => Element::Int(i),
            Value::Uint(u) => Element::Uint(u),
            Value::Float(f) => Element::Float(f),
            Value::Decimal(s) => Element::Decimal(s),
            Value::Text(s) => Element::Text(s),
            Value::Bytes(b) => Element::Bytes(b),
            Value::Date(s) => Element::Date(s),
            Value::Time(s) => Element::Time(s),
            Value::Timestamp(s) => Element::Timestamp(s),
            Value::Json(s) => Element::Json(s),
            Value::Array(_) => return None,
        })
    }
}

/// A result held in memory, for results that are small by nature (a `SHOW`, a count) or
/// for tests. Large results should stream from the engine instead.
pub struct RowSet {
    columns: Vec<ColumnMeta>,
    rows: VecDeque<Row>,
    rows_affected: Option<u64>,
}

impl RowSet {
    /// A result of `rows` under `columns`.
    pub fn new(columns: Vec<ColumnMeta>, rows: Vec<Row>) -> RowSet {
        RowSet {
            columns,
            rows: rows.into(),
            rows_affected: None,
        }
    }

    /// The answer to a statement without a result set.
    pub fn affected(rows_affected: Option<u64>) -> RowSet {
        RowSet {
            columns: Vec::new(),
            rows: VecDeque::new(),
            rows_affected,
        }
    }
}

impl Rows for RowSet {
    fn columns(&self) -> Vec<ColumnMeta> {
        self.columns.clone()
    }

    fn next_batch(&mut self, max_rows: u32) -> crate::Result<Option<Vec<Row>>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let n = (max_rows as usize).min(self.rows.len());
        Ok(Some(self.rows.drain(..n).collect()))
    }

    fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }
}

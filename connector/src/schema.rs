//! Introspection options and results (WIT `introspect-options`, `schema-info` and below).
//!
//! These types are also what the host stores as schema snapshots, so they deserialize too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::CommonType;

/// What to include in an introspection; anything left out is not fetched at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct IntrospectInclude {
    pub columns: bool,
    pub indexes: bool,
    pub foreign_keys: bool,
    pub comments: bool,
    pub row_estimates: bool,
    /// System schemas (pg_catalog, information_schema, ...).
    pub system_schemas: bool,
}

impl Default for IntrospectInclude {
    /// Everything but system schemas.
    fn default() -> Self {
        IntrospectInclude {
            columns: true,
            indexes: true,
            foreign_keys: true,
            comments: true,
            row_estimates: true,
            system_schemas: false,
        }
    }
}

/// Which objects to introspect, and how much of each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntrospectOptions {
    /// Only these schemas (exact names); empty means all.
    pub schemas: Vec<String>,
    /// Only these tables (exact names); empty means all.
    pub tables: Vec<String>,
    /// What to fetch.
    pub include: IntrospectInclude,
    /// Documents sampled per collection (document stores).
    pub sample_size: Option<u32>,
}

/// The kind of a table-like object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TableKind {
    Table,
    View,
    MaterializedView,
    ForeignTable,
    PartitionedTable,
    Collection,
}

/// For a document store's inferred field: how often it had one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeShare {
    /// The type in the common vocabulary.
    pub common_type: CommonType,
    /// The type in the engine's words.
    pub data_type: String,
    /// Fraction of the documents where the field had this type, 0..1.
    pub share: f64,
}

/// For a document store's inferred field: presence and type distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Fraction of sampled documents that had the field, 0..1.
    pub presence: f64,
    /// The types seen, most frequent first.
    pub types: Vec<TypeShare>,
}

/// A column (or an inferred document field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// 1-based ordinal position.
    pub position: u32,
    /// The type in the engine's own words, e.g. `character varying(20)`.
    pub data_type: String,
    /// The type in the common vocabulary.
    pub common_type: CommonType,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// The default expression, in the engine's words.
    pub default: Option<String>,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// The column's comment.
    pub comment: Option<String>,
    /// Inferred statistics (document stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FieldStats>,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// Indexed columns in key order; an expression appears as its text.
    pub columns: Vec<String>,
    /// Whether it enforces uniqueness.
    pub unique: bool,
    /// Whether it backs the primary key.
    pub primary: bool,
    /// Access method, e.g. `btree`.
    pub method: Option<String>,
    /// The engine's own definition.
    pub definition: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ForeignKeyInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_schema: String,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    /// `NO ACTION`, `RESTRICT`, `CASCADE`, `SET NULL` or `SET DEFAULT`.
    pub on_update: String,
    /// As `on_update`.
    pub on_delete: String,
}

/// A table, view or collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// What kind of object it is.
    pub kind: TableKind,
    /// Columns in ordinal order.
    pub columns: Vec<ColumnInfo>,
    /// Indexes, by name.
    pub indexes: Vec<IndexInfo>,
    /// Foreign keys, by name.
    pub foreign_keys: Vec<ForeignKeyInfo>,
    /// The engine's row estimate; none when it has none.
    pub row_estimate: Option<i64>,
    /// The table's comment.
    pub comment: Option<String>,
}

/// A schema (a namespace of tables; a database, on engines without schemas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// Schema name.
    pub name: String,
    /// Its tables, by name.
    pub tables: Vec<TableInfo>,
}

/// Tables grouped by schema name (as introspection collects them), as schemas in name
/// order. With a table filter, a schema holding none of the tables is left out: it would be
/// noise in the answer.
pub fn schemas_from(
    grouped: BTreeMap<String, BTreeMap<String, TableInfo>>,
    options: &IntrospectOptions,
) -> Vec<SchemaInfo> {
    grouped
        .into_iter()
        .filter(|(_, tables)| options.tables.is_empty() || !tables.is_empty())
        .map(|(name, tables)| SchemaInfo {
            name,
            tables: tables.into_values().collect(),
        })
        .collect()
}

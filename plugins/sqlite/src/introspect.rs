//! Introspection from `sqlite_schema` and the pragma table-valued functions, in a fixed
//! number of queries whatever the schema's size: relations, columns, indexes, foreign keys
//! and row estimates (from `sqlite_stat1`, when ANALYZE has run). The table filter is pushed
//! into each query as a JSON array.
//!
//! SQLite has one schema per attached database; a connection's file is `main`. It has no
//! comments, and its constraints keep no names: a foreign key is named after its table and
//! position.

use std::collections::BTreeMap;

use plugboard_connector::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, IntrospectOptions, Result, SchemaInfo, TableInfo,
    TableKind,
};
use sqlx::{Row as _, SqliteConnection};

use crate::{error, types};

/// Which relations `m` qualify: tables and views, not SQLite's own, and among the names in
/// `?1` (a JSON array; empty means all).
macro_rules! relations {
    () => {
        " WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND (json_array_length(?1) = 0 OR m.name IN (SELECT value FROM json_each(?1)))"
    };
}

pub const RELATIONS_SQL: &str = concat!(
    "SELECT m.name, m.type, upper(m.sql) LIKE '%WITHOUT ROWID%' AS without_rowid \
     FROM sqlite_schema m",
    relations!(),
    " ORDER BY m.name"
);

pub const COLUMNS_SQL: &str = concat!(
    "SELECT m.name AS table_name, p.cid, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk \
     FROM sqlite_schema m JOIN pragma_table_info(m.name) p",
    relations!(),
    " ORDER BY m.name, p.cid"
);

pub const INDEXES_SQL: &str = concat!(
    "SELECT m.name AS table_name, il.name AS index_name, il.\"unique\", il.origin, \
            ii.seqno, ii.name AS column_name, ix.sql AS definition \
     FROM sqlite_schema m JOIN pragma_index_list(m.name) il \
     JOIN pragma_index_info(il.name) ii \
     LEFT JOIN sqlite_schema ix ON ix.type = 'index' AND ix.name = il.name",
    relations!(),
    " ORDER BY m.name, il.name, ii.seqno"
);

pub const FOREIGN_KEYS_SQL: &str = concat!(
    "SELECT m.name AS table_name, f.id, f.seq, f.\"table\" AS ref_table, f.\"from\", f.\"to\", \
            f.on_update, f.on_delete \
     FROM sqlite_schema m JOIN pragma_foreign_key_list(m.name) f",
    relations!(),
    " ORDER BY m.name, f.id, f.seq"
);

pub(crate) async fn introspect(
    conn: &mut SqliteConnection,
    options: &IntrospectOptions,
) -> Result<Vec<SchemaInfo>> {
    if !options.schemas.is_empty() && !options.schemas.iter().any(|s| s == "main") {
        return Ok(Vec::new());
    }
    let map = |e| error::map(e, "reading the schema", false);
    let filter = serde_json::to_string(&options.tables).expect("names serialize");
    let include = options.include;

    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    let mut without_rowid = Vec::new();
    for row in sqlx::query(RELATIONS_SQL)
        .bind(&filter)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?
    {
        let name: String = row.try_get("name").map_err(map)?;
        let kind: String = row.try_get("type").map_err(map)?;
        if row
            .try_get::<Option<bool>, _>("without_rowid")
            .map_err(map)?
            == Some(true)
        {
            without_rowid.push(name.clone());
        }
        tables.insert(
            name.clone(),
            TableInfo {
                name,
                kind: if kind == "view" {
                    TableKind::View
                } else {
                    TableKind::Table
                },
                columns: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                row_estimate: None,
                comment: None,
            },
        );
    }
    if include.columns || include.foreign_keys {
        for row in sqlx::query(COLUMNS_SQL)
            .bind(&filter)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?
        {
            let table: String = row.try_get("table_name").map_err(map)?;
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            let declared: String = row
                .try_get::<Option<String>, _>("type")
                .map_err(map)?
                .unwrap_or_default();
            t.columns.push(ColumnInfo {
                name: row.try_get("name").map_err(map)?,
                position: row.try_get::<i64, _>("cid").map_err(map)? as u32 + 1,
                common_type: types::common_type(&declared),
                data_type: declared,
                nullable: row.try_get::<i64, _>("notnull").map_err(map)? == 0,
                default: row.try_get("dflt_value").map_err(map)?,
                primary_key: row.try_get::<i64, _>("pk").map_err(map)? > 0,
                comment: None,
                stats: None,
            });
        }
    }
    if include.indexes {
        for row in sqlx::query(INDEXES_SQL)
            .bind(&filter)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?
        {
            let table: String = row.try_get("table_name").map_err(map)?;
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            let name: String = row.try_get("index_name").map_err(map)?;
            let column = row
                .try_get::<Option<String>, _>("column_name")
                .map_err(map)?
                .unwrap_or_else(|| "<expression>".into());
            match t.indexes.iter_mut().find(|i| i.name == name) {
                Some(index) => index.columns.push(column),
                None => t.indexes.push(IndexInfo {
                    name,
                    columns: vec![column],
                    unique: row.try_get::<i64, _>("unique").map_err(map)? != 0,
                    primary: row.try_get::<String, _>("origin").map_err(map)? == "pk",
                    method: Some("btree".into()),
                    definition: row.try_get("definition").map_err(map)?,
                }),
            }
        }
    }
    if include.foreign_keys {
        let mut keys: BTreeMap<(String, i64), ForeignKeyInfo> = BTreeMap::new();
        for row in sqlx::query(FOREIGN_KEYS_SQL)
            .bind(&filter)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?
        {
            let table: String = row.try_get("table_name").map_err(map)?;
            let id: i64 = row.try_get("id").map_err(map)?;
            let from: String = row.try_get("from").map_err(map)?;
            let to: Option<String> = row.try_get("to").map_err(map)?;
            let key = keys
                .entry((table.clone(), id))
                .or_insert_with(|| ForeignKeyInfo {
                    name: format!("{table}_fk{id}"),
                    columns: Vec::new(),
                    referenced_schema: "main".into(),
                    referenced_table: row.try_get("ref_table").unwrap_or_default(),
                    referenced_columns: Vec::new(),
                    on_update: row.try_get("on_update").unwrap_or_default(),
                    on_delete: row.try_get("on_delete").unwrap_or_default(),
                });
            key.columns.push(from);
            if let Some(to) = to {
                key.referenced_columns.push(to);
            }
        }
        for ((table, _), mut key) in keys {
            // `REFERENCES parent` with no column list means the parent's primary key.
            let parent = tables.get(&key.referenced_table);
            if let (true, Some(parent)) = (key.referenced_columns.is_empty(), parent) {
                key.referenced_columns = parent
                    .columns
                    .iter()
                    .filter(|c| c.primary_key)
                    .map(|c| c.name.clone())
                    .collect();
            }
            if let Some(t) = tables.get_mut(&table) {
                t.foreign_keys.push(key);
            }
        }
    }
    // Primary-key columns that cannot hold NULL though not declared NOT NULL: the rowid
    // alias (a lone `INTEGER PRIMARY KEY`), and every key column of a WITHOUT ROWID table.
    for (name, t) in tables.iter_mut() {
        let keys: Vec<usize> = (0..t.columns.len())
            .filter(|&i| t.columns[i].primary_key)
            .collect();
        let rowid_alias =
            keys.len() == 1 && t.columns[keys[0]].data_type.eq_ignore_ascii_case("INTEGER");
        if rowid_alias || without_rowid.contains(name) {
            keys.iter().for_each(|&i| t.columns[i].nullable = false);
        }
    }
    if !include.columns {
        tables.values_mut().for_each(|t| t.columns.clear());
    }
    if include.row_estimates {
        let has_stats: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
        if has_stats.is_some() {
            let rows = sqlx::query(
                "SELECT tbl, MAX(CAST(stat AS INTEGER)) AS n FROM sqlite_stat1 GROUP BY tbl",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
            for row in rows {
                let table: String = row.try_get("tbl").map_err(map)?;
                if let Some(t) = tables.get_mut(&table) {
                    t.row_estimate = row.try_get::<Option<i64>, _>("n").map_err(map)?;
                }
            }
        }
    }
    if tables.is_empty() && !options.tables.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![SchemaInfo {
        name: "main".into(),
        tables: tables.into_values().collect(),
    }])
}

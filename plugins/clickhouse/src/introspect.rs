//! Schemas from `system.databases`, `system.tables`, `system.columns` and `system.parts`,
//! in the columns every server since 18.16 has. ClickHouse has no foreign keys; a MergeTree
//! table's primary key is reported as its one index.

use std::collections::BTreeMap;

use plugboard_sdk::{
    ColumnInfo, Error, IndexInfo, IntrospectInclude, IntrospectOptions, Result, SchemaInfo,
    TableInfo, TableKind,
};
use serde_json::Value as Json;

use crate::client::ClickHouse;
use crate::params::escape_literal;
use crate::types;

/// Databases that belong to the server itself.
pub const SYSTEM_DATABASES: [&str; 3] = ["system", "INFORMATION_SCHEMA", "information_schema"];

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{}'", escape_literal(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a catalog query and returns its rows.
fn rows(ch: &ClickHouse, sql: &str) -> Result<Vec<Vec<Json>>> {
    let text = ch.fetch(&format!("{sql} FORMAT JSONCompact"))?;
    let answer: Json = serde_json::from_str(&text).map_err(|e| {
        Error::Connection(format!(
            "ClickHouse sent a catalog answer that does not parse: {e}"
        ))
    })?;
    Ok(answer["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default())
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// The databases introspection covers: the filter's, or else the connection's own (plus
/// the server's own databases when asked for), as the MySQL plugin does.
fn databases(ch: &ClickHouse, options: &IntrospectOptions) -> Result<Vec<String>> {
    let all = list_databases(ch)?;
    let system = options.wants(IntrospectInclude::SYSTEM_SCHEMAS);
    Ok(all
        .into_iter()
        .filter(|d| {
            if !options.schemas.is_empty() {
                options.wants_schema(d)
            } else {
                d == ch.database() || (system && SYSTEM_DATABASES.contains(&d.as_str()))
            }
        })
        .collect())
}

pub fn introspect(ch: &ClickHouse, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
    let dbs = databases(ch, options)?;
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let mut filter = format!("database IN ({})", list(&dbs));
    if !options.tables.is_empty() {
        filter.push_str(&format!(" AND {{table}} IN ({})", list(&options.tables)));
    }
    let table_filter = filter.replace("{table}", "name");
    let column_filter = filter.replace("{table}", "table");

    let mut schemas: BTreeMap<String, Vec<TableInfo>> =
        dbs.iter().map(|d| (d.clone(), Vec::new())).collect();
    for row in rows(
        ch,
        &format!(
            "SELECT database, name, engine, primary_key FROM system.tables WHERE {table_filter} ORDER BY database, name"
        ),
    )? {
        let (db, name, engine) = (text(&row[0]), text(&row[1]), text(&row[2]));
        let kind = match engine.as_str() {
            "View" => TableKind::View,
            "MaterializedView" => TableKind::MaterializedView,
            _ => TableKind::Table,
        };
        let key = text(&row[3]);
        let mut indexes = Vec::new();
        if options.wants(IntrospectInclude::INDEXES) && !key.is_empty() {
            indexes.push(IndexInfo {
                name: "primary_key".into(),
                columns: key.split(',').map(|c| c.trim().to_owned()).collect(),
                unique: false,
                primary: true,
                method: Some(engine.clone()),
                definition: Some(format!("PRIMARY KEY {key}")),
            });
        }
        schemas.entry(db).or_default().push(TableInfo {
            name,
            kind,
            columns: Vec::new(),
            indexes,
            foreign_keys: Vec::new(),
            row_estimate: None,
            comment: None,
        });
    }

    let find = |schemas: &mut BTreeMap<String, Vec<TableInfo>>,
                db: &str,
                table: &str|
     -> Option<usize> { schemas.get(db)?.iter().position(|t| t.name == table) };

    if options.wants(IntrospectInclude::COLUMNS) {
        let comments = options.wants(IntrospectInclude::COMMENTS);
        for row in rows(
            ch,
            &format!(
                "SELECT database, table, name, type, default_kind, default_expression, comment, \
                 is_in_primary_key FROM system.columns WHERE {column_filter}"
            ),
        )? {
            let (db, table) = (text(&row[0]), text(&row[1]));
            let Some(i) = find(&mut schemas, &db, &table) else {
                continue;
            };
            let data_type = text(&row[3]);
            let (_, nullable) = types::unwrap(&data_type);
            let tables = schemas.get_mut(&db).expect("found above");
            let position = tables[i].columns.len() as u32 + 1;
            let default_kind = text(&row[4]);
            tables[i].columns.push(ColumnInfo {
                name: text(&row[2]),
                position,
                common_type: types::common_type(&data_type),
                data_type,
                nullable,
                default: (!default_kind.is_empty())
                    .then(|| format!("{default_kind} {}", text(&row[5]))),
                primary_key: text(&row[7]) == "1",
                comment: Some(text(&row[6])).filter(|c| comments && !c.is_empty()),
                stats: None,
            });
        }
    }

    if options.wants(IntrospectInclude::ROW_ESTIMATES) {
        for row in rows(
            ch,
            &format!(
                "SELECT database, table, toString(sum(rows)) FROM system.parts \
                 WHERE active AND {column_filter} GROUP BY database, table"
            ),
        )? {
            let (db, table) = (text(&row[0]), text(&row[1]));
            if let Some(i) = find(&mut schemas, &db, &table) {
                schemas.get_mut(&db).expect("found above")[i].row_estimate =
                    text(&row[2]).parse().ok();
            }
        }
    }

    Ok(schemas
        .into_iter()
        .filter(|(_, tables)| options.tables.is_empty() || !tables.is_empty())
        .map(|(name, tables)| SchemaInfo { name, tables })
        .collect())
}

/// Every database on the server.
pub fn list_databases(ch: &ClickHouse) -> Result<Vec<String>> {
    Ok(rows(ch, "SELECT name FROM system.databases ORDER BY name")?
        .iter()
        .map(|r| text(&r[0]))
        .collect())
}

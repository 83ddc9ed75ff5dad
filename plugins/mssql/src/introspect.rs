//! Introspection from the `sys` catalog views in a fixed number of queries, whatever the
//! schema's size: schemas, tables and views (with `MS_Description` extended properties and
//! row counts from `sys.partitions`), columns, index columns and foreign-key columns, with
//! the schema and table filters pushed into each WHERE clause as parameters.

use std::collections::BTreeMap;

use plugboard_connector::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, IntrospectOptions, Result, SchemaInfo, TableInfo,
    TableKind,
};
use tiberius::{Query, Row};

use crate::connect::MssqlClient;
use crate::{error, types};

/// Schemas that come with every database.
const SYSTEM_SCHEMAS: &str = "('sys', 'INFORMATION_SCHEMA', 'guest', 'db_owner', 'db_accessadmin', \
    'db_securityadmin', 'db_ddladmin', 'db_backupoperator', 'db_datareader', 'db_datawriter', \
    'db_denydatareader', 'db_denydatawriter')";

/// The filters as SQL over `s.name` (schema) and `o.name` (table), with `@Pn` parameters.
pub(crate) struct Filter {
    pub schemas: Vec<String>,
    pub tables: Vec<String>,
    pub system: bool,
}

impl Filter {
    pub(crate) fn clause(&self, with_tables: bool) -> String {
        let mut parts = Vec::new();
        let mut n = 0;
        let mut list = |column: &str, names: &[String]| {
            if !names.is_empty() {
                let params: Vec<String> = names
                    .iter()
                    .map(|_| {
                        n += 1;
                        format!("@P{n}")
                    })
                    .collect();
                parts.push(format!("{column} IN ({})", params.join(", ")));
            }
        };
        list("s.name", &self.schemas);
        if with_tables {
            list("o.name", &self.tables);
        }
        if !self.system {
            parts.push(format!("s.name NOT IN {SYSTEM_SCHEMAS}"));
        }
        if parts.is_empty() {
            "1 = 1".into()
        } else {
            parts.join(" AND ")
        }
    }

    fn query(&self, sql: String, with_tables: bool) -> Query<'static> {
        let mut query = Query::new(sql);
        for s in &self.schemas {
            query.bind(s.clone());
        }
        if with_tables {
            for t in &self.tables {
                query.bind(t.clone());
            }
        }
        query
    }
}

pub(crate) fn schemas_sql(f: &Filter) -> String {
    format!(
        "SELECT s.name AS schema_name FROM sys.schemas s WHERE {} ORDER BY 1",
        f.clause(false)
    )
}

pub(crate) fn tables_sql(f: &Filter) -> String {
    format!(
        "SELECT s.name AS schema_name, o.name AS table_name, RTRIM(o.type) AS kind, \
                CAST(ep.value AS nvarchar(4000)) AS comment, \
                CAST((SELECT SUM(p.rows) FROM sys.partitions p \
                      WHERE p.object_id = o.object_id AND p.index_id IN (0, 1)) AS bigint) AS row_count \
         FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id \
         LEFT JOIN sys.extended_properties ep ON ep.class = 1 AND ep.major_id = o.object_id \
              AND ep.minor_id = 0 AND ep.name = 'MS_Description' \
         WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0 AND {} ORDER BY 1, 2",
        f.clause(true)
    )
}

pub(crate) fn columns_sql(f: &Filter) -> String {
    format!(
        "SELECT s.name AS schema_name, o.name AS table_name, c.name AS column_name, \
                CAST(c.column_id AS int) AS position, TYPE_NAME(c.user_type_id) AS type_name, \
                TYPE_NAME(c.system_type_id) AS base_type, CAST(c.max_length AS int) AS max_length, \
                CAST(c.precision AS int) AS precision, CAST(c.scale AS int) AS scale, c.is_nullable, \
                c.is_identity, OBJECT_DEFINITION(c.default_object_id) AS default_expr, \
                CAST(ep.value AS nvarchar(4000)) AS comment, \
                CAST(CASE WHEN EXISTS (SELECT 1 FROM sys.indexes i JOIN sys.index_columns ic \
                        ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
                        WHERE i.object_id = c.object_id AND i.is_primary_key = 1 \
                          AND ic.column_id = c.column_id) THEN 1 ELSE 0 END AS bit) AS is_pk \
         FROM sys.columns c JOIN sys.objects o ON o.object_id = c.object_id \
         JOIN sys.schemas s ON s.schema_id = o.schema_id \
         LEFT JOIN sys.extended_properties ep ON ep.class = 1 AND ep.major_id = c.object_id \
              AND ep.minor_id = c.column_id AND ep.name = 'MS_Description' \
         WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0 AND {} ORDER BY 1, 2, 4",
        f.clause(true)
    )
}

pub(crate) fn indexes_sql(f: &Filter) -> String {
    format!(
        "SELECT s.name AS schema_name, o.name AS table_name, i.name AS index_name, i.is_unique, \
                i.is_primary_key, i.type_desc, c.name AS column_name \
         FROM sys.indexes i JOIN sys.objects o ON o.object_id = i.object_id \
         JOIN sys.schemas s ON s.schema_id = o.schema_id \
         JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
              AND ic.key_ordinal > 0 \
         JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
         WHERE i.type > 0 AND o.is_ms_shipped = 0 AND {} ORDER BY 1, 2, 3, ic.key_ordinal",
        f.clause(true)
    )
}

pub(crate) fn foreign_keys_sql(f: &Filter) -> String {
    format!(
        "SELECT s.name AS schema_name, o.name AS table_name, fk.name AS fk_name, \
                pc.name AS column_name, rs.name AS ref_schema, ro.name AS ref_table, \
                rc.name AS ref_column, fk.update_referential_action_desc AS on_update, \
                fk.delete_referential_action_desc AS on_delete \
         FROM sys.foreign_keys fk \
         JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id \
         JOIN sys.objects o ON o.object_id = fk.parent_object_id \
         JOIN sys.schemas s ON s.schema_id = o.schema_id \
         JOIN sys.columns pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id \
         JOIN sys.objects ro ON ro.object_id = fk.referenced_object_id \
         JOIN sys.schemas rs ON rs.schema_id = ro.schema_id \
         JOIN sys.columns rc ON rc.object_id = fkc.referenced_object_id \
              AND rc.column_id = fkc.referenced_column_id \
         WHERE {} ORDER BY 1, 2, 3, fkc.constraint_column_id",
        f.clause(true)
    )
}

fn action(desc: &str) -> String {
    desc.replace('_', " ")
}

async fn rows(client: &mut MssqlClient, query: Query<'static>) -> Result<Vec<Row>> {
    let stream = query
        .query(client)
        .await
        .map_err(|e| error::map(e, "reading the catalog"))?;
    stream
        .into_first_result()
        .await
        .map_err(|e| error::map(e, "reading the catalog"))
}

fn text(row: &Row, column: &str) -> Option<String> {
    row.try_get::<&str, _>(column)
        .ok()
        .flatten()
        .map(str::to_owned)
}

fn int(row: &Row, column: &str) -> i32 {
    row.try_get::<i32, _>(column)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn flag(row: &Row, column: &str) -> bool {
    row.try_get::<bool, _>(column)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub(crate) async fn introspect(
    client: &mut MssqlClient,
    options: &IntrospectOptions,
) -> Result<Vec<SchemaInfo>> {
    let f = Filter {
        schemas: options.schemas.clone(),
        tables: options.tables.clone(),
        system: options.include.system_schemas,
    };
    let include = options.include;
    let mut schemas: BTreeMap<String, BTreeMap<String, TableInfo>> = BTreeMap::new();
    for row in rows(client, f.query(schemas_sql(&f), false)).await? {
        schemas.insert(
            text(&row, "schema_name").unwrap_or_default(),
            BTreeMap::new(),
        );
    }
    for row in rows(client, f.query(tables_sql(&f), true)).await? {
        let name = text(&row, "table_name").unwrap_or_default();
        let kind = if text(&row, "kind").as_deref() == Some("V") {
            TableKind::View
        } else {
            TableKind::Table
        };
        let table = TableInfo {
            name: name.clone(),
            kind,
            columns: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            row_estimate: if include.row_estimates && kind == TableKind::Table {
                row.try_get::<i64, _>("row_count").ok().flatten()
            } else {
                None
            },
            comment: if include.comments {
                text(&row, "comment")
            } else {
                None
            },
        };
        schemas
            .entry(text(&row, "schema_name").unwrap_or_default())
            .or_default()
            .insert(name, table);
    }
    if include.columns {
        for row in rows(client, f.query(columns_sql(&f), true)).await? {
            let Some(t) = lookup(&mut schemas, &row) else {
                continue;
            };
            let base = text(&row, "base_type").unwrap_or_default();
            let type_name = text(&row, "type_name").unwrap_or_else(|| base.clone());
            let default = if flag(&row, "is_identity") {
                Some("IDENTITY".to_owned())
            } else {
                text(&row, "default_expr")
            };
            t.columns.push(ColumnInfo {
                name: text(&row, "column_name").unwrap_or_default(),
                position: int(&row, "position") as u32,
                data_type: types::render_type(
                    &type_name,
                    int(&row, "max_length"),
                    int(&row, "precision"),
                    int(&row, "scale"),
                ),
                common_type: types::common_type(&base),
                nullable: flag(&row, "is_nullable"),
                default,
                primary_key: flag(&row, "is_pk"),
                comment: if include.comments {
                    text(&row, "comment")
                } else {
                    None
                },
                stats: None,
            });
        }
    }
    if include.indexes {
        for row in rows(client, f.query(indexes_sql(&f), true)).await? {
            let Some(t) = lookup(&mut schemas, &row) else {
                continue;
            };
            let name = text(&row, "index_name").unwrap_or_default();
            let column = text(&row, "column_name").unwrap_or_default();
            match t.indexes.iter_mut().find(|i| i.name == name) {
                Some(index) => index.columns.push(column),
                None => t.indexes.push(IndexInfo {
                    unique: flag(&row, "is_unique"),
                    primary: flag(&row, "is_primary_key"),
                    method: text(&row, "type_desc").map(|m| m.to_ascii_lowercase()),
                    definition: None,
                    columns: vec![column],
                    name,
                }),
            }
        }
    }
    if include.foreign_keys {
        for row in rows(client, f.query(foreign_keys_sql(&f), true)).await? {
            let Some(t) = lookup(&mut schemas, &row) else {
                continue;
            };
            let name = text(&row, "fk_name").unwrap_or_default();
            let column = text(&row, "column_name").unwrap_or_default();
            let ref_column = text(&row, "ref_column").unwrap_or_default();
            match t.foreign_keys.iter_mut().find(|k| k.name == name) {
                Some(key) => {
                    key.columns.push(column);
                    key.referenced_columns.push(ref_column);
                }
                None => t.foreign_keys.push(ForeignKeyInfo {
                    name,
                    columns: vec![column],
                    referenced_schema: text(&row, "ref_schema").unwrap_or_default(),
                    referenced_table: text(&row, "ref_table").unwrap_or_default(),
                    referenced_columns: vec![ref_column],
                    on_update: action(&text(&row, "on_update").unwrap_or_default()),
                    on_delete: action(&text(&row, "on_delete").unwrap_or_default()),
                }),
            }
        }
    }
    Ok(plugboard_connector::schemas_from(schemas, options))
}

fn lookup<'s>(
    schemas: &'s mut BTreeMap<String, BTreeMap<String, TableInfo>>,
    row: &Row,
) -> Option<&'s mut TableInfo> {
    let schema = text(row, "schema_name").unwrap_or_default();
    let table = text(row, "table_name").unwrap_or_default();
    schemas.get_mut(&schema).and_then(|t| t.get_mut(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_numbered_parameters() {
        let f = Filter {
            schemas: vec!["dbo".into(), "sales".into()],
            tables: vec!["orders".into()],
            system: false,
        };
        let clause = f.clause(true);
        assert!(
            clause.starts_with("s.name IN (@P1, @P2) AND o.name IN (@P3) AND s.name NOT IN ('sys'"),
            "{clause}"
        );
        assert_eq!(f.clause(false).matches("@P").count(), 2);
        let all = Filter {
            schemas: vec![],
            tables: vec![],
            system: true,
        };
        assert_eq!(all.clause(true), "1 = 1");
        for sql in [
            schemas_sql(&f),
            tables_sql(&f),
            columns_sql(&f),
            indexes_sql(&f),
            foreign_keys_sql(&f),
        ] {
            assert!(sql.contains("s.name IN (@P1, @P2)"), "{sql}");
        }
        assert!(
            !schemas_sql(&f).contains("@P3"),
            "tables do not filter schemas"
        );
        assert_eq!(action("SET_NULL"), "SET NULL");
    }
}

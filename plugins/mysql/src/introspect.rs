//! Introspection from `information_schema` in a fixed number of queries whatever the
//! schema's size: schemas, tables, columns, index columns and foreign-key columns, with the
//! schema and table filters pushed into each WHERE clause. Databases are the schemas; by
//! default only the connection's own database is read (all non-system ones when it names
//! none).
//!
//! Every column is cast to CHAR or SIGNED, because MySQL and MariaDB give
//! `information_schema` columns different types (and collations) across versions.

use std::collections::BTreeMap;

use plugboard_connector::{
    ColumnInfo, ForeignKeyInfo, IndexInfo, IntrospectOptions, Result, SchemaInfo, TableInfo,
    TableKind,
};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row as _};

use crate::{error, types};

const SYSTEM_SCHEMAS: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

/// `column IN (?, ?, ...)`, or true for no names.
fn in_list(column: &str, names: &[String]) -> String {
    if names.is_empty() {
        "TRUE".into()
    } else {
        format!("{column} IN ({})", vec!["?"; names.len()].join(", "))
    }
}

struct Filter<'a> {
    schemas: &'a [String],
    tables: &'a [String],
    system: bool,
}

impl Filter<'_> {
    /// The WHERE clause over a view's schema and (when it has one) table columns.
    fn clause(&self, schema_col: &str, table_col: Option<&str>) -> String {
        let mut parts = vec![in_list(schema_col, self.schemas)];
        if let Some(t) = table_col {
            parts.push(in_list(t, self.tables));
        }
        if !self.system {
            parts.push(format!("{schema_col} NOT IN {SYSTEM_SCHEMAS}"));
        }
        parts.join(" AND ")
    }

    async fn fetch(
        &self,
        conn: &mut MySqlConnection,
        sql: &str,
        with_tables: bool,
    ) -> Result<Vec<MySqlRow>> {
        let mut query = sqlx::query(sql);
        for s in self.schemas {
            query = query.bind(s);
        }
        if with_tables {
            for t in self.tables {
                query = query.bind(t);
            }
        }
        query
            .fetch_all(conn)
            .await
            .map_err(|e| error::map(e, "reading information_schema", false))
    }
}

/// The five catalog queries, with `?` for each filter value (schemas first, then tables).
struct Statements {
    schemas: String,
    tables: String,
    columns: String,
    indexes: String,
    foreign_keys: String,
}

impl Statements {
    fn new(filter: &Filter<'_>) -> Statements {
        Statements {
            schemas: format!(
                "SELECT CAST(SCHEMA_NAME AS CHAR) AS schema_name FROM information_schema.SCHEMATA WHERE {}",
                filter.clause("SCHEMA_NAME", None)
            ),
            tables: format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR) AS schema_name, CAST(TABLE_NAME AS CHAR) AS table_name, \
                CAST(TABLE_TYPE AS CHAR) AS table_type, CAST(TABLE_ROWS AS SIGNED) AS table_rows, \
                CAST(TABLE_COMMENT AS CHAR) AS comment \
         FROM information_schema.TABLES WHERE {} ORDER BY 1, 2",
                filter.clause("TABLE_SCHEMA", Some("TABLE_NAME"))
            ),
            columns: format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR) AS schema_name, CAST(TABLE_NAME AS CHAR) AS table_name, \
                    CAST(COLUMN_NAME AS CHAR) AS column_name, CAST(ORDINAL_POSITION AS SIGNED) AS position, \
                    CAST(COLUMN_TYPE AS CHAR) AS column_type, CAST(DATA_TYPE AS CHAR) AS data_type, \
                    CAST(IS_NULLABLE AS CHAR) AS is_nullable, CAST(COLUMN_DEFAULT AS CHAR) AS default_expr, \
                    CAST(COLUMN_KEY AS CHAR) AS column_key, CAST(COLUMN_COMMENT AS CHAR) AS comment, \
                    CAST(EXTRA AS CHAR) AS extra \
             FROM information_schema.COLUMNS WHERE {} ORDER BY 1, 2, 4",
                filter.clause("TABLE_SCHEMA", Some("TABLE_NAME"))
            ),
            indexes: format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR) AS schema_name, CAST(TABLE_NAME AS CHAR) AS table_name, \
                    CAST(INDEX_NAME AS CHAR) AS index_name, CAST(NON_UNIQUE AS SIGNED) AS non_unique, \
                    CAST(SEQ_IN_INDEX AS SIGNED) AS seq, CAST(COLUMN_NAME AS CHAR) AS column_name, \
                    CAST(INDEX_TYPE AS CHAR) AS index_type \
             FROM information_schema.STATISTICS WHERE {} ORDER BY 1, 2, 3, 5",
                filter.clause("TABLE_SCHEMA", Some("TABLE_NAME"))
            ),
            foreign_keys: format!(
                "SELECT CAST(k.TABLE_SCHEMA AS CHAR) AS schema_name, CAST(k.TABLE_NAME AS CHAR) AS table_name, \
                    CAST(k.CONSTRAINT_NAME AS CHAR) AS name, CAST(k.COLUMN_NAME AS CHAR) AS column_name, \
                    CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR) AS ref_schema, \
                    CAST(k.REFERENCED_TABLE_NAME AS CHAR) AS ref_table, \
                    CAST(k.REFERENCED_COLUMN_NAME AS CHAR) AS ref_column, \
                    CAST(r.UPDATE_RULE AS CHAR) AS on_update, CAST(r.DELETE_RULE AS CHAR) AS on_delete \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
              AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND {} \
             ORDER BY 1, 2, 3, k.ORDINAL_POSITION",
                filter.clause("k.TABLE_SCHEMA", Some("k.TABLE_NAME"))
            ),
        }
    }
}

/// The catalog queries introspection runs for `database`, with the name written in, for a
/// benchmark to time the same work with the `mariadb` client.
pub fn catalog_sql(database: &str) -> Vec<String> {
    let schemas = [database.to_owned()];
    let s = Statements::new(&Filter {
        schemas: &schemas,
        tables: &[],
        system: false,
    });
    let literal = format!("'{}'", database.replace('\'', "''"));
    [s.schemas, s.tables, s.columns, s.indexes, s.foreign_keys]
        .into_iter()
        .map(|sql| sql.replace('?', &literal))
        .collect()
}

fn text(row: &MySqlRow, column: &str) -> Result<Option<String>> {
    row.try_get(column)
        .map_err(|e| error::map(e, "reading information_schema", false))
}

fn int(row: &MySqlRow, column: &str) -> Result<Option<i64>> {
    row.try_get(column)
        .map_err(|e| error::map(e, "reading information_schema", false))
}

pub(crate) async fn introspect(
    conn: &mut MySqlConnection,
    database: Option<&str>,
    options: &IntrospectOptions,
) -> Result<Vec<SchemaInfo>> {
    let default_scope = database.map(|d| vec![d.to_owned()]).unwrap_or_default();
    let filter = Filter {
        schemas: if options.schemas.is_empty() {
            &default_scope
        } else {
            &options.schemas
        },
        tables: &options.tables,
        system: options.include.system_schemas,
    };
    let statements = Statements::new(&filter);
    let include = options.include;
    let mut schemas: BTreeMap<String, BTreeMap<String, TableInfo>> = BTreeMap::new();

    let sql = &statements.schemas;
    for row in filter.fetch(conn, sql, false).await? {
        schemas.insert(
            text(&row, "schema_name")?.unwrap_or_default(),
            BTreeMap::new(),
        );
    }

    let sql = &statements.tables;
    for row in filter.fetch(conn, sql, true).await? {
        let schema = text(&row, "schema_name")?.unwrap_or_default();
        let name = text(&row, "table_name")?.unwrap_or_default();
        let table_type = text(&row, "table_type")?.unwrap_or_default();
        let kind = if table_type.contains("VIEW") {
            TableKind::View
        } else {
            TableKind::Table
        };
        let comment = text(&row, "comment")?
            .filter(|c| !(c.is_empty() || kind == TableKind::View && c == "VIEW"));
        schemas.entry(schema).or_default().insert(
            name.clone(),
            TableInfo {
                name,
                kind,
                columns: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                row_estimate: if include.row_estimates && kind == TableKind::Table {
                    int(&row, "table_rows")?
                } else {
                    None
                },
                comment: if include.comments { comment } else { None },
            },
        );
    }

    if include.columns {
        let sql = &statements.columns;
        for row in filter.fetch(conn, sql, true).await? {
            let Some(t) = table_of(&mut schemas, &row)? else {
                continue;
            };
            let column_type = text(&row, "column_type")?.unwrap_or_default();
            let data_type = text(&row, "data_type")?.unwrap_or_default();
            let unsigned = if column_type.contains("unsigned") {
                " unsigned"
            } else {
                ""
            };
            let extra = text(&row, "extra")?.unwrap_or_default();
            // MariaDB shows a NULL default as the text NULL; an auto-increment is the default.
            let default = text(&row, "default_expr")?
                .filter(|d| d != "NULL")
                .or_else(|| {
                    extra
                        .contains("auto_increment")
                        .then(|| "auto_increment".to_owned())
                });
            t.columns.push(ColumnInfo {
                name: text(&row, "column_name")?.unwrap_or_default(),
                position: int(&row, "position")?.unwrap_or_default() as u32,
                common_type: types::common_type(
                    &format!("{data_type}{unsigned}"),
                    Some(&column_type),
                ),
                data_type: column_type,
                nullable: text(&row, "is_nullable")?.as_deref() == Some("YES"),
                default,
                primary_key: text(&row, "column_key")?.as_deref() == Some("PRI"),
                comment: if include.comments {
                    text(&row, "comment")?.filter(|c| !c.is_empty())
                } else {
                    None
                },
                stats: None,
            });
        }
    }
    if include.indexes {
        let sql = &statements.indexes;
        for row in filter.fetch(conn, sql, true).await? {
            let Some(t) = table_of(&mut schemas, &row)? else {
                continue;
            };
            let name = text(&row, "index_name")?.unwrap_or_default();
            let column = text(&row, "column_name")?.unwrap_or_else(|| "<expression>".into());
            match t.indexes.iter_mut().find(|i| i.name == name) {
                Some(index) => index.columns.push(column),
                None => t.indexes.push(IndexInfo {
                    primary: name == "PRIMARY",
                    unique: int(&row, "non_unique")? == Some(0),
                    method: text(&row, "index_type")?.map(|m| m.to_ascii_lowercase()),
                    definition: None,
                    columns: vec![column],
                    name,
                }),
            }
        }
    }
    if include.foreign_keys {
        let sql = &statements.foreign_keys;
        for row in filter.fetch(conn, sql, true).await? {
            let Some(t) = table_of(&mut schemas, &row)? else {
                continue;
            };
            let name = text(&row, "name")?.unwrap_or_default();
            let column = text(&row, "column_name")?.unwrap_or_default();
            let ref_column = text(&row, "ref_column")?.unwrap_or_default();
            match t.foreign_keys.iter_mut().find(|k| k.name == name) {
                Some(key) => {
                    key.columns.push(column);
                    key.referenced_columns.push(ref_column);
                }
                None => t.foreign_keys.push(ForeignKeyInfo {
                    name,
                    columns: vec![column],
                    referenced_schema: text(&row, "ref_schema")?.unwrap_or_default(),
                    referenced_table: text(&row, "ref_table")?.unwrap_or_default(),
                    referenced_columns: vec![ref_column],
                    on_update: text(&row, "on_update")?.unwrap_or_default(),
                    on_delete: text(&row, "on_delete")?.unwrap_or_default(),
                }),
            }
        }
    }
    Ok(plugboard_connector::schemas_from(schemas, options))
}

fn table_of<'s>(
    schemas: &'s mut BTreeMap<String, BTreeMap<String, TableInfo>>,
    row: &MySqlRow,
) -> Result<Option<&'s mut TableInfo>> {
    let schema = text(row, "schema_name")?.unwrap_or_default();
    let table = text(row, "table_name")?.unwrap_or_default();
    Ok(schemas.get_mut(&schema).and_then(|t| t.get_mut(&table)))
}

//! The query history: one row per query or transaction, written in batches by
//! [`crate::history`], read back with filters and paging, pruned by age and count.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// One finished query, as recorded and as `GET /api/v1/queries` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRecord {
    pub id: String,
    pub connection_id: String,
    pub engine: String,
    /// `query` or `transaction`.
    pub kind: String,
    /// Who ran it, as the `X-Plugboard-User` header said; `None` when it said nothing.
    pub who: Option<String>,
    pub started_at: String,
    pub duration_ms: f64,
    /// Rows returned (or, for a statement without a result, rows affected).
    pub row_count: i64,
    /// `ok`, `failed`, `cancelled` or `timeout`.
    pub status: String,
    /// The error's code (`query`, `timeout`, ...) when it did not succeed.
    pub error_code: Option<String>,
    /// SHA-256 of the text, hex: the same query hashes the same, so it can be counted.
    pub sql_hash: String,
    /// The text itself, when the operator keeps it (`--history-sql keep`).
    pub sql: Option<String>,
}

/// Which history rows to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub connection_id: Option<String>,
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub since: Option<String>,
    /// Started before (RFC 3339).
    pub until: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

const COLUMNS: &str = "id, connection_id, engine, kind, who, started_at, duration_ms, row_count, \
    status, error_code, sql_hash, sql_text";

impl Store {
    /// Records finished queries, in one transaction.
    pub async fn insert_history(&self, records: &[HistoryRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in records {
            sqlx::query(&format!(
                "INSERT INTO query_history ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(&r.id)
            .bind(&r.connection_id)
            .bind(&r.engine)
            .bind(&r.kind)
            .bind(&r.who)
            .bind(&r.started_at)
            .bind(r.duration_ms)
            .bind(r.row_count)
            .bind(&r.status)
            .bind(&r.error_code)
            .bind(&r.sql_hash)
            .bind(&r.sql)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// History rows matching `filter`, newest first.
    pub async fn list_history(
        &self,
        filter: &HistoryFilter,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, op, value) in [
            ("connection_id", "=", &filter.connection_id),
            ("status", "=", &filter.status),
            ("started_at", ">=", &filter.since),
            ("started_at", "<", &filter.until),
        ] {
            if let Some(value) = value {
                values.push(value);
                conditions.push(format!("{column} {op} ${}", values.len()));
            }
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM query_history {filter_sql} \
             ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}",
            values.len() + 1,
            values.len() + 2
        );
        let mut query = sqlx::query(&sql);
        for value in values {
            query = query.bind(value);
        }
        let rows = query
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(history_from_row).collect()
    }

    /// Deletes history started before `cutoff` (RFC 3339), and past the newest
    /// `keep_newest` rows; returns how many rows went.
    pub async fn prune_history(&self, cutoff: &str, keep_newest: i64) -> Result<u64, StoreError> {
        let by_age = sqlx::query("DELETE FROM query_history WHERE started_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let by_count = sqlx::query(
            "DELETE FROM query_history WHERE id NOT IN \
             (SELECT id FROM query_history ORDER BY started_at DESC, id DESC LIMIT $1)",
        )
        .bind(keep_newest)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(by_age + by_count)
    }
}

fn history_from_row(row: &AnyRow) -> Result<HistoryRecord, StoreError> {
    Ok(HistoryRecord {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        engine: row.try_get("engine")?,
        kind: row.try_get("kind")?,
        who: row.try_get("who")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        row_count: row.try_get("row_count")?,
        status: row.try_get("status")?,
        error_code: row.try_get("error_code")?,
        sql_hash: row.try_get("sql_hash")?,
        sql: row.try_get("sql_text")?,
    })
}

//! The registry's storage: connections, their sealed secrets and schema snapshots.
//!
//! An embedded SQLite file under the data directory by default (WAL mode: readers never
//! wait for the writer), or PostgreSQL when `PLUGBOARD_DATABASE_URL` names one, so that
//! several replicas share one state. One code path serves both through sqlx's `Any` driver;
//! [`migrations`] holds the only dialect-specific text.

mod history;
mod migrations;

pub use history::{HistoryFilter, HistoryRecord};

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

use crate::secrets::SealedSecret;

/// Snapshots kept per connection and filter set; older ones are pruned on insert.
const SNAPSHOTS_KEPT: i64 = 5;

/// A lock id for migrations on a shared PostgreSQL store, so replicas starting together
/// migrate one at a time. ("plugboard" in ASCII, truncated to fit a bigint.)
const MIGRATION_LOCK: i64 = 0x706c_7567_626f_6172;

/// Which SQL dialect the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default.
    Sqlite,
    /// A shared store for several replicas.
    Postgres,
}

impl Dialect {
    /// The name `/health` reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another connection has this name.
    #[error("a connection named `{0}` already exists")]
    DuplicateName(String),
    /// A stored value could not be read back (a corrupt row).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a user sets on a connection (everything but the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionFields {
    pub name: String,
    pub engine: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub username: Option<String>,
    pub options: serde_json::Map<String, serde_json::Value>,
    pub notes: Option<String>,
}

/// A stored connection, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: String,
    pub fields: ConnectionFields,
    pub password_set: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// What a replace does to the stored secret.
#[derive(Debug, Clone)]
pub enum PasswordChange {
    /// Leave it as it is.
    Keep,
    /// Remove it.
    Clear,
    /// Replace it.
    Set(SealedSecret),
}

/// A stored schema snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub fetched_at: String,
    pub body: String,
}

/// The registry store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

const SELECT_CONNECTION: &str = "SELECT c.id, c.name, c.engine, c.host, c.port, c.database_name, \
    c.username, c.options, c.notes, c.created_at, c.updated_at, \
    CAST(CASE WHEN s.connection_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS password_set \
    FROM connections c LEFT JOIN connection_secrets s ON s.connection_id = c.id";

impl Store {
    /// Opens (creating if needed) the SQLite store at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::connect(&url, Dialect::Sqlite).await?;
        // WAL persists in the file: set once, it holds for every later connection.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&store.pool)
            .await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the PostgreSQL store at `url` and migrates it.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url, Dialect::Postgres).await?;
        store.migrate().await?;
        Ok(store)
    }

    async fn connect(url: &str, dialect: Dialect) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Store { pool, dialect })
    }

    /// Which dialect the store speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(migrations::LEDGER).execute(&mut *tx).await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM plugboard_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let applied = applied.unwrap_or(0);
        for migration in migrations::MIGRATIONS
            .iter()
            .filter(|m| m.version > applied)
        {
            sqlx::raw_sql(migration.sql(self.dialect))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO plugboard_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = migration.version,
                description = migration.description,
                "applied store migration"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Round-trip time of a trivial query: the store's health.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }

    /// Inserts a connection and its sealed secret, atomically.
    pub async fn insert_connection(
        &self,
        id: &str,
        fields: &ConnectionFields,
        secret: Option<&SealedSecret>,
    ) -> Result<ConnectionRecord, StoreError> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        let inserted = bind_connection(
            "INSERT INTO connections (id, name, engine, host, port, database_name, username, \
             options, notes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            id,
            fields,
            &now,
        )
        .execute(&mut *tx)
        .await;
        duplicate_name(inserted, &fields.name)?;
        if let Some(secret) = secret {
            upsert_secret(&mut tx, id, secret, &now).await?;
        }
        tx.commit().await?;
        Ok(ConnectionRecord {
            id: id.to_owned(),
            fields: fields.clone(),
            password_set: secret.is_some(),
            created_at: now.clone(),
            updated_at: now,
        })
    }

    /// Every connection, by name.
    pub async fn list_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        sqlx::query(&format!("{SELECT_CONNECTION} ORDER BY c.name"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record_from_row)
            .collect()
    }

    /// One connection.
    pub async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        sqlx::query(&format!("{SELECT_CONNECTION} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record_from_row)
            .transpose()
    }

    /// Replaces a connection's fields (and its secret, as `password` says), atomically.
    /// `None` when there is no such connection.
    pub async fn replace_connection(
        &self,
        id: &str,
        fields: &ConnectionFields,
        password: &PasswordChange,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        let updated = bind_connection(
            "UPDATE connections SET name = $2, engine = $3, host = $4, port = $5, \
             database_name = $6, username = $7, options = $8, notes = $9, updated_at = $10 \
             WHERE id = $1",
            id,
            fields,
            &now,
        )
        .execute(&mut *tx)
        .await;
        if duplicate_name(updated, &fields.name)?.rows_affected() == 0 {
            return Ok(None);
        }
        match password {
            PasswordChange::Keep => {}
            PasswordChange::Clear => {
                sqlx::query("DELETE FROM connection_secrets WHERE connection_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            PasswordChange::Set(secret) => upsert_secret(&mut tx, id, secret, &now).await?,
        }
        // Snapshots describe the old target; a replaced connection may point elsewhere.
        sqlx::query("DELETE FROM schema_snapshots WHERE connection_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!("{SELECT_CONNECTION} WHERE c.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        record_from_row(&row).map(Some)
    }

    /// Deletes a connection with its secret and snapshots; false when there was none.
    pub async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys on, and
        // the store must not depend on a connection setting to stay consistent.
        for table in ["connection_secrets", "schema_snapshots"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE connection_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// A connection's sealed secret.
    pub async fn get_secret(&self, id: &str) -> Result<Option<SealedSecret>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM connection_secrets WHERE connection_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SealedSecret {
                key_id: row.try_get("key_id")?,
                nonce: row.try_get("nonce")?,
                ciphertext: row.try_get("ciphertext")?,
            })
        })
        .transpose()
    }

    /// Stores a schema snapshot taken with the filters `options`, pruning older ones.
    pub async fn insert_snapshot(
        &self,
        connection_id: &str,
        options: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO schema_snapshots (connection_id, options, fetched_at, body) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(connection_id)
        .bind(options)
        .bind(&snapshot.fetched_at)
        .bind(&snapshot.body)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM schema_snapshots WHERE connection_id = $1 AND options = $2 AND id NOT IN \
             (SELECT id FROM schema_snapshots WHERE connection_id = $1 AND options = $2 \
              ORDER BY id DESC LIMIT $3)",
        )
        .bind(connection_id)
        .bind(options)
        .bind(SNAPSHOTS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest snapshot taken with the filters `options`.
    pub async fn latest_snapshot(
        &self,
        connection_id: &str,
        options: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT fetched_at, body FROM schema_snapshots \
             WHERE connection_id = $1 AND options = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(connection_id)
        .bind(options)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Snapshot {
                fetched_at: row.try_get("fetched_at")?,
                body: row.try_get("body")?,
            })
        })
        .transpose()
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Binds a connection's row in the order insert and update share: `$1` id, `$2`..`$9` the
/// fields, `$10` the time.
fn bind_connection<'q>(
    sql: &'q str,
    id: &'q str,
    fields: &'q ConnectionFields,
    now: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.engine)
        .bind(&fields.host)
        .bind(fields.port.map(i64::from))
        .bind(&fields.database)
        .bind(&fields.username)
        .bind(serde_json::Value::Object(fields.options.clone()).to_string())
        .bind(&fields.notes)
        .bind(now)
}

async fn upsert_secret(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    secret: &SealedSecret,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM connection_secrets WHERE connection_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO connection_secrets (connection_id, key_id, nonce, ciphertext, updated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&secret.key_id)
    .bind(&secret.nonce)
    .bind(&secret.ciphertext)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Turns a unique violation on `connections.name` into [`StoreError::DuplicateName`].
fn duplicate_name<T>(result: Result<T, sqlx::Error>, name: &str) -> Result<T, StoreError> {
    match result {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(StoreError::DuplicateName(name.to_owned()))
        }
        other => Ok(other?),
    }
}

fn record_from_row(row: &AnyRow) -> Result<ConnectionRecord, StoreError> {
    let options: String = row.try_get("options")?;
    let options = match serde_json::from_str(&options) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            return Err(StoreError::Corrupt(
                "connection options are not a JSON object".into(),
            ));
        }
    };
    let port: Option<i64> = row.try_get("port")?;
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        fields: ConnectionFields {
            name: row.try_get("name")?,
            engine: row.try_get("engine")?,
            host: row.try_get("host")?,
            port: port
                .map(|p| u16::try_from(p).map_err(|_| StoreError::Corrupt(format!("port {p}"))))
                .transpose()?,
            database: row.try_get("database_name")?,
            username: row.try_get("username")?,
            options,
            notes: row.try_get("notes")?,
        },
        password_set: row.try_get::<i64, _>("password_set")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Now, as RFC 3339 UTC with milliseconds: sorts as text, reads as a timestamp.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A query's start, as the history stores it: to the microsecond, because queries from one
/// client can start within the same millisecond, and the history lists them by start.
pub fn query_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str) -> ConnectionFields {
        ConnectionFields {
            name: name.into(),
            engine: "postgres".into(),
            host: Some("db".into()),
            port: Some(5432),
            database: Some("app".into()),
            username: Some("u".into()),
            options: serde_json::json!({"sslmode": "require"})
                .as_object()
                .unwrap()
                .clone(),
            notes: Some("ünïcode notes".into()),
        }
    }

    fn sealed() -> SealedSecret {
        SealedSecret {
            key_id: "k1".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 20],
        }
    }

    #[tokio::test]
    async fn connections_roundtrip_and_names_stay_unique() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("registry.db"))
            .await
            .unwrap();
        let a = store
            .insert_connection("id-a", &fields("a"), Some(&sealed()))
            .await
            .unwrap();
        assert!(a.password_set);
        assert_eq!(store.get_connection("id-a").await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_secret("id-a").await.unwrap(), Some(sealed()));
        assert!(matches!(
            store.insert_connection("id-b", &fields("a"), None).await,
            Err(StoreError::DuplicateName(n)) if n == "a"
        ));
        store
            .insert_connection("id-b", &fields("b"), None)
            .await
            .unwrap();
        assert!(matches!(
            store
                .replace_connection("id-b", &fields("a"), &PasswordChange::Keep)
                .await,
            Err(StoreError::DuplicateName(_))
        ));
        let names: Vec<String> = store
            .list_connections()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.fields.name)
            .collect();
        assert_eq!(names, ["a", "b"]);

        let replaced = store
            .replace_connection("id-a", &fields("a2"), &PasswordChange::Clear)
            .await
            .unwrap()
            .unwrap();
        assert!(!replaced.password_set);
        assert_eq!(replaced.created_at, a.created_at);
        assert!(store.get_secret("id-a").await.unwrap().is_none());
        assert!(
            store
                .replace_connection("nope", &fields("x"), &PasswordChange::Keep)
                .await
                .unwrap()
                .is_none()
        );

        assert!(store.delete_connection("id-a").await.unwrap());
        assert!(!store.delete_connection("id-a").await.unwrap());
        assert!(store.get_connection("id-a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn snapshots_keep_the_newest_few_per_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("registry.db"))
            .await
            .unwrap();
        store
            .insert_connection("c", &fields("c"), None)
            .await
            .unwrap();
        for i in 0..8 {
            let snap = Snapshot {
                fetched_at: format!("t{i}"),
                body: format!("{{\"n\":{i}}}"),
            };
            store.insert_snapshot("c", "all", &snap).await.unwrap();
        }
        let latest = store.latest_snapshot("c", "all").await.unwrap().unwrap();
        assert_eq!(latest.fetched_at, "t7");
        assert!(store.latest_snapshot("c", "other").await.unwrap().is_none());
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_snapshots")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(count, SNAPSHOTS_KEPT);
        // Reopening migrates nothing and keeps the data.
        drop(store);
        let store = Store::open_sqlite(&dir.path().join("registry.db"))
            .await
            .unwrap();
        assert!(store.get_connection("c").await.unwrap().is_some());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

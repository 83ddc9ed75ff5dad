//! The registry's schema, as numbered migrations embedded in the binary, one text per
//! dialect. A migration is never edited once released: a change is a new migration.
//!
//! Both dialects store ids and timestamps as text (UUIDs, RFC 3339 in UTC, which sort as
//! text) and integers as 64-bit, so the same queries and row decoding serve both.

use super::Dialect;

/// One schema change.
pub(super) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    pub(super) fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// The ledger of applied migrations; created before any migration runs.
pub(super) const LEDGER: &str = "CREATE TABLE IF NOT EXISTS plugboard_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "connections, their secrets and schema snapshots",
        sqlite: "
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    engine TEXT NOT NULL,
    host TEXT,
    port BIGINT,
    database_name TEXT,
    username TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    notes TEXT,
    owner TEXT,
    tenant TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE connection_secrets (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE schema_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    options TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX schema_snapshots_by_connection ON schema_snapshots (connection_id, options, id);
",
        postgres: "
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    engine TEXT NOT NULL,
    host TEXT,
    port BIGINT,
    database_name TEXT,
    username TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    notes TEXT,
    owner TEXT,
    tenant TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE connection_secrets (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE schema_snapshots (
    id BIGSERIAL PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    options TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX schema_snapshots_by_connection ON schema_snapshots (connection_id, options, id);
",
    },
    Migration {
        version: 2,
        description: "query history",
        sqlite: QUERY_HISTORY,
        postgres: QUERY_HISTORY,
    },
];

/// The same text serves both dialects.
const QUERY_HISTORY: &str = "
CREATE TABLE query_history (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    engine TEXT NOT NULL,
    kind TEXT NOT NULL,
    who TEXT,
    started_at TEXT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    row_count BIGINT NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    sql_hash TEXT NOT NULL,
    sql_text TEXT
);
CREATE INDEX query_history_by_time ON query_history (started_at);
CREATE INDEX query_history_by_connection ON query_history (connection_id, started_at);
";

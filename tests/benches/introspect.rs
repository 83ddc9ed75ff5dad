//! Benchmark: introspecting a 2,000-table schema through Plugboard's HTTP API, against the
//! same catalog queries run by psql, in one run on one PostgreSQL.
//!
//! Run with `cargo bench -p plugboard-tests --bench introspect` (or `scripts/bench.sh`).
//! Each table has 15 columns, a primary key, a foreign key and two more indexes. Both sides
//! read the full schema with comments and row estimates. Plugboard is timed from the HTTP
//! request to the last byte of its JSON answer on a warm pool; psql from process start to
//! exit (connecting over TCP with a password, as Plugboard does), running the five catalog
//! queries Plugboard runs, in one REPEATABLE READ transaction, its output discarded.

use std::process::{Command, Stdio};
use std::time::Instant;

use plugboard_plugin_postgres::introspect::{
    COLUMNS_SQL, FOREIGN_KEYS_SQL, INDEXES_SQL, RELATIONS_SQL, SCHEMAS_SQL,
};
use plugboard_tests::bench::{compare_schema_reads, ms};
use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

const TABLES: usize = 2_000;
const RUNS: usize = 7;

fn fixture_sql() -> String {
    let mut sql = String::from("BEGIN;\n");
    for i in 0..TABLES {
        let parent = if i == 0 { 0 } else { i - 1 };
        sql.push_str(&format!(
            "CREATE TABLE t{i:04} (\n  id bigint PRIMARY KEY,\n  parent_id bigint REFERENCES t{parent:04} (id),\n  \
             name text NOT NULL, code varchar(32), amount numeric(12,2) DEFAULT 0, qty integer, \
             ratio double precision, active boolean DEFAULT true, born date, seen_at timestamptz DEFAULT now(), \
             payload jsonb, tags text[], ref uuid, note text, small smallint\n);\n\
             CREATE INDEX t{i:04}_parent ON t{i:04} (parent_id);\n\
             CREATE INDEX t{i:04}_name_code ON t{i:04} (name, code);\n\
             COMMENT ON TABLE t{i:04} IS 'table {i}';\n"
        ));
    }
    sql.push_str("COMMIT;\nANALYZE;\n");
    sql
}

fn psql_script() -> String {
    let bind = |sql: &str| {
        sql.replace("$1", "'{}'::text[]")
            .replace("$2", "'{}'::text[]")
            .replace("$3", "false")
    };
    let mut script = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n");
    for sql in [
        SCHEMAS_SQL,
        RELATIONS_SQL,
        COLUMNS_SQL,
        INDEXES_SQL,
        FOREIGN_KEYS_SQL,
    ] {
        script.push_str(&bind(sql));
        script.push_str(";\n");
    }
    script.push_str("COMMIT;\n");
    script
}

#[tokio::main]
async fn main() {
    plugboard_tests::bench::log_as_the_binary_does();
    let pg = PgServer::start();
    let db = pg.create_database("bench");
    let started = Instant::now();
    pg.exec_as_test_user(&db, &fixture_sql());
    eprintln!(
        "created {TABLES} tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // psql: the same catalog queries, in one snapshot.
    let script_path =
        std::env::temp_dir().join(format!("plugboard-bench-{}.sql", std::process::id()));
    std::fs::write(&script_path, psql_script()).unwrap();
    let psql = pg.bin_dir().join("psql");
    let run_psql = || {
        let started = Instant::now();
        let status = Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-o",
                "/dev/null",
            ])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                TEST_USER,
                "-d",
                &db,
            ])
            .arg("-f")
            .arg(&script_path)
            .env("PGPASSWORD", TEST_PASSWORD)
            .stdin(Stdio::null())
            .status()
            .expect("running psql");
        assert!(status.success(), "psql failed");
        started.elapsed()
    };

    // Plugboard: the schema endpoint, live every time.
    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "bench", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "database": db, "username": TEST_USER, "password": TEST_PASSWORD,
            "options": {"sslmode": "disable"}
        }))
        .await;
    let path = format!("/api/v1/connections/{id}/schema?refresh=true");
    let c = compare_schema_reads(&server, &path, TABLES, 15, RUNS, run_psql).await;
    println!("introspection of {TABLES} tables x 15 columns, median of {RUNS} runs:");
    println!(
        "  plugboard (HTTP API, JSON): {:8.1} ms  ({} bytes)",
        ms(c.plugboard),
        c.bytes
    );
    println!("  psql (same catalog queries): {:7.1} ms", ms(c.baseline));
    println!(
        "  ratio plugboard / psql:      {:7.2}  (target <= 1.5)",
        c.ratio()
    );

    server.stop().await;
    let _ = std::fs::remove_file(&script_path);
    pg.stop();
}

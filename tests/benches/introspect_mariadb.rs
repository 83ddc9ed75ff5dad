//! Benchmark: introspecting a 2,000-table MariaDB schema through Plugboard's HTTP API,
//! against the same information_schema queries run by the `mariadb` client, in one run.
//!
//! Run with `cargo bench -p plugboard-tests --bench introspect_mariadb` (or
//! `scripts/bench.sh`). Each table has 15 columns, a primary key, a foreign key and two more
//! indexes. Plugboard is timed from the HTTP request to the last byte of its JSON on a warm
//! pool; the client from process start to exit, connecting over TCP with a password as
//! Plugboard does, its output discarded.

use std::process::{Command, Stdio};
use std::time::Instant;

use plugboard_tests::bench::{compare_schema_reads, ms};
use plugboard_tests::mariadb::{MariaServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

const TABLES: usize = 2_000;
const RUNS: usize = 7;

fn fixture_sql(db: &str) -> String {
    let mut sql = format!("USE {db};\nSET foreign_key_checks = 0;\n");
    for i in 0..TABLES {
        let parent = if i == 0 { 0 } else { i - 1 };
        sql.push_str(&format!(
            "CREATE TABLE t{i:04} (id BIGINT PRIMARY KEY, parent_id BIGINT, name VARCHAR(100) NOT NULL, \
             code VARCHAR(32), amount DECIMAL(12,2) DEFAULT 0, qty INT, ratio DOUBLE, active BOOLEAN DEFAULT TRUE, \
             born DATE, seen_at DATETIME, payload JSON, tags TEXT, ref CHAR(36), note TEXT, small SMALLINT, \
             KEY t{i:04}_parent (parent_id), KEY t{i:04}_name_code (name, code), \
             CONSTRAINT t{i:04}_fk FOREIGN KEY (parent_id) REFERENCES t{parent:04} (id)) COMMENT 'table {i}';\n"
        ));
    }
    sql
}

fn client() -> &'static str {
    if std::path::Path::new("/usr/bin/mariadb").exists() {
        "/usr/bin/mariadb"
    } else {
        "mariadb"
    }
}

#[tokio::main]
async fn main() {
    plugboard_tests::bench::log_as_the_binary_does();
    let maria = MariaServer::start();
    let db = maria.create_database("bench");
    let started = Instant::now();
    let mut load = Command::new(client())
        .arg("--no-defaults")
        .arg(format!("--socket={}", maria.socket().display()))
        .arg("-uroot")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        load.stdin
            .take()
            .unwrap()
            .write_all(fixture_sql(&db).as_bytes())
            .unwrap();
    }
    assert!(load.wait().unwrap().success(), "creating the tables failed");
    eprintln!(
        "created {TABLES} tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let script = plugboard_plugin_mysql::introspect::catalog_sql(&db).join(";\n") + ";\n";
    let run_client = || {
        let started = Instant::now();
        let mut child = Command::new(client())
            .args(["--no-defaults", "-N", "-B", "-h", "127.0.0.1"])
            .arg(format!("-P{}", maria.port))
            .arg(format!("-u{TEST_USER}"))
            .arg(&db)
            .env("MYSQL_PWD", TEST_PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
        }
        assert!(child.wait().unwrap().success(), "the client failed");
        started.elapsed()
    };

    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "bench", "engine": "mysql", "host": "127.0.0.1", "port": maria.port,
            "database": db, "username": TEST_USER, "password": TEST_PASSWORD,
            "options": {"ssl_mode": "disabled"}
        }))
        .await;
    let path = format!("/api/v1/connections/{id}/schema?refresh=true");
    let c = compare_schema_reads(&server, &path, TABLES, 15, RUNS, run_client).await;
    println!("MariaDB introspection of {TABLES} tables x 15 columns, median of {RUNS} runs:");
    println!(
        "  plugboard (HTTP API, JSON):         {:8.1} ms  ({} bytes)",
        ms(c.plugboard),
        c.bytes
    );
    println!(
        "  mariadb client (same catalog SQL):  {:8.1} ms",
        ms(c.baseline)
    );
    println!("  ratio plugboard / client:           {:8.2}", c.ratio());

    server.stop().await;
    maria.stop();
}

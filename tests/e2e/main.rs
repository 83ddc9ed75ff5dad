//! End-to-end tests: a real Plugboard server on 127.0.0.1:0, spoken to over HTTP, in front
//! of a real PostgreSQL started by the test set-up. One binary, grouped by what each module
//! exercises.

mod api;
mod clickhouse;
mod conformance;
mod mariadb;
mod mongodb;
mod postgres;
mod queries;
mod registry_on_postgres;
mod secrets;
mod sqlite;
mod wasm_sandbox;

use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};
use serde_json::{Value, json};

/// A create body for database `db` on the shared test cluster.
pub fn pg_body(name: &str, db: &str) -> Value {
    let server = PgServer::shared();
    json!({
        "name": name,
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": server.port,
        "database": db,
        "username": TEST_USER,
        "password": TEST_PASSWORD,
        "options": {"sslmode": "disable"},
    })
}

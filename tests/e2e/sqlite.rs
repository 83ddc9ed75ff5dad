//! The SQLite plugin through the HTTP API: files confined to allowed directories, read-only
//! unless a connection opts in.

use plugboard::Settings;
use plugboard_tests::server::TestServer;
use serde_json::json;

/// A server allowing one directory, holding a database with one table.
async fn setup() -> (TestServer, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let file = allowed.join("app.db");
    std::fs::write(&file, b"").unwrap();
    let settings = Settings {
        sqlite_allowed_dirs: plugboard_plugin_sqlite::connect::allowed_dirs_from(
            allowed.to_str().unwrap(),
        ),
        ..Settings::new(dir.path().join("data"))
    };
    let server = TestServer::start_with(settings).await;
    let writer = server
        .create(json!({"name": "writer", "engine": "sqlite", "database": file, "options": {"writable": true}}))
        .await;
    for sql in [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, at DATETIME)",
        "INSERT INTO notes (body, at) VALUES ('héllo', '2024-02-29 12:00:00')",
    ] {
        let reply = server
            .post(
                &format!("/api/v1/connections/{writer}/query"),
                json!({"sql": sql}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    (server, dir, file.display().to_string())
}

#[tokio::test]
async fn connections_read_by_default_and_write_when_allowed() {
    let (server, _dir, file) = setup().await;
    let reader = server
        .create(json!({"name": "reader", "engine": "sqlite", "database": file}))
        .await;
    let query = format!("/api/v1/connections/{reader}/query");
    let reply = server
        .post(&query, json!({"sql": "SELECT id, body, at FROM notes"}))
        .await;
    assert_eq!(
        reply.body["rows"],
        json!([[1, "héllo", "2024-02-29 12:00:00"]]),
        "{}",
        reply.text
    );
    assert_eq!(reply.body["columns"][2]["common_type"], "timestamp");
    let reply = server
        .post(
            &query,
            json!({"sql": "INSERT INTO notes (body) VALUES ('x')"}),
        )
        .await;
    assert_eq!(reply.expect_error(400), "query");
    assert!(reply.text.contains("readonly"), "{}", reply.text);

    let counting = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000) SELECT x FROM n";
    let reply = server
        .post(&query, json!({"sql": counting, "limit": 10}))
        .await;
    assert_eq!(
        (
            reply.body["row_count"].as_u64(),
            reply.body["truncated"].as_bool()
        ),
        (Some(10), Some(true))
    );
    let reply = server
        .post(&query, json!({"sql": counting, "limit": 5000}))
        .await;
    assert_eq!(
        (
            reply.body["row_count"].as_u64(),
            reply.body["truncated"].as_bool()
        ),
        (Some(5000), Some(false))
    );
    let test = server
        .post(&format!("/api/v1/connections/{reader}/test"), json!({}))
        .await;
    assert_eq!(test.body["ok"], true, "{}", test.text);
    let schema = server
        .get(&format!("/api/v1/connections/{reader}/schema"))
        .await;
    assert_eq!(schema.body["schemas"][0]["name"], "main");
    assert_eq!(schema.body["schemas"][0]["tables"][0]["name"], "notes");
    server.stop().await;
}

#[tokio::test]
async fn files_outside_the_allowed_directories_are_refused() {
    let (server, dir, _file) = setup().await;
    let outside = dir.path().join("outside.db");
    std::fs::write(&outside, b"").unwrap();
    let escape = format!("{}/allowed/../outside.db", dir.path().display());
    for path in [outside.display().to_string(), escape] {
        let reply = server
            .post(
                "/api/v1/connections",
                json!({"name": "x", "engine": "sqlite", "database": path}),
            )
            .await;
        reply.expect_error(422);
        assert!(
            reply.text.contains("outside the directories allowed"),
            "{}",
            reply.text
        );
    }
    let reply = server
        .post(
            "/api/v1/connections",
            json!({"name": "x", "engine": "sqlite", "database": "/a.db", "host": "h"}),
        )
        .await;
    reply.expect_error(422);
    server.stop().await;

    // With no directory allowed, the error says how to allow one.
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/api/v1/connections",
            json!({"name": "x", "engine": "sqlite", "database": outside}),
        )
        .await;
    reply.expect_error(422);
    assert!(
        reply.text.contains("PLUGBOARD_SQLITE_ALLOWED_DIRS"),
        "{}",
        reply.text
    );
    server.stop().await;
}

//! The API's contract with no target database involved: shapes, validation, status codes,
//! and that nothing stored is lost or corrupted by bad input.

use plugboard_tests::server::TestServer;
use serde_json::json;

fn valid() -> serde_json::Value {
    json!({
        "name": "warehouse",
        "engine": "postgres",
        "host": "db.internal",
        "port": 5432,
        "database": "sales",
        "username": "analyst",
        "password": "pw",
        "options": {"sslmode": "require"},
        "notes": "nightly loads"
    })
}

#[tokio::test]
async fn health_reports_the_store() {
    let server = TestServer::start().await;
    let reply = server.get("/health").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(reply.body["store"]["status"], "ok");
    assert_eq!(reply.body["store"]["kind"], "sqlite");
    assert!(reply.body["version"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn connections_are_created_read_replaced_and_deleted() {
    let server = TestServer::start().await;
    let created = server.post("/api/v1/connections", valid()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["password_set"], true);
    assert!(created.body.get("password").is_none());
    assert_eq!(created.body["port"], 5432);
    assert_eq!(created.body["options"]["sslmode"], "require");
    assert_eq!(created.body["notes"], "nightly loads");

    let list = server.get("/api/v1/connections").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["id"], id.as_str());

    let path = format!("/api/v1/connections/{id}");
    let read = server.get(&path).await;
    assert_eq!(read.body, created.body);

    // Replace without a password keeps the stored one.
    let mut body = valid();
    body.as_object_mut().unwrap().remove("password");
    body["port"] = json!(6432);
    let replaced = server.put(&path, body.clone()).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["port"], 6432);
    assert_eq!(replaced.body["password_set"], true);
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);

    // `"password": null` removes it.
    body["password"] = json!(null);
    let cleared = server.put(&path, body).await;
    assert_eq!(cleared.body["password_set"], false);

    let deleted = server.delete(&path).await;
    assert_eq!(deleted.status, 204);
    server.get(&path).await.expect_error(404);
    server.delete(&path).await.expect_error(404);
    server.stop().await;
}

#[tokio::test]
async fn a_url_can_stand_for_the_fields() {
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/api/v1/connections",
            json!({"name": "by-url", "url": "postgresql://app:s3cr%40t@db.internal:6543/orders?sslmode=require"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["engine"], "postgres");
    assert_eq!(reply.body["host"], "db.internal");
    assert_eq!(reply.body["port"], 6543);
    assert_eq!(reply.body["database"], "orders");
    assert_eq!(reply.body["username"], "app");
    assert_eq!(reply.body["password_set"], true);
    assert_eq!(reply.body["options"]["sslmode"], "require");
    assert!(!reply.text.contains("s3cr"));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let server = TestServer::start().await;
    let id = server.create(valid()).await;
    let before = server.get("/api/v1/connections").await.body;
    let conns = "/api/v1/connections";

    // Malformed JSON.
    let reply = server
        .client
        .post(server.url(conns))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let reply = plugboard_tests::server::Reply::from(reply).await;
    assert_eq!(reply.expect_error(400), "malformed_json");

    // Not JSON at all.
    let reply = server
        .client
        .post(server.url(conns))
        .body("name=x")
        .send()
        .await
        .unwrap();
    let reply = plugboard_tests::server::Reply::from(reply).await;
    assert_eq!(reply.expect_error(415), "unsupported_media_type");

    // Missing, empty, too long, out of range, unknown.
    let mut body = valid();
    body.as_object_mut().unwrap().remove("name");
    assert_eq!(
        server.post(conns, body).await.expect_error(422),
        "validation"
    );
    let mut body = valid();
    body["name"] = json!("   ");
    let reply = server.post(conns, body).await;
    reply.expect_error(422);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name is required")
    );
    let mut body = valid();
    body["name"] = json!("x".repeat(101));
    let reply = server.post(conns, body).await;
    reply.expect_error(422);
    assert!(reply.text.contains("at most 100 characters"));
    for port in [json!(0), json!(65536), json!(-1), json!("5432x")] {
        let mut body = valid();
        body["port"] = port;
        let reply = server.post(conns, body).await;
        reply.expect_error(422);
        assert!(
            reply
                .text
                .contains("port must be an integer from 1 to 65535"),
            "{}",
            reply.text
        );
    }
    let mut body = valid();
    body["engine"] = json!("oracle");
    let reply = server.post(conns, body).await;
    reply.expect_error(422);
    assert!(
        reply.text.contains("unknown engine `oracle`") && reply.text.contains("postgres"),
        "{}",
        reply.text
    );

    // A field of the wrong type, and a misspelt field.
    let mut body = valid();
    body["host"] = json!(42);
    assert_eq!(
        server.post(conns, body).await.expect_error(422),
        "validation"
    );
    let mut body = valid();
    body["pasword"] = json!("x");
    let reply = server.post(conns, body).await;
    reply.expect_error(422);
    assert!(reply.text.contains("pasword"));

    // An option the engine rejects.
    let mut body = valid();
    body["options"] = json!({"sslmode": "sometimes"});
    let reply = server.post(conns, body).await;
    reply.expect_error(422);
    assert!(reply.text.contains("sslmode"));
    let mut body = valid();
    body["options"] = json!({"pool": {"max_size": 0}});
    server.post(conns, body).await.expect_error(422);

    // Duplicate name.
    let reply = server.post(conns, valid()).await;
    assert_eq!(reply.expect_error(409), "conflict");

    // A body over the limit.
    let mut body = valid();
    body["notes"] = json!("n".repeat(2 * 1024 * 1024));
    assert_eq!(
        server.post(conns, body).await.expect_error(413),
        "body_too_large"
    );

    // Unknown ids, paths and methods.
    for (method, path) in [
        (
            "GET",
            "/api/v1/connections/00000000-0000-0000-0000-000000000000",
        ),
        ("PUT", "/api/v1/connections/nope"),
        ("DELETE", "/api/v1/connections/nope"),
        ("POST", "/api/v1/connections/nope/test"),
        ("GET", "/api/v1/connections/nope/databases"),
        ("GET", "/api/v1/connections/nope/schema"),
        ("POST", "/api/v1/connections/nope/query"),
    ] {
        let body = match method {
            "PUT" => Some(valid()),
            "POST" if path.ends_with("query") => Some(json!({"sql": "select 1"})),
            _ => None,
        };
        let reply = server.call(method, path, body).await;
        assert_eq!(reply.expect_error(404), "not_found", "{method} {path}");
    }
    assert_eq!(
        server.get("/api/v1/nothing-here").await.expect_error(404),
        "not_found"
    );
    assert_eq!(
        server.delete("/api/v1/connections").await.expect_error(405),
        "method_not_allowed"
    );

    // Bad query bodies on an existing connection.
    let query = format!("{conns}/{id}/query");
    server
        .post(&query, json!({"sql": ""}))
        .await
        .expect_error(422);
    server
        .post(&query, json!({"sql": "select 1", "limit": 0}))
        .await
        .expect_error(422);
    server
        .post(&query, json!({"sql": "select 1", "timeout_ms": 0}))
        .await
        .expect_error(422);
    server
        .post(&query, json!({"sq": "select 1"}))
        .await
        .expect_error(422);
    let schema = format!("{conns}/{id}/schema?refresh=maybe");
    assert_eq!(
        server.get(&schema).await.expect_error(400),
        "bad_query_string"
    );

    // A PUT that fails validation leaves the stored connection as it was.
    let mut body = valid();
    body["port"] = json!(0);
    server
        .put(&format!("{conns}/{id}"), body)
        .await
        .expect_error(422);

    assert_eq!(
        server.get(conns).await.body,
        before,
        "bad input changed what is stored"
    );
    server.stop().await;
}

#[tokio::test]
async fn plugins_are_listed_with_their_fields() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/plugins").await;
    assert_eq!(reply.status, 200);
    let plugins = reply.body["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mongodb", "mssql", "mysql", "postgres", "sqlite"]);
    let pg = plugins
        .iter()
        .find(|p| p["name"] == "postgres")
        .expect("postgres plugin");
    assert_eq!(pg["kind"], "native");
    assert_eq!(pg["status"], "loaded");
    assert_eq!(pg["engines"], json!(["postgres"]));
    let fields = pg["config_fields"].as_array().unwrap();
    let port = fields.iter().find(|f| f["name"] == "port").unwrap();
    assert_eq!(port["default"], "5432");
    let password = fields.iter().find(|f| f["name"] == "password").unwrap();
    assert_eq!(password["secret"], true);
    server.stop().await;
}

#[tokio::test]
async fn stored_connections_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = plugboard::Settings::new(dir.path().join("data"));
    let server = TestServer::start_with(settings.clone()).await;
    let id = server.create(valid()).await;
    server.stop().await;
    let server = TestServer::start_with(settings).await;
    let reply = server.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["name"], "warehouse");
    assert_eq!(reply.body["password_set"], true);
    server.stop().await;
}

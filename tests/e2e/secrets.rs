//! Secrets never leave the registry in clear: not in a response, not in a log line, not in
//! an error message, not in the store's files. Each test uses passwords no other test uses,
//! then searches everything it saw for them.

use plugboard_tests::postgres::PgServer;
use plugboard_tests::server::{TestServer, logs};
use serde_json::json;

use crate::pg_body;

#[tokio::test]
async fn passwords_appear_in_no_response_log_or_stored_file() {
    let pg = PgServer::shared();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let good = format!("good-pw-{tag}");
    let wrong = format!("wrong-pw-{tag}");
    let later = format!("later-pw-{tag}");
    let role = format!("secret_{tag}");
    pg.admin(&format!("CREATE ROLE {role} LOGIN PASSWORD '{good}'"));
    let db = pg.create_database("secrets");

    let server = TestServer::start().await;
    let mut replies = Vec::new();
    let mut body = pg_body("by fields", &db);
    body["username"] = json!(role);
    body["password"] = json!(good);

    // Every path a password passes through.
    let created = server.post("/api/v1/connections", body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["password_set"], true);
    let conn = format!(
        "/api/v1/connections/{}",
        created.body["id"].as_str().unwrap()
    );
    replies.push(created);
    let url = format!(
        "postgresql://{role}:{good}@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port
    );
    replies.push(
        server
            .post("/api/v1/connections", json!({"name": "by url", "url": url}))
            .await,
    );
    replies.push(server.post("/api/v1/connections/test", body.clone()).await);
    let tested = server.post(&format!("{conn}/test"), json!({})).await;
    assert_eq!(tested.body["ok"], true, "{}", tested.text);
    replies.push(tested);
    let mut wrong_body = body.clone();
    wrong_body["password"] = json!(wrong);
    let failed = server
        .post("/api/v1/connections/test", wrong_body.clone())
        .await;
    assert_eq!(
        failed.body["error"]["code"], "authentication",
        "{}",
        failed.text
    );
    replies.push(failed);
    wrong_body["password"] = json!(12345);
    replies.push(server.post("/api/v1/connections", wrong_body.clone()).await);
    replies.push(server.get(&conn).await);
    replies.push(server.get("/api/v1/connections").await);
    replies.push(server.get(&format!("{conn}/schema?refresh=true")).await);
    replies.push(
        server
            .post(
                &format!("{conn}/query"),
                json!({"sql": "SELECT current_user"}),
            )
            .await,
    );
    replies.push(
        server
            .post(&format!("{conn}/query"), json!({"sql": "SELEC oops"}))
            .await,
    );
    // A query whose text holds a secret is not logged either.
    replies.push(
        server
            .post(
                &format!("{conn}/query"),
                json!({"sql": format!("SELECT '{later}' <> '' AS ok")}),
            )
            .await,
    );
    let mut replaced = body.clone();
    replaced["password"] = json!(later);
    replies.push(server.put(&conn, replaced).await);
    replies.push(server.post(&format!("{conn}/test"), json!({})).await);

    for reply in &replies {
        for secret in [&good, &wrong, &later] {
            assert!(
                !reply.text.contains(secret.as_str()),
                "a response holds a password: {}",
                reply.text
            );
        }
        assert!(
            !reply.text.contains("12345"),
            "a response quotes a bad password: {}",
            reply.text
        );
    }
    let log = logs();
    assert!(
        log.contains(&tag) || log.contains("connection registered"),
        "the log was not captured"
    );
    for secret in [&good, &wrong, &later] {
        assert!(!log.contains(secret.as_str()), "the log holds a password");
    }
    let files = server.data_files();
    let key = files
        .iter()
        .find(|(p, _)| p.ends_with("encryption.key"))
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).trim().to_owned())
        .expect("the key file was created");
    assert!(!log.contains(&key), "the log holds the encryption key");
    let registry = files
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("registry.db"));
    let mut registry_bytes = Vec::new();
    for (_, bytes) in registry {
        registry_bytes.extend_from_slice(bytes);
    }
    assert!(
        registry_bytes.windows(6).any(|w| w == b"by url"),
        "the search did not look where connections are stored"
    );
    for (path, bytes) in &files {
        for secret in [&good, &wrong, &later] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a password in clear",
                path.display()
            );
        }
    }
    server.stop().await;
}

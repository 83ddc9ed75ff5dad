//! The registry on PostgreSQL (`PLUGBOARD_DATABASE_URL`): replicas share one state and one
//! key; a replica without the key says so instead of misbehaving.

use base64::Engine as _;
use plugboard::Settings;
use plugboard_tests::postgres::PgServer;
use plugboard_tests::server::TestServer;
use serde_json::json;

use crate::pg_body;

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn replica(url: &str, key: String, dir: &tempfile::TempDir, name: &str) -> Settings {
    Settings {
        database_url: Some(url.to_owned()),
        encryption_key: Some(key),
        ..Settings::new(dir.path().join(name))
    }
}

#[tokio::test]
async fn replicas_share_connections_through_a_postgres_store() {
    let pg = PgServer::shared();
    let store_db = pg.create_database("registry");
    let target_db = pg.create_database("target");
    let url = pg.url(&store_db);
    let dir = tempfile::tempdir().unwrap();

    let a = TestServer::start_with(replica(&url, key(1), &dir, "a")).await;
    let b = TestServer::start_with(replica(&url, key(1), &dir, "b")).await;
    let health = a.get("/health").await;
    assert_eq!(health.body["store"]["kind"], "postgres", "{}", health.text);

    let id = a.create(pg_body("shared", &target_db)).await;
    let seen = b.get(&format!("/api/v1/connections/{id}")).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert_eq!(seen.body["name"], "shared");
    // B decrypts what A sealed, and reaches the target with it.
    let tested = b
        .post(&format!("/api/v1/connections/{id}/test"), json!({}))
        .await;
    assert_eq!(tested.body["ok"], true, "{}", tested.text);
    // Names are unique across replicas.
    b.post("/api/v1/connections", pg_body("shared", &target_db))
        .await
        .expect_error(409);
    // A schema snapshot taken through one replica is served by the other.
    let live = a
        .get(&format!("/api/v1/connections/{id}/schema?refresh=true"))
        .await;
    assert_eq!(live.body["source"], "live", "{}", live.text);
    let cached = b.get(&format!("/api/v1/connections/{id}/schema")).await;
    assert_eq!(cached.body["source"], "cache");
    assert_eq!(cached.body["fetched_at"], live.body["fetched_at"]);

    // A replica started with another key cannot decrypt, and says so.
    let c = TestServer::start_with(replica(&url, key(2), &dir, "c")).await;
    let reply = c
        .post(&format!("/api/v1/connections/{id}/test"), json!({}))
        .await;
    assert_eq!(reply.expect_error(500), "secret_unavailable");
    assert!(
        reply.text.contains("PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS"),
        "{}",
        reply.text
    );

    // Deleting on one replica deletes for all.
    assert_eq!(
        b.delete(&format!("/api/v1/connections/{id}")).await.status,
        204
    );
    a.get(&format!("/api/v1/connections/{id}"))
        .await
        .expect_error(404);
    for server in [a, b, c] {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_postgres_store_needs_an_explicit_key() {
    let pg = PgServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_url: Some(pg.url("postgres")),
        ..Settings::new(dir.path().join("data"))
    };
    let err = plugboard::start(&settings)
        .await
        .err()
        .expect("refused without a key");
    assert!(
        err.to_string().contains("PLUGBOARD_ENCRYPTION_KEY"),
        "{err}"
    );
}

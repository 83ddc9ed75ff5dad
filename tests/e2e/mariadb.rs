//! The MySQL/MariaDB plugin through the HTTP API, against a real MariaDB.

use plugboard_tests::mariadb::{MariaServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

#[tokio::test]
async fn values_keep_their_precision_and_meaning() {
    let maria = MariaServer::shared();
    let db = maria.create_database("types");
    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "maria", "engine": "mysql", "host": "127.0.0.1", "port": maria.port,
            "database": db, "username": TEST_USER, "password": TEST_PASSWORD,
            "options": {"ssl_mode": "disabled"}
        }))
        .await;
    let test = server
        .post(&format!("/api/v1/connections/{id}/test"), json!({}))
        .await;
    assert_eq!(test.body["ok"], true, "{}", test.text);
    assert!(
        test.body["server_version"]
            .as_str()
            .unwrap()
            .contains("MariaDB")
    );

    let query = format!("/api/v1/connections/{id}/query");
    let sql = "SELECT CAST(-1 AS SIGNED) AS i, 18446744073709551615 AS u, \
        CAST('12345678901234567890.123456789' AS DECIMAL(40, 9)) AS d, \
        CAST('2024-02-29 13:45:30.123456' AS DATETIME(6)) AS dt, CAST('2024-02-29' AS DATE) AS dd, \
        CAST('-26:03:04' AS TIME) AS t, 1.5e0 AS f, _binary 'ab' AS b, 'héllo ✓' AS s, \
        CAST(NULL AS CHAR) AS n, ? AS p";
    let reply = server
        .post(&query, json!({"sql": sql, "params": ["x"]}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["rows"][0],
        json!([
            -1,
            18446744073709551615u64,
            "12345678901234567890.123456789",
            "2024-02-29T13:45:30.123456",
            "2024-02-29",
            "-26:03:04",
            1.5,
            "YWI=",
            "héllo ✓",
            null,
            "x"
        ])
    );
    assert!(reply.body.get("rows_affected").is_none(), "{}", reply.text);
    let reply = server
        .post(&query, json!({"sql": "CREATE TABLE t (x INT)"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server
        .post(&query, json!({"sql": "INSERT INTO t VALUES (1), (2), (3)"}))
        .await;
    assert_eq!(reply.body["rows_affected"], 3, "{}", reply.text);
    let reply = server
        .post(
            &query,
            json!({"sql": "SELECT seq FROM seq_1_to_5000", "limit": 10}),
        )
        .await;
    assert_eq!(reply.body["row_count"], 10, "{}", reply.text);
    assert_eq!(reply.body["truncated"], true);
    let reply = server.post(&query, json!({"sql": "SELEC 1"})).await;
    assert_eq!(reply.expect_error(400), "query");
    assert_eq!(reply.body["error"]["engine_code"], "1064");
    let reply = server
        .post(&query, json!({"sql": "SELECT SLEEP(5)", "timeout_ms": 300}))
        .await;
    assert_eq!(reply.expect_error(504), "timeout");
    server.stop().await;
}

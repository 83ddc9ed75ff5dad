//! Queries at scale through the HTTP API, against a real PostgreSQL and MariaDB: streaming
//! formats, cancellation (by id, by disconnect, by deadline), transactions, read-only
//! connections, history, pools (exhaustion, a target restart), health and metrics.

use std::time::{Duration, Instant};

use plugboard_tests::mariadb::{self, MariaServer};
use plugboard_tests::postgres::{self, PgServer};
use plugboard_tests::server::{Reply, TestServer};
use serde_json::{Value, json};

/// The two engines every behaviour here is checked on.
#[derive(Debug, Clone, Copy)]
enum Engine {
    Postgres,
    Mariadb,
}

use Engine::{Mariadb, Postgres};

impl Engine {
    /// A fresh database on the shared server, and a create body for it with `options`.
    fn connection(self, name: &str, options: Value) -> (Value, String) {
        let (db, mut body) = match self {
            Postgres => {
                let pg = PgServer::shared();
                let db = pg.create_database(name);
                let body = json!({
                    "name": name, "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
                    "database": db, "username": postgres::TEST_USER,
                    "password": postgres::TEST_PASSWORD,
                    "options": {"sslmode": "disable"},
                });
                (db, body)
            }
            Mariadb => {
                let maria = MariaServer::shared();
                let db = maria.create_database(name);
                let body = json!({
                    "name": name, "engine": "mysql", "host": "127.0.0.1", "port": maria.port,
                    "database": db, "username": mariadb::TEST_USER,
                    "password": mariadb::TEST_PASSWORD,
                    "options": {"ssl_mode": "disabled"},
                });
                (db, body)
            }
        };
        for (k, v) in options.as_object().unwrap() {
            body["options"][k] = v.clone();
        }
        (body, db)
    }

    fn sleep(self, seconds: u32) -> String {
        match self {
            Postgres => format!("SELECT pg_sleep({seconds})"),
            Mariadb => format!("SELECT SLEEP({seconds})"),
        }
    }

    /// How many statements sleeping are running in database `db` now.
    fn sleeping(self, db: &str) -> usize {
        let count = match self {
            Postgres => PgServer::shared().admin(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' \
                 AND state = 'active' AND datname = '{db}'"
            )),
            Mariadb => MariaServer::shared().admin(&format!(
                "SELECT count(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'SELECT SLEEP%' AND DB = '{db}'"
            )),
        };
        count.trim().parse().unwrap()
    }

    /// The engine's code for a write refused on a read-only connection.
    fn read_only_code(self) -> &'static str {
        match self {
            Postgres => "25006",
            Mariadb => "1792",
        }
    }

    fn series(self, rows: u32) -> String {
        match self {
            Postgres => format!(
                "SELECT g AS id, g::int4 AS n, g * 0.5::float8 AS f, 'row ' || g AS label, \
                 (g / 3.0)::numeric(20,6) AS amount, \
                 timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS at, \
                 g % 2 = 0 AS even FROM generate_series(1, {rows}) AS g"
            ),
            Mariadb => format!(
                "SELECT seq AS id, CAST(seq AS SIGNED) AS n, seq * 0.5e0 AS f, \
                 CONCAT('row ', seq) AS label, CAST(seq / 3 AS DECIMAL(20,6)) AS amount, \
                 TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND AS at, \
                 seq % 2 = 0 AS even FROM seq_1_to_{rows}"
            ),
        }
    }
}

/// A server with one connection; returns the server, the connection's id and database.
async fn setup(engine: Engine, name: &str, options: Value) -> (TestServer, String, String) {
    let (body, db) = engine.connection(name, options);
    let server = TestServer::start().await;
    let id = server.create(body).await;
    (server, id, db)
}

async fn query(server: &TestServer, id: &str, body: Value) -> Reply {
    server
        .post(&format!("/api/v1/connections/{id}/query"), body)
        .await
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn eventually(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {within:?}: {what}");
}

/// Waits until the server lists exactly one running query, and returns its id.
async fn running_query(server: &TestServer) -> String {
    let mut id = String::new();
    eventually(
        Duration::from_secs(10),
        "the query is listed as running",
        async || {
            let list = server.get("/api/v1/queries/running").await;
            match list.body["queries"].as_array().map(Vec::as_slice) {
                Some([q]) => {
                    id = q["id"].as_str().unwrap().to_owned();
                    true
                }
                _ => false,
            }
        },
    )
    .await;
    id
}

async fn streamed(server: &TestServer, id: &str, format: &str, sql: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(&format!("/api/v1/connections/{id}/query?format={format}")))
        .json(&json!({"sql": sql, "timeout_ms": 600_000}))
        .send()
        .await
        .unwrap()
}

async fn streams_every_format(engine: Engine, rows: u32) {
    let (server, id, _) = setup(engine, "stream", json!({})).await;
    let sql = engine.series(rows);

    let response = streamed(&server, &id, "ndjson", &sql).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers().contains_key("x-query-id"));
    let body = response.text().await.unwrap();
    let mut lines = body.lines();
    let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(first["id"], 1);
    assert_eq!(first["label"], "row 1");
    assert_eq!(first["amount"], "0.333333");
    assert_eq!(lines.count() + 1, rows as usize);

    let response = streamed(&server, &id, "csv", &sql).await;
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let mut lines = body.lines();
    assert_eq!(lines.next().unwrap(), "id,n,f,label,amount,at,even");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("1,1,0.5,row 1,0.333333,2024-01-01")
    );
    assert_eq!(lines.count() + 1, rows as usize);

    let response = streamed(&server, &id, "arrow", &sql).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = response.bytes().await.unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
    let schema = reader.schema();
    let mut total = 0;
    for batch in reader {
        total += batch.unwrap().num_rows();
    }
    assert_eq!(total, rows as usize);
    assert_eq!(schema.field(0).data_type(), &arrow_schema::DataType::Int64);
    assert_eq!(schema.field(3).data_type(), &arrow_schema::DataType::Utf8);
    assert!(matches!(
        schema.field(5).data_type(),
        arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _)
    ));

    // A streamed query can be bounded too; an Accept header chooses the format.
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/connections/{id}/query")))
        .header("accept", "text/csv")
        .json(&json!({"sql": sql, "limit": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap().lines().count(), 11);

    // An error met at once is a status, not a broken stream; bad formats are refused.
    let response = streamed(&server, &id, "ndjson", "SELECT * FROM no_such_table").await;
    let reply = Reply::from(response).await;
    assert_eq!(reply.expect_error(400), "query");
    let reply = Reply::from(streamed(&server, &id, "xml", "SELECT 1").await).await;
    assert_eq!(reply.expect_error(400), "bad_query_string");
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/connections/{id}/query")))
        .header("accept", "text/html")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        Reply::from(response).await.expect_error(406),
        "not_acceptable"
    );
    server.stop().await;
}

#[tokio::test]
async fn postgres_streams_a_million_rows_in_every_format() {
    streams_every_format(Postgres, 1_000_000).await;
}

#[tokio::test]
async fn mariadb_streams_in_every_format() {
    streams_every_format(Mariadb, 100_000).await;
}

async fn cancels_on_the_server(engine: Engine) {
    let (server, id, db) = setup(engine, "cancel", json!({})).await;
    let path = format!("/api/v1/connections/{id}/query");

    // By id: the request answers `cancelled` and the statement is gone from the server.
    let request = {
        let url = server.url(&path);
        let sql = engine.sleep(30);
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"sql": sql}))
                .send()
                .await
                .unwrap();
            Reply::from(response).await
        })
    };
    let query_id = running_query(&server).await;
    assert_eq!(engine.sleeping(&db), 1, "the sleep runs on the server");
    let started = Instant::now();
    let reply = server.delete(&format!("/api/v1/queries/{query_id}")).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let reply = request.await.unwrap();
    assert_eq!(reply.expect_error(409), "cancelled");
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually(
        Duration::from_secs(5),
        "the cancelled sleep stops on the server",
        async || engine.sleeping(&db) == 0,
    )
    .await;
    let reply = server.delete(&format!("/api/v1/queries/{query_id}")).await;
    assert_eq!(reply.expect_error(404), "not_found");

    // By disconnecting: the client goes away mid-query.
    let request = {
        let url = server.url(&path);
        let sql = engine.sleep(30);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"sql": sql}))
                .send()
                .await
        })
    };
    running_query(&server).await;
    request.abort();
    eventually(
        Duration::from_secs(5),
        "a disconnected client's query stops",
        async || {
            engine.sleeping(&db) == 0
                && server.get("/api/v1/queries/running").await.body["queries"] == json!([])
        },
    )
    .await;

    // By deadline.
    let started = Instant::now();
    let reply = query(
        &server,
        &id,
        json!({"sql": engine.sleep(30), "timeout_ms": 500}),
    )
    .await;
    assert_eq!(reply.expect_error(504), "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually(
        Duration::from_secs(5),
        "the timed-out sleep stops",
        async || engine.sleeping(&db) == 0,
    )
    .await;

    // The connection still serves, and the history has all three.
    let reply = query(&server, &id, json!({"sql": "SELECT 1 AS one"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let history = server
        .get(&format!("/api/v1/queries?connection_id={id}"))
        .await;
    let statuses: Vec<&str> = history.body["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ok", "timeout", "cancelled", "cancelled"],
        "{}",
        history.text
    );
    server.stop().await;
}

#[tokio::test]
async fn postgres_queries_are_cancelled_on_the_server() {
    cancels_on_the_server(Postgres).await;
}

#[tokio::test]
async fn mariadb_queries_are_cancelled_on_the_server() {
    cancels_on_the_server(Mariadb).await;
}

async fn transactions_are_all_or_nothing(engine: Engine) {
    let (server, id, _) = setup(engine, "tx", json!({})).await;
    let path = format!("/api/v1/connections/{id}/transaction");
    let create = query(
        &server,
        &id,
        json!({"sql": "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)"}),
    )
    .await;
    assert_eq!(create.status, 200, "{}", create.text);
    let placeholder = |n: usize| match engine {
        Postgres => format!("${n}"),
        Mariadb => "?".to_owned(),
    };
    let insert = format!(
        "INSERT INTO accounts (id, balance) VALUES ({}, {})",
        placeholder(1),
        placeholder(2)
    );

    let reply = server
        .post(
            &path,
            json!({"statements": [
                {"sql": insert, "params": [1, 100]},
                {"sql": insert, "params": [2, 50]},
                {"sql": "SELECT count(*) AS n, sum(balance) AS total FROM accounts"},
            ]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["committed"], true);
    let statements = reply.body["statements"].as_array().unwrap();
    assert_eq!(statements[0]["rows_affected"], 1);
    assert_eq!(statements[2]["rows"][0][0], 2);

    // The third statement fails: the first two are rolled back, and the error names it.
    let reply = server
        .post(
            &path,
            json!({"statements": [
                {"sql": insert, "params": [3, 10]},
                {"sql": "UPDATE accounts SET balance = balance - 10 WHERE id = 1"},
                {"sql": insert, "params": [1, 0]},
            ]}),
        )
        .await;
    assert_eq!(reply.expect_error(400), "query");
    assert_eq!(reply.body["error"]["statement"], 2, "{}", reply.text);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("statement 3 failed"),
        "{}",
        reply.text
    );
    let after = query(
        &server,
        &id,
        json!({"sql": "SELECT count(*), sum(balance) FROM accounts"}),
    )
    .await;
    assert_eq!(after.body["rows"][0][0], 2, "{}", after.text);
    assert_eq!(
        after.body["rows"][0][1].to_string().trim_matches('"'),
        "150"
    );

    // Bad input is refused before anything runs.
    let reply = server.post(&path, json!({"statements": []})).await;
    assert_eq!(reply.expect_error(422), "validation");
    let reply = server
        .post(&path, json!({"statements": [{"sql": " "}]}))
        .await;
    assert!(reply.text.contains("statements[0]"), "{}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn postgres_transactions_are_all_or_nothing() {
    transactions_are_all_or_nothing(Postgres).await;
}

#[tokio::test]
async fn mariadb_transactions_are_all_or_nothing() {
    transactions_are_all_or_nothing(Mariadb).await;
}

async fn read_only_is_enforced_by_the_engine(engine: Engine) {
    let (body, _) = engine.connection("ro", json!({}));
    let server = TestServer::start().await;
    let writer = server.create(body.clone()).await;
    let reply = query(&server, &writer, json!({"sql": "CREATE TABLE t (id INT)"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut ro_body = body;
    ro_body["name"] = json!("ro-reader");
    ro_body["options"]["read_only"] = json!(true);
    let reader = server.create(ro_body).await;

    let reply = query(&server, &reader, json!({"sql": "SELECT count(*) FROM t"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for write in [
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE u (id INT)",
        "DELETE FROM t",
    ] {
        let reply = query(&server, &reader, json!({"sql": write})).await;
        assert_eq!(reply.expect_error(400), "query", "{write}");
        assert_eq!(
            reply.body["error"]["engine_code"],
            engine.read_only_code(),
            "{write}: {}",
            reply.text
        );
    }
    // Turning it off from a query does not carry over to the next one.
    let escape = match engine {
        Postgres => "SET default_transaction_read_only = off",
        Mariadb => "SET SESSION TRANSACTION READ WRITE",
    };
    let _ = query(&server, &reader, json!({"sql": escape})).await;
    let reply = query(&server, &reader, json!({"sql": "INSERT INTO t VALUES (2)"})).await;
    assert_eq!(reply.expect_error(400), "query", "{}", reply.text);
    let reply = server
        .post(
            &format!("/api/v1/connections/{reader}/transaction"),
            json!({"statements": [{"sql": "INSERT INTO t VALUES (3)"}]}),
        )
        .await;
    assert_eq!(reply.expect_error(400), "query");

    let count = query(&server, &writer, json!({"sql": "SELECT count(*) FROM t"})).await;
    assert_eq!(
        count.body["rows"][0][0], 0,
        "nothing was written: {}",
        count.text
    );
    server.stop().await;
}

#[tokio::test]
async fn postgres_read_only_connections_refuse_writes() {
    read_only_is_enforced_by_the_engine(Postgres).await;
}

#[tokio::test]
async fn mariadb_read_only_connections_refuse_writes() {
    read_only_is_enforced_by_the_engine(Mariadb).await;
}

#[tokio::test]
async fn engines_that_cannot_enforce_read_only_refuse_the_option() {
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/api/v1/connections",
            json!({"name": "m", "engine": "mongodb", "host": "127.0.0.1",
                   "options": {"read_only": true}}),
        )
        .await;
    assert_eq!(reply.expect_error(422), "validation");
    assert!(reply.text.contains("read_only"), "{}", reply.text);
    server.stop().await;
}

async fn an_exhausted_pool_answers_503(engine: Engine) {
    let (server, id, _) = setup(
        engine,
        "pool",
        json!({"pool": {"max_size": 1, "acquire_timeout_ms": 300}}),
    )
    .await;
    let pool = server.get(&format!("/api/v1/connections/{id}/pool")).await;
    assert_eq!(pool.status, 200, "{}", pool.text);
    assert_eq!(pool.body["session_open"], false);

    let busy = {
        let url = server.url(&format!("/api/v1/connections/{id}/query"));
        let sql = engine.sleep(2);
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"sql": sql}))
                .send()
                .await
                .unwrap();
            Reply::from(response).await
        })
    };
    running_query(&server).await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/connections/{id}/query")))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let reply = Reply::from(response).await;
    assert_eq!(reply.expect_error(503), "pool_exhausted");
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");

    let pool = server.get(&format!("/api/v1/connections/{id}/pool")).await;
    let status = &pool.body["pool"];
    assert_eq!(status["max_size"], 1, "{}", pool.text);
    assert_eq!(status["in_use"], 1, "{}", pool.text);
    assert_eq!(status["timeouts"], 1, "{}", pool.text);
    assert!(status["acquire_ms"]["p50"].is_number());

    assert_eq!(busy.await.unwrap().status, 200);
    let reply = query(&server, &id, json!({"sql": "SELECT 1"})).await;
    assert_eq!(reply.status, 200, "the pool serves again: {}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn postgres_pool_exhaustion_is_503_with_retry_after() {
    an_exhausted_pool_answers_503(Postgres).await;
}

#[tokio::test]
async fn mariadb_pool_exhaustion_is_503_with_retry_after() {
    an_exhausted_pool_answers_503(Mariadb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_recovers_when_postgres_restarts_under_load() {
    let mut pg = PgServer::start();
    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "restart", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "database": "postgres", "username": postgres::TEST_USER,
            "password": postgres::TEST_PASSWORD,
            "options": {"sslmode": "disable", "pool": {"max_size": 4, "acquire_timeout_ms": 2000}},
        }))
        .await;
    let stop = stop_flag();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (
            server.url(&format!("/api/v1/connections/{id}/query")),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .json(&json!({"sql": "SELECT count(*) FROM pg_class"}))
                    .send()
                    .await
                    .unwrap();
                statuses.push((response.status().as_u16(), started.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The load keeps running on the other worker while these block.
    tokio::task::block_in_place(|| pg.halt());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| pg.resume());
    // Recovery: once the server is back, every request succeeds again, by itself.
    eventually(
        Duration::from_secs(10),
        "queries succeed after the restart",
        async || query(&server, &id, json!({"sql": "SELECT 1"})).await.status == 200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all = Vec::new();
    for task in load {
        all.extend(task.await.unwrap());
    }
    let failures = all.iter().filter(|(s, _)| *s != 200).count();
    assert!(failures > 0, "the restart was felt: {all:?}");
    assert!(
        all.iter().all(|(s, _)| [200, 502, 503].contains(s)),
        "failures are clear: {all:?}"
    );
    assert!(
        all.iter().all(|(_, t)| *t < Duration::from_secs(5)),
        "nothing hangs: {all:?}"
    );
    let tail = &all[all.len().saturating_sub(8)..];
    assert!(tail.iter().all(|(s, _)| *s == 200), "recovered: {all:?}");
    server.stop().await;
    pg.stop();
}

fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test]
async fn history_records_queries_with_filters_paging_and_retention() {
    let (body, _) = Postgres.connection("history", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let settings = plugboard::Settings::new(dir.path().join("data"));
    let server = TestServer::start_with(settings.clone()).await;
    let id = server.create(body).await;
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api/v1/connections/{id}/query"));
    for sql in ["SELECT 1", "SELECT 2", "SELECT * FROM missing", "SELECT 1"] {
        client
            .post(&url)
            .header("x-plugboard-user", "ana")
            .json(&json!({"sql": sql}))
            .send()
            .await
            .unwrap();
    }
    let all = server
        .get(&format!("/api/v1/queries?connection_id={id}"))
        .await;
    let queries = all.body["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 4, "{}", all.text);
    let failed = &queries[1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_code"], "query");
    assert_eq!(failed["who"], "ana");
    assert_eq!(failed["engine"], "postgres");
    assert!(failed["duration_ms"].as_f64().unwrap() > 0.0);
    // By default only the SQL's hash is kept; the same text hashes the same.
    assert!(failed.get("sql").is_none_or(Value::is_null), "{}", all.text);
    assert_eq!(queries[0]["sql_hash"], queries[3]["sql_hash"]);
    assert_ne!(queries[0]["sql_hash"], queries[2]["sql_hash"]);
    assert_eq!(queries[0]["row_count"], 1);

    let only_failed = server.get("/api/v1/queries?status=failed").await;
    assert_eq!(only_failed.body["queries"].as_array().unwrap().len(), 1);
    let page = server.get("/api/v1/queries?limit=3").await;
    assert_eq!(page.body["queries"].as_array().unwrap().len(), 3);
    assert_eq!(page.body["next_offset"], 3);
    let rest = server.get("/api/v1/queries?limit=3&offset=3").await;
    assert_eq!(rest.body["queries"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["next_offset"], Value::Null);
    let future = server
        .get("/api/v1/queries?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future.body["queries"], json!([]));
    for bad in [
        "status=weird",
        "limit=0",
        "since=yesterday",
        "offset=-1",
        "colour=red",
    ] {
        let reply = server.get(&format!("/api/v1/queries?{bad}")).await;
        assert_eq!(reply.expect_error(400), "bad_query_string", "{bad}");
    }
    server.stop().await;

    // Restarted keeping the text and only two records: the oldest two are pruned at start,
    // and new queries keep their text.
    let mut settings = settings;
    settings.history.max_rows = 2;
    settings.history.sql = plugboard::history::SqlRecording::Keep;
    let server = TestServer::start_with(settings).await;
    let reply = query(&server, &id, json!({"sql": "SELECT 'kept' AS text"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let all = server.get("/api/v1/queries").await;
    let queries = all.body["queries"].as_array().unwrap();
    assert!(
        queries.len() <= 3,
        "pruned to two, plus the new one: {}",
        all.text
    );
    assert_eq!(queries[0]["sql"], "SELECT 'kept' AS text");
    server.stop().await;
}

#[tokio::test]
async fn health_checks_connections_in_the_background() {
    let (good, _) = Postgres.connection("healthy", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = plugboard::Settings::new(dir.path().join("data"));
    settings.health.interval = Duration::from_millis(400);
    let server = TestServer::start_with(settings).await;
    let health = server.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["status"], "healthy");
    assert!(health.body["uptime_s"].is_u64());
    assert_eq!(health.body["store"]["status"], "ok");
    assert_eq!(health.body["plugins"]["status"], "ok");

    let good = server.create(good).await;
    let mut bad_body = Postgres.connection("unreachable", json!({})).0;
    bad_body["port"] = json!(plugboard_tests::free_port());
    let bad = server.create(bad_body).await;
    // The checker finds the unreachable one without being asked.
    eventually(
        Duration::from_secs(10),
        "the checker marks the host degraded",
        async || server.get("/health").await.body["status"] == "degraded",
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the checker checks both",
        async || server.get("/health").await.body["connections"]["checked"] == 2,
    )
    .await;
    let health = server.get("/health").await;
    assert_eq!(health.body["connections"]["failing"], 1, "{}", health.text);

    let reply = server
        .get(&format!("/api/v1/connections/{good}/health"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "healthy");
    assert!(reply.body["response_ms"].as_f64().unwrap() > 0.0);
    let checks = reply.body["checks"].as_array().unwrap();
    assert!(
        checks.len() >= 2,
        "background checks and this one: {}",
        reply.text
    );
    assert!(checks[0]["server_version"].is_string());

    let reply = server
        .get(&format!("/api/v1/connections/{bad}/health"))
        .await;
    assert_eq!(reply.body["status"], "unhealthy");
    assert_eq!(reply.body["checks"][0]["error"]["code"], "connection");
    let reply = server.get("/api/v1/connections/nope/health").await;
    assert_eq!(reply.expect_error(404), "not_found");

    // Deleting the failing connection makes the host healthy again.
    assert_eq!(
        server
            .delete(&format!("/api/v1/connections/{bad}"))
            .await
            .status,
        204
    );
    eventually(Duration::from_secs(5), "healthy again", async || {
        server.get("/health").await.body["status"] == "healthy"
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_queries_pools_and_checks() {
    let (server, id, _) = setup(Postgres, "metrics", json!({})).await;
    assert_eq!(
        query(&server, &id, json!({"sql": "SELECT 1"})).await.status,
        200
    );
    let _ = query(&server, &id, json!({"sql": "SELEC 1"})).await;
    let _ = server
        .get(&format!("/api/v1/connections/{id}/health"))
        .await;
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "plugboard_http_requests_total{method=\"POST\",route=\"/api/v1/connections/{id}/query\",status=\"200\"}",
        "plugboard_http_request_duration_seconds_bucket{",
        "plugboard_queries_total{engine=\"postgres\",kind=\"query\",status=\"ok\"}",
        "plugboard_queries_total{engine=\"postgres\",kind=\"query\",status=\"failed\"}",
        "plugboard_query_duration_seconds_bucket{",
        "plugboard_health_checks_total{status=\"ok\"}",
        "plugboard_sessions_open",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
    // The pool holds at least the connection the queries used (a second one may have been
    // opened while the first was still being given back).
    let series = format!("plugboard_pool_size{{connection=\"{id}\"}} ");
    let size: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
        .parse()
        .unwrap();
    assert!((1.0..=5.0).contains(&size), "pool size {size}");
    server.stop().await;
}

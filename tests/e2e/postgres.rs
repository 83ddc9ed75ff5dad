//! The PostgreSQL plugin through the HTTP API, against a real PostgreSQL.

use std::time::{Duration, Instant};

use plugboard_tests::postgres::PgServer;
use plugboard_tests::server::TestServer;
use serde_json::json;

use crate::pg_body;

/// A server with one connection to a fresh database; returns the server, the connection's
/// query path prefix and the database name.
async fn setup(name: &str) -> (TestServer, String, String) {
    let pg = PgServer::shared();
    let db = pg.create_database(name);
    let server = TestServer::start().await;
    let id = server.create(pg_body(name, &db)).await;
    (server, format!("/api/v1/connections/{id}"), db)
}

#[tokio::test]
async fn test_reports_version_latency_and_tls() {
    let pg = PgServer::shared();
    let (server, conn, db) = setup("test_ok").await;
    let reply = server.post(&format!("{conn}/test"), json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["ok"], true, "{}", reply.text);
    let version = pg.admin("SHOW server_version");
    assert_eq!(reply.body["server_version"], version.trim());
    assert!(reply.body["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(reply.body["tls"], false);

    // The same through the unsaved path.
    let reply = server
        .post("/api/v1/connections/test", pg_body("unsaved", &db))
        .await;
    assert_eq!(reply.body["ok"], true, "{}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn failed_tests_are_answers_with_the_cause() {
    let server = TestServer::start().await;
    let cases = [
        (
            "wrong password",
            json!({"password": "not-the-password"}),
            "authentication",
        ),
        (
            "closed port",
            json!({"port": plugboard_tests::free_port()}),
            "connection",
        ),
        (
            "unknown database",
            json!({"database": "no_such_db"}),
            "configuration",
        ),
        (
            "TLS required, none offered",
            json!({"options": {"sslmode": "require"}}),
            "connection",
        ),
    ];
    for (what, change, code) in cases {
        let mut body = pg_body(what, "postgres");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let started = Instant::now();
        let reply = server.post("/api/v1/connections/test", body.clone()).await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text);
        assert_eq!(reply.body["ok"], false, "{what}: {}", reply.text);
        assert_eq!(reply.body["error"]["code"], code, "{what}: {}", reply.text);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            started.elapsed()
        );

        // Stored, the test answers the same way.
        body["name"] = json!(format!("stored {what}"));
        let id = server.create(body).await;
        let reply = server
            .post(&format!("/api/v1/connections/{id}/test"), json!({}))
            .await;
        assert_eq!(reply.body["error"]["code"], code, "{what}: {}", reply.text);
    }
    // Queries on a connection that cannot connect fail with a gateway error, not a 500.
    let mut body = pg_body("bad password query", "postgres");
    body["password"] = json!("nope");
    let id = server.create(body).await;
    let reply = server
        .post(
            &format!("/api/v1/connections/{id}/query"),
            json!({"sql": "select 1"}),
        )
        .await;
    assert_eq!(reply.expect_error(502), "authentication");
    server.stop().await;
}

#[tokio::test]
async fn databases_are_listed() {
    let (server, conn, db) = setup("dblist").await;
    let reply = server.get(&format!("{conn}/databases")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let names: Vec<&str> = reply.body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&db.as_str()) && names.contains(&"postgres"),
        "{names:?}"
    );
    assert!(!names.contains(&"template0"));
    server.stop().await;
}

const FIXTURE: &str = "
CREATE SCHEMA sales;
CREATE TYPE sales.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN sales.positive_int AS integer CHECK (VALUE > 0);
CREATE TABLE sales.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email varchar(200) NOT NULL UNIQUE,
    name text,
    mood sales.mood DEFAULT 'happy',
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'Login address';
CREATE TABLE sales.orders (
    order_id integer NOT NULL,
    line smallint NOT NULL,
    customer_id bigint REFERENCES sales.customers (id) ON DELETE CASCADE,
    total numeric(12, 2) DEFAULT 0,
    qty sales.positive_int,
    tags text[],
    payload jsonb,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX orders_customer_idx ON sales.orders (customer_id, total DESC);
CREATE INDEX orders_lower_idx ON sales.orders (lower(tags[1]));
CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE total > 100;
CREATE MATERIALIZED VIEW sales.totals AS
    SELECT customer_id, sum(total) AS total FROM sales.orders GROUP BY 1;
CREATE TABLE public.misc (id int);
INSERT INTO sales.customers (email, name) SELECT 'c' || g || '@example.com', 'n' || g
    FROM generate_series(1, 50) g;
ANALYZE;
";

fn find<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[tokio::test]
async fn introspection_finds_every_object_with_its_details() {
    let pg = PgServer::shared();
    let (server, conn, db) = setup("introspect").await;
    pg.exec_as_test_user(&db, FIXTURE);

    let reply = server.get(&format!("{conn}/schema?refresh=true")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["source"], "live");
    let full = reply.body["schemas"].clone();
    let schemas = &reply.body["schemas"];
    let names: Vec<&str> = schemas
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["public", "sales"],
        "system schemas are left out by default"
    );
    let sales = &find(schemas, "sales")["tables"];
    let kinds: Vec<(&str, &str)> = sales
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("big_orders", "view"),
            ("customers", "table"),
            ("orders", "table"),
            ("totals", "materialized_view")
        ]
    );

    let customers = find(sales, "customers");
    assert_eq!(customers["comment"], "People who buy");
    assert_eq!(customers["row_estimate"], 50);
    let columns = &customers["columns"];
    let id = find(columns, "id");
    assert_eq!(
        (id["data_type"].as_str(), id["common_type"].as_str()),
        (Some("bigint"), Some("int64"))
    );
    assert_eq!(id["primary_key"], true);
    assert_eq!(id["nullable"], false);
    assert_eq!(id["default"], "GENERATED ALWAYS AS IDENTITY");
    let email = find(columns, "email");
    assert_eq!(email["data_type"], "character varying(200)");
    assert_eq!(email["common_type"], "text");
    assert_eq!(email["comment"], "Login address");
    assert_eq!(email["primary_key"], false);
    let mood = find(columns, "mood");
    assert_eq!(mood["data_type"], "sales.mood");
    assert_eq!(mood["common_type"], "text");
    assert_eq!(mood["default"], "'happy'::sales.mood");
    assert_eq!(find(columns, "name")["nullable"], true);
    let created = find(columns, "created_at");
    assert_eq!(created["common_type"], "timestamptz");
    assert_eq!(created["default"], "now()");
    let positions: Vec<u64> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert!(
        find(&customers["indexes"], "customers_email_key")["unique"]
            .as_bool()
            .unwrap()
    );

    let orders = find(sales, "orders");
    let columns = &orders["columns"];
    for (name, data_type, common) in [
        ("order_id", "integer", "int32"),
        ("line", "smallint", "int16"),
        ("total", "numeric(12,2)", "decimal"),
        ("qty", "sales.positive_int", "int32"),
        ("tags", "text[]", "array"),
        ("payload", "jsonb", "json"),
    ] {
        let c = find(columns, name);
        assert_eq!(
            (
                c["data_type"].as_str().unwrap(),
                c["common_type"].as_str().unwrap()
            ),
            (data_type, common)
        );
    }
    assert_eq!(find(columns, "order_id")["primary_key"], true);
    assert_eq!(find(columns, "line")["primary_key"], true);
    assert_eq!(find(columns, "total")["primary_key"], false);
    assert_eq!(find(columns, "total")["default"], "0");

    let indexes = &orders["indexes"];
    let pkey = find(indexes, "orders_pkey");
    assert_eq!(pkey["columns"], json!(["order_id", "line"]));
    assert_eq!(
        (pkey["primary"].as_bool(), pkey["unique"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(pkey["method"], "btree");
    let by_customer = find(indexes, "orders_customer_idx");
    assert_eq!(by_customer["columns"], json!(["customer_id", "total"]));
    assert_eq!(by_customer["unique"], false);
    assert!(
        by_customer["definition"]
            .as_str()
            .unwrap()
            .contains("total DESC")
    );
    assert_eq!(
        find(indexes, "orders_lower_idx")["columns"],
        json!(["lower(tags[1])"])
    );

    let fk = &orders["foreign_keys"][0];
    assert_eq!(fk["columns"], json!(["customer_id"]));
    assert_eq!(fk["referenced_schema"], "sales");
    assert_eq!(fk["referenced_table"], "customers");
    assert_eq!(fk["referenced_columns"], json!(["id"]));
    assert_eq!(fk["on_delete"], "CASCADE");
    assert_eq!(fk["on_update"], "NO ACTION");

    let view = find(sales, "big_orders");
    assert!(view["row_estimate"].is_null());
    assert_eq!(view["columns"].as_array().unwrap().len(), 7);

    // Filters are pushed down: only what was asked for comes back.
    let reply = server
        .get(&format!(
            "{conn}/schema?refresh=true&schemas=sales&tables=orders"
        ))
        .await;
    let schemas = reply.body["schemas"].as_array().unwrap();
    assert_eq!(schemas.len(), 1);
    assert_eq!(schemas[0]["tables"].as_array().unwrap().len(), 1);
    assert_eq!(schemas[0]["tables"][0]["name"], "orders");
    let reply = server
        .get(&format!("{conn}/schema?refresh=true&system=true&schemas=pg_catalog&tables=pg_class&indexes=false&foreign_keys=false"))
        .await;
    let pg_class = &reply.body["schemas"][0]["tables"][0];
    assert_eq!(pg_class["name"], "pg_class");
    assert!(pg_class["columns"].as_array().unwrap().len() > 20);
    assert!(pg_class["indexes"].as_array().unwrap().is_empty());

    // Without refresh, the snapshot is served.
    let cached = server.get(&format!("{conn}/schema")).await;
    assert_eq!(cached.body["source"], "cache");
    assert_eq!(cached.body["schemas"], full);
    server.stop().await;
}

#[tokio::test]
async fn the_last_snapshot_is_served_with_a_warning_when_live_fails() {
    let pg = PgServer::shared();
    let role = format!("cache_{}", uuid::Uuid::new_v4().simple());
    pg.admin(&format!("CREATE ROLE {role} LOGIN PASSWORD 'first-pw'"));
    let db = pg.create_database("snap");
    pg.admin_in(&db, "CREATE TABLE kept (id int PRIMARY KEY)");
    let server = TestServer::start().await;
    let mut body = pg_body("snap", &db);
    body["username"] = json!(role);
    body["password"] = json!("first-pw");
    let conn = format!("/api/v1/connections/{}", server.create(body).await);

    let live = server.get(&format!("{conn}/schema?refresh=true")).await;
    assert_eq!(live.body["source"], "live", "{}", live.text);

    // The target now refuses this role: the live call fails.
    pg.admin(&format!("ALTER ROLE {role} PASSWORD 'second-pw'"));
    pg.admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ));
    let fallback = server.get(&format!("{conn}/schema?refresh=true")).await;
    assert_eq!(fallback.status, 200, "{}", fallback.text);
    assert_eq!(fallback.body["source"], "cache");
    assert_eq!(fallback.body["fetched_at"], live.body["fetched_at"]);
    assert_eq!(fallback.body["schemas"], live.body["schemas"]);
    assert!(
        fallback.body["warning"]
            .as_str()
            .unwrap()
            .contains("authentication"),
        "{}",
        fallback.text
    );

    // With no snapshot for these filters, the failure is the answer.
    let none = server
        .get(&format!("{conn}/schema?refresh=true&tables=kept"))
        .await;
    assert_eq!(none.expect_error(502), "authentication");
    server.stop().await;
}

#[tokio::test]
async fn query_values_are_typed_json() {
    let (server, conn, _db) = setup("types").await;
    let sql = "SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float4 AS f4, \
        2.25::float8 AS f8, 12345678901234567890.123456789::numeric AS num, 'NaN'::numeric AS nan, \
        true AS b, 'héllo ✓'::text AS t, '\\x00ff'::bytea AS bytes, '2024-02-29'::date AS d, \
        '13:45:30.5'::time AS tm, '2024-02-29 13:45:30.123456'::timestamp AS ts, \
        '2024-02-29 13:45:30+02'::timestamptz AS tstz, 'infinity'::timestamp AS inf, \
        '1 year 2 months 3 days 04:05:06.5'::interval AS iv, '{\"a\": [1, 2]}'::jsonb AS j, \
        ARRAY[1, NULL, 3] AS arr, ARRAY[[1, 2], [3, 4]] AS arr2, \
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, NULL::text AS n, \
        '192.168.0.1/24'::inet AS ip";
    let reply = server
        .post(&format!("{conn}/query"), json!({"sql": sql}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let expected = json!([
        1, 2, 3, 1.5, 2.25, "12345678901234567890.123456789", "NaN", true, "héllo ✓", "AP8=",
        "2024-02-29", "13:45:30.500", "2024-02-29T13:45:30.123456", "2024-02-29T11:45:30+00:00",
        "infinity", "P1Y2M3DT4H5M6.5S", {"a": [1, 2]}, [1, null, 3], [[1, 2], [3, 4]],
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", null, "192.168.0.1/24"
    ]);
    assert_eq!(reply.body["rows"][0], expected);
    assert_eq!(reply.body["row_count"], 1);
    assert_eq!(reply.body["truncated"], false);
    assert!(reply.body["elapsed_ms"].as_f64().unwrap() > 0.0);
    let columns = reply.body["columns"].as_array().unwrap();
    assert_eq!(
        columns[0],
        json!({"name": "i2", "type": "int2", "common_type": "int16"})
    );
    assert_eq!(columns[5]["common_type"], "decimal");
    assert_eq!(columns[13]["common_type"], "timestamptz");
    assert_eq!(columns[17]["type"], "int4[]");
    assert_eq!(columns[17]["common_type"], "array");
    server.stop().await;
}

#[tokio::test]
async fn parameters_are_bound_to_the_types_the_server_expects() {
    let (server, conn, _db) = setup("params").await;
    let query = format!("{conn}/query");
    let reply = server
        .post(
            &query,
            json!({
                "sql": "SELECT $1::int AS a, $2::text AS b, $3::numeric AS c, $4::timestamptz AS d, \
                        $5::jsonb AS e, $6::int[] AS f, $7::bytea AS g, $8::bool AS h, $9::date AS i, \
                        $10::uuid AS j, $11::float8 AS k, $12::text AS l",
                "params": [42, "x", "1.10", "2024-01-01T02:00:00+02:00", {"k": [1]}, [1, 2], "AP8=",
                           true, "2024-02-29", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0.5, null]
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["rows"][0],
        json!([42, "x", "1.10", "2024-01-01T00:00:00+00:00", {"k": [1]}, [1, 2], "AP8=", true,
               "2024-02-29", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0.5, null])
    );
    // A JSON number compared with a text column binds as text.
    let reply = server
        .post(&query, json!({"sql": "SELECT count(*) AS n FROM (VALUES ('1'), ('2')) v(x) WHERE x = $1", "params": [1]}))
        .await;
    assert_eq!(reply.body["rows"][0][0], 1, "{}", reply.text);

    let reply = server
        .post(&query, json!({"sql": "SELECT $1::int", "params": []}))
        .await;
    assert_eq!(reply.expect_error(422), "invalid_input");
    assert!(reply.text.contains("takes 1 parameter"));
    let reply = server
        .post(&query, json!({"sql": "SELECT $1::int", "params": ["abc"]}))
        .await;
    assert_eq!(reply.expect_error(422), "invalid_input");
    assert!(reply.text.contains("$1"), "{}", reply.text);
    let reply = server
        .post(&query, json!({"sql": "SELECT $1::int", "params": [1e12]}))
        .await;
    assert!(reply.expect_error(422) == "invalid_input" && reply.text.contains("out of range"));
    server.stop().await;
}

#[tokio::test]
async fn query_errors_carry_the_sqlstate() {
    let (server, conn, _db) = setup("errors").await;
    let query = format!("{conn}/query");
    let reply = server.post(&query, json!({"sql": "SELEC 1"})).await;
    assert_eq!(reply.expect_error(400), "query");
    assert_eq!(reply.body["error"]["engine_code"], "42601");
    assert!(reply.text.contains("syntax error"));
    let reply = server
        .post(&query, json!({"sql": "SELECT * FROM no_such_table"}))
        .await;
    assert_eq!(
        reply.body["error"]["engine_code"], "42P01",
        "{}",
        reply.text
    );
    let reply = server.post(&query, json!({"sql": "SELECT 1/0"})).await;
    assert_eq!(
        reply.body["error"]["engine_code"], "22012",
        "{}",
        reply.text
    );
    // The connection is still usable after errors.
    let reply = server.post(&query, json!({"sql": "SELECT 1 AS one"})).await;
    assert_eq!(reply.body["rows"], json!([[1]]));
    server.stop().await;
}

#[tokio::test]
async fn statements_report_rows_affected() {
    let (server, conn, _db) = setup("dml").await;
    let query = format!("{conn}/query");
    let reply = server
        .post(&query, json!({"sql": "CREATE TABLE t (x int)"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server
        .post(
            &query,
            json!({"sql": "INSERT INTO t SELECT generate_series(1, $1::int)", "params": [7]}),
        )
        .await;
    assert_eq!(reply.body["rows_affected"], 7, "{}", reply.text);
    assert_eq!(reply.body["columns"], json!([]));
    let reply = server
        .post(&query, json!({"sql": "SELECT sum(x) AS s FROM t"}))
        .await;
    assert_eq!(reply.body["rows"], json!([[28]]));
    assert!(reply.body.get("rows_affected").is_none(), "{}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn a_table_changed_under_a_cached_statement_is_read_afresh() {
    let pg = PgServer::shared();
    let db = pg.create_database("stale");
    let server = TestServer::start().await;
    let mut body = pg_body("stale", &db);
    // One pooled connection, so the second query meets the first one's cached statement.
    body["options"]["pool"] = json!({"max_size": 1});
    let query = format!("/api/v1/connections/{}/query", server.create(body).await);
    for sql in ["CREATE TABLE t (a int)", "INSERT INTO t VALUES (1)"] {
        assert_eq!(server.post(&query, json!({"sql": sql})).await.status, 200);
    }
    let reply = server.post(&query, json!({"sql": "SELECT * FROM t"})).await;
    assert_eq!(reply.body["rows"], json!([[1]]), "{}", reply.text);
    pg.admin_in(&db, "ALTER TABLE t ADD COLUMN b text DEFAULT 'x'");
    let reply = server.post(&query, json!({"sql": "SELECT * FROM t"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["columns"].as_array().unwrap().len(), 2);
    assert_eq!(reply.body["rows"], json!([[1, "x"]]));
    server.stop().await;
}

#[tokio::test]
async fn limit_truncates_and_an_abandoned_result_stops_on_the_server() {
    let pg = PgServer::shared();
    let (server, conn, db) = setup("limits").await;
    let query = format!("{conn}/query");
    let sql = "SELECT g FROM generate_series(1, 5000) g";
    let reply = server.post(&query, json!({"sql": sql, "limit": 10})).await;
    assert_eq!(reply.body["row_count"], 10);
    assert_eq!(reply.body["truncated"], true);
    assert_eq!(reply.body["rows"][9], json!([10]));
    let reply = server
        .post(&query, json!({"sql": sql, "limit": 5000}))
        .await;
    assert_eq!(
        (
            reply.body["row_count"].as_u64(),
            reply.body["truncated"].as_bool()
        ),
        (Some(5000), Some(false))
    );

    // A huge result cut short by its limit: the answer is quick, and the server stops.
    let started = Instant::now();
    // generate_series in the select list streams (in FROM it would be materialised first).
    let huge = "SELECT generate_series(1, 100000000) AS g, repeat('x', 200) AS pad";
    let reply = server.post(&query, json!({"sql": huge, "limit": 5})).await;
    assert_eq!(reply.body["truncated"], true, "{}", reply.text);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    wait_until_idle(pg, &db, "100000000").await;
    server.stop().await;
}

/// Waits until no backend in `db` runs a query containing `marker`; fails after 5 s.
async fn wait_until_idle(pg: &PgServer, db: &str, marker: &str) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND state = 'active' \
         AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if pg.admin(&sql).trim() == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the query is still running on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn timeouts_stop_the_query_on_the_server() {
    let pg = PgServer::shared();
    let (server, conn, db) = setup("timeouts").await;
    let query = format!("{conn}/query");
    let started = Instant::now();
    let reply = server
        .post(
            &query,
            json!({"sql": "SELECT pg_sleep(30) /* sleepy */", "timeout_ms": 300}),
        )
        .await;
    assert_eq!(reply.expect_error(504), "timeout");
    assert!(reply.text.contains("57014"), "{}", reply.text);
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_until_idle(pg, &db, "sleepy").await;
    // The next query on the same pool is not cut short by the previous timeout.
    let reply = server
        .post(
            &query,
            json!({"sql": "SELECT true AS slept FROM pg_sleep(0.5)", "timeout_ms": 5000}),
        )
        .await;
    assert_eq!(reply.body["rows"], json!([[true]]), "{}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn the_pool_is_bounded_by_its_settings_and_reused() {
    let pg = PgServer::shared();
    let db = pg.create_database("pool");
    let server = TestServer::start().await;
    let app = format!("pooltest_{}", uuid::Uuid::new_v4().simple());
    let mut body = pg_body("pool", &db);
    body["options"] =
        json!({"sslmode": "disable", "application_name": app, "pool": {"max_size": 2}});
    let query = format!("/api/v1/connections/{}/query", server.create(body).await);

    let started = Instant::now();
    let calls = (0..6).map(|_| server.post(&query, json!({"sql": "SELECT pg_sleep(0.3)"})));
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Six 0.3 s queries through two connections take three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "took {:?}",
        started.elapsed()
    );
    let backends: u32 = pg
        .admin(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .trim()
        .parse()
        .unwrap();
    assert!(
        (1..=2).contains(&backends),
        "{backends} backends for a pool of 2"
    );
    server.stop().await;
}

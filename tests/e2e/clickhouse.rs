//! The ClickHouse WASM plugin through the API, dropped into a running host's plugins
//! folder, against a real ClickHouse; and the folder's rules for files that are not
//! plugins.

use std::time::{Duration, Instant};

use plugboard::Settings;
use plugboard_tests::clickhouse::{self, ClickHouseServer};
use plugboard_tests::server::{TestServer, logs};
use plugboard_tests::wasm;
use serde_json::{Value, json};

const CLICKHOUSE: &str = "plugboard-plugin-clickhouse";

/// Polls `/api/v1/plugins` until `check` holds for the list; returns how long it took.
async fn wait_for_plugins(server: &TestServer, check: impl Fn(&[Value]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let reply = server.get("/api/v1/plugins").await;
        let plugins = reply.body["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if check(&plugins) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the plugins folder change was not picked up: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn named<'a>(plugins: &'a [Value], key: &str, value: &str) -> Option<&'a Value> {
    plugins.iter().find(|p| p[key] == value)
}

async fn query(server: &TestServer, id: &str, body: Value) -> (u16, Value) {
    let reply = server
        .post(&format!("/api/v1/connections/{id}/query"), body)
        .await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn dropping_the_plugin_in_serves_clickhouse_without_a_restart_and_removing_it_removes_it() {
    let ch = ClickHouseServer::shared();
    let db = ch.create_database("api");
    let server = TestServer::start().await;
    let plugins_dir = server.data_dir.join("plugins");
    let connection = json!({
        "name": "events", "engine": "clickhouse", "host": "127.0.0.1", "port": ch.port,
        "database": db, "username": clickhouse::TEST_USER, "password": clickhouse::TEST_PASSWORD,
    });
    let before = server.post("/api/v1/connections", connection.clone()).await;
    assert_eq!(
        before.expect_error(422),
        "validation",
        "no clickhouse engine yet"
    );

    wasm::install(CLICKHOUSE, &plugins_dir, "clickhouse.wasm");
    let took = wait_for_plugins(&server, |p| named(p, "name", "clickhouse").is_some()).await;
    eprintln!("clickhouse plugin picked up {took:?} after it was dropped in");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let listed = server.get("/api/v1/plugins").await.body["plugins"].clone();
    let entry = named(listed.as_array().unwrap(), "name", "clickhouse")
        .unwrap()
        .clone();
    assert_eq!(entry["kind"], "wasm");
    assert_eq!(entry["status"], "loaded");
    assert_eq!(entry["engines"], json!(["clickhouse"]));
    assert_eq!(entry["sha256"].as_str().unwrap().len(), 64);

    let id = server.create(connection).await;
    let test = server
        .post(&format!("/api/v1/connections/{id}/test"), json!({}))
        .await;
    assert_eq!(test.body["ok"], true, "{}", test.text);
    assert!(
        test.body["server_version"]
            .as_str()
            .unwrap()
            .starts_with("18."),
        "{}",
        test.text
    );

    ch.admin(&format!(
        "CREATE TABLE {db}.events (id UInt64, name String, amount Decimal(18, 4), \
         at DateTime, tags Array(String), note Nullable(String)) ENGINE = MergeTree ORDER BY id"
    ));
    ch.admin(&format!(
        "INSERT INTO {db}.events VALUES (18446744073709551615, 'it''s', 12345678901234.5678, \
         '2024-03-01 12:00:00', ['a', 'b'], NULL), (1, 'plain', 0.1, '2024-03-02 00:00:00', [], 'n')"
    ));

    // Typed values, every digit kept; parameters bound safely.
    let (status, body) = query(
        &server,
        &id,
        json!({"sql": "SELECT id, name, amount, at, tags, note FROM events WHERE name = {p1:String} OR id = {p2:UInt64} ORDER BY id",
               "params": ["it's", 1]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        json!([
            [1, "plain", "0.1000", "2024-03-02 00:00:00", [], "n"],
            [
                u64::MAX,
                "it's",
                "12345678901234.5678",
                "2024-03-01 12:00:00",
                ["a", "b"],
                null
            ]
        ])
    );
    assert_eq!(body["columns"][0]["type"], "UInt64");
    // A parameter cannot change the statement.
    let (status, body) = query(
        &server,
        &id,
        json!({"sql": "SELECT count() FROM events WHERE name = {p1:String}", "params": ["' OR 1 = 1 --"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[0]]));

    // Schema through the API.
    let schema = server
        .get(&format!("/api/v1/connections/{id}/schema?refresh=true"))
        .await;
    assert_eq!(schema.status, 200, "{}", schema.text);
    let tables = &schema.body["schemas"][0]["tables"];
    assert_eq!(schema.body["schemas"][0]["name"], db.as_str());
    assert_eq!(tables[0]["name"], "events");
    assert_eq!(tables[0]["row_estimate"], 2);
    assert_eq!(tables[0]["columns"][0]["primary_key"], true);
    assert_eq!(tables[0]["columns"][5]["nullable"], true);

    // Errors carry ClickHouse's exception code.
    let (status, body) = query(&server, &id, json!({"sql": "SELEC 1"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["engine_code"], "62");
    let (status, body) = query(
        &server,
        &id,
        json!({"sql": "SELECT count() FROM system.numbers", "timeout_ms": 1000}),
    )
    .await;
    assert_eq!(status, 504, "{body}");

    // A result cut by its limit is killed on the server.
    let (status, body) = query(
        &server,
        &id,
        json!({"sql": "SELECT number AS kit_cancel FROM system.numbers", "limit": 5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ch.running("kit_cancel") > 0 {
        assert!(
            Instant::now() < deadline,
            "the query still runs on ClickHouse"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Files that are not plugins are shown as rejected, and change nothing else.
    std::fs::write(plugins_dir.join("garbage.wasm"), b"not wasm at all").unwrap();
    std::fs::write(plugins_dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let mut future = std::fs::read(wasm::plugin(CLICKHOUSE)).unwrap();
    let from = b"plugboard:connector/connector@0.1.0";
    // Every mention, so the component stays valid and only its contract version changes.
    let mut patched = 0;
    while let Some(at) = future.windows(from.len()).position(|w| w == from) {
        future[at..at + from.len()].copy_from_slice(b"plugboard:connector/connector@0.9.0");
        patched += 1;
    }
    assert!(patched > 0, "the export name is in the component");
    std::fs::write(plugins_dir.join("future.wasm"), future).unwrap();
    wait_for_plugins(&server, |p| {
        p.iter().filter(|p| p["status"] == "rejected").count() == 3
    })
    .await;
    let listed = server.get("/api/v1/plugins").await.body["plugins"].clone();
    let listed = listed.as_array().unwrap();
    let reason = |file: &str| {
        named(listed, "file", file).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        reason("garbage.wasm").contains("not a WebAssembly component"),
        "{}",
        reason("garbage.wasm")
    );
    assert!(
        reason("core.wasm").contains("not a WebAssembly component"),
        "{}",
        reason("core.wasm")
    );
    assert!(
        reason("future.wasm").contains("plugboard:connector@0.9.0"),
        "{}",
        reason("future.wasm")
    );
    assert_eq!(
        named(listed, "file", "future.wasm").unwrap()["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(
        logs().contains("WASM plugin rejected"),
        "one log line per rejection"
    );
    let (status, body) = query(&server, &id, json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, 200, "{body}");

    // Compiled code is cached in the data directory.
    let cached = std::fs::read_dir(server.data_dir.join("plugin-cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert!(cached >= 1);

    // The password went to ClickHouse in a header, and nowhere else: not in any answer
    // above, not in the log (captured down to DEBUG), not in the data directory.
    let log = logs();
    assert!(
        !log.contains(clickhouse::TEST_PASSWORD),
        "the password is in the log"
    );
    for (path, bytes) in server.data_files() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(clickhouse::TEST_PASSWORD),
            "the password is in {}",
            path.display()
        );
    }
    let listed = server.get(&format!("/api/v1/connections/{id}")).await;
    assert!(!listed.text.contains(clickhouse::TEST_PASSWORD));

    // Removing the file removes the engine.
    std::fs::remove_file(plugins_dir.join("clickhouse.wasm")).unwrap();
    let took = wait_for_plugins(&server, |p| named(p, "name", "clickhouse").is_none()).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let (status, body) = query(&server, &id, json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "engine_unavailable");
    server.stop().await;
}

#[tokio::test]
async fn a_restart_loads_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    wasm::install(CLICKHOUSE, &plugins, "cached-clickhouse.wasm");
    let settings = Settings {
        plugins_dir: Some(plugins),
        ..Settings::new(dir.path().join("data"))
    };
    for _ in 0..2 {
        let server = TestServer::start_with(settings.clone()).await;
        let listed = server.get("/api/v1/plugins").await;
        assert!(
            listed.text.contains("\"clickhouse\""),
            "loaded at start: {}",
            listed.text
        );
        server.stop().await;
    }
    let lines: Vec<String> = logs()
        .lines()
        .filter(|l| l.contains("WASM plugin loaded") && l.contains("cached-clickhouse.wasm"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("compiled=\"now\""), "{}", lines[0]);
    assert!(lines[1].contains("compiled=\"from cache\""), "{}", lines[1]);
}

#[tokio::test]
async fn plugin_check_runs_the_fixture_free_checks_against_a_live_server() {
    let ch = ClickHouseServer::shared();
    let file = wasm::plugin(CLICKHOUSE);
    let (report, passed) = plugboard::plugin_check::check(&file, &[], "SELECT 1")
        .await
        .unwrap();
    assert!(
        passed && report.contains("plugin       clickhouse"),
        "{report}"
    );
    let config: Vec<String> = [
        "host=127.0.0.1".to_owned(),
        format!("port={}", ch.port),
        format!("username={}", clickhouse::TEST_USER),
        format!("password={}", clickhouse::TEST_PASSWORD),
        "database=default".to_owned(),
    ]
    .into();
    let (report, passed) =
        plugboard::plugin_check::check(&file, &config, "SELECT number FROM system.numbers LIMIT 5")
            .await
            .unwrap();
    assert!(passed, "{report}");
    assert!(report.contains("7 of 7 checks passed"), "{report}");
    assert!(report.contains("5 row(s) in 3 batch(es)"), "{report}");
    assert!(
        !report.contains(clickhouse::TEST_PASSWORD),
        "the report shows no secret"
    );

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"garbage").unwrap();
    let error = plugboard::plugin_check::check(garbage.path(), &[], "SELECT 1")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not a WebAssembly component"),
        "{error}"
    );
}

#[tokio::test]
async fn a_read_only_connection_has_clickhouse_refuse_writes() {
    let ch = ClickHouseServer::shared();
    let db = ch.create_database("ro");
    ch.admin(&format!(
        "CREATE TABLE {db}.t (id UInt64) ENGINE = MergeTree ORDER BY id"
    ));
    let server = TestServer::start().await;
    wasm::install(
        CLICKHOUSE,
        &server.data_dir.join("plugins"),
        "clickhouse.wasm",
    );
    wait_for_plugins(&server, |p| named(p, "name", "clickhouse").is_some()).await;
    let id = server
        .create(json!({
            "name": "ro", "engine": "clickhouse", "host": "127.0.0.1", "port": ch.port,
            "database": db, "username": clickhouse::TEST_USER,
            "password": clickhouse::TEST_PASSWORD, "options": {"read_only": true},
        }))
        .await;
    let (status, body) = query(&server, &id, json!({"sql": "SELECT count() FROM t"})).await;
    assert_eq!(status, 200, "{body}");
    for write in ["INSERT INTO t VALUES (1)", "SELECT 1 SETTINGS readonly = 0"] {
        let (status, body) = query(&server, &id, json!({"sql": write})).await;
        assert_eq!(status, 400, "{write}: {body}");
        assert_eq!(body["error"]["engine_code"], "164", "{write}: {body}");
    }
    assert_eq!(ch.admin(&format!("SELECT count() FROM {db}.t")).trim(), "0");
    server.stop().await;
}

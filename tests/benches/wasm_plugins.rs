//! Benchmark: what running a plugin as a WebAssembly component costs, in one run.
//!
//! 1. The overhead of a WASM plugin call: a session opened on a fresh instance (new store,
//!    instantiate, the guest's `open`) and then one call on it, against the same two steps
//!    on a native plugin that does the same nothing; and a call on a warm instance.
//! 2. A small ClickHouse query through Plugboard's HTTP API (the ClickHouse WASM plugin)
//!    against the same query sent straight to ClickHouse's HTTP port, both sent by one
//!    `curl` process per side that reuses its connection, `time_total` per request.
//!
//! Run with `cargo bench -p plugboard-tests --bench wasm_plugins` (or `scripts/bench.sh`).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use plugboard_connector::{
    ColumnMeta, CommonType, ConnectionConfig, IntrospectOptions, Plugin, PluginInfo, QueryRequest,
    Result, ResultStream, Row, SchemaInfo, ServerInfo, Session, Value,
};
use plugboard_tests::clickhouse::{self, ClickHouseServer};
use plugboard_tests::server::TestServer;
use serde_json::json;

const CALLS: usize = 4_000;
const ROUNDS: usize = 9;
const QUERIES: usize = 300;

/// The native twin of the hostile plugin's `ok`: one row, no I/O.
struct Native(PluginInfo);
struct NativeSession;
struct OneRow(Vec<ColumnMeta>, bool);

#[async_trait]
impl Plugin for Native {
    fn info(&self) -> &PluginInfo {
        &self.0
    }
    async fn open(&self, _config: ConnectionConfig) -> Result<Box<dyn Session>> {
        Ok(Box::new(NativeSession))
    }
}

#[async_trait]
impl Session for NativeSession {
    async fn test(&self) -> Result<ServerInfo> {
        Ok(ServerInfo {
            version: "native".into(),
            latency_ms: 0.01,
            tls: false,
        })
    }
    async fn list_databases(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn introspect(&self, _options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        Ok(Vec::new())
    }
    async fn query(&self, _request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        let columns = vec![ColumnMeta {
            name: "answer".into(),
            data_type: "text".into(),
            common_type: CommonType::Text,
        }];
        Ok(Box::new(OneRow(columns, false)))
    }
}

#[async_trait]
impl ResultStream for OneRow {
    fn columns(&self) -> &[ColumnMeta] {
        &self.0
    }
    async fn next_batch(&mut self, _max: usize) -> Result<Option<Vec<Row>>> {
        if std::mem::replace(&mut self.1, true) {
            return Ok(None);
        }
        Ok(Some(vec![vec![Value::Text("ok".into())]]))
    }
    fn rows_affected(&self) -> Option<u64> {
        None
    }
}

fn config() -> ConnectionConfig {
    ConnectionConfig::new("hostile")
}

async fn ok_query(session: &dyn Session) {
    let mut stream = session
        .query(QueryRequest {
            sql: "ok".into(),
            params: Vec::new(),
            timeout_ms: None,
        })
        .await
        .unwrap();
    while stream.next_batch(100).await.unwrap().is_some() {}
}

/// Median over rounds of the mean time of `open` + one query on a new session, and of one
/// query on a warm session: the median of rounds keeps a noisy neighbour on this shared
/// machine from deciding the figure.
async fn per_call(plugin: &dyn Plugin) -> (Duration, Duration) {
    let per_round = CALLS / ROUNDS;
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let session = plugin.open(config()).await.unwrap();
    ok_query(session.as_ref()).await;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..per_round {
            let session = plugin.open(config()).await.unwrap();
            ok_query(session.as_ref()).await;
        }
        cold.push(started.elapsed() / per_round as u32);
        let started = Instant::now();
        for _ in 0..per_round {
            ok_query(session.as_ref()).await;
        }
        warm.push(started.elapsed() / per_round as u32);
    }
    (percentile(&mut cold, 0.5), percentile(&mut warm, 0.5))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Per-request `time_total` of `count` requests sent by one curl process.
fn curl(args: &[&str], url: &str, count: usize) -> Vec<Duration> {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "%{http_code} %{time_total}\n"]);
    command.args(args);
    for _ in 0..count {
        command.args(["-o", "/dev/null", url]);
    }
    let out = command.output().expect("running curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (code, secs) = line.split_once(' ').unwrap();
            assert_eq!(code, "200", "a request failed");
            Duration::from_secs_f64(secs.parse().unwrap())
        })
        .collect()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    plugboard_tests::bench::log_as_the_binary_does();
    let wasm = plugboard_tests::wasm::load("plugboard-test-plugin-hostile").await;
    let native: Arc<dyn Plugin> = Arc::new(Native(wasm.info().clone()));
    per_call(wasm.as_ref()).await; // warm-up
    let (wasm_cold, wasm_warm) = per_call(wasm.as_ref()).await;
    let (native_cold, native_warm) = per_call(native.as_ref()).await;
    println!(
        "plugin call, median of {ROUNDS} rounds of {} calls:",
        CALLS / ROUNDS
    );
    println!(
        "  new session (instantiate + open) + query: wasm {:.1} us, native {:.1} us, overhead {:.1} us (target <= 50)",
        us(wasm_cold),
        us(native_cold),
        us(wasm_cold.saturating_sub(native_cold))
    );
    println!(
        "  query on a warm session:                  wasm {:.1} us, native {:.1} us, overhead {:.1} us",
        us(wasm_warm),
        us(native_warm),
        us(wasm_warm.saturating_sub(native_warm))
    );

    let ch = ClickHouseServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("data").join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    plugboard_tests::wasm::install("plugboard-plugin-clickhouse", &plugins, "clickhouse.wasm");
    plugboard_tests::wasm::install("plugboard-test-plugin-hostile", &plugins, "hostile.wasm");
    let server = TestServer::start_with(plugboard::Settings::new(dir.path().join("data"))).await;
    let idle = server
        .create(json!({"name": "no-io", "engine": "hostile"}))
        .await;
    let no_io = server.url(&format!("/api/v1/connections/{idle}/query"));
    let no_io_body = json!({ "sql": "ok" }).to_string();
    let id = server
        .create(
            json!({"name": "bench", "engine": "clickhouse", "host": "127.0.0.1", "port": ch.port,
                       "username": clickhouse::TEST_USER, "password": clickhouse::TEST_PASSWORD}),
        )
        .await;
    let sql = "SELECT number, toString(number) AS text FROM system.numbers LIMIT 10";
    let body = json!({ "sql": sql }).to_string();
    let api = server.url(&format!("/api/v1/connections/{id}/query"));
    let direct = format!(
        "http://127.0.0.1:{}/?default_format=JSONCompact&output_format_json_quote_64bit_integers=1",
        ch.port
    );
    let user = format!("X-ClickHouse-User: {}", clickhouse::TEST_USER);
    let key = format!("X-ClickHouse-Key: {}", clickhouse::TEST_PASSWORD);
    let through = move |n| {
        curl(
            &["-H", "content-type: application/json", "-d", &body],
            &api,
            n,
        )
    };
    let straight = move |n| curl(&["-H", &user, "-H", &key, "--data-binary", sql], &direct, n);
    let check = server
        .post(
            &format!("/api/v1/connections/{id}/query"),
            json!({ "sql": sql }),
        )
        .await;
    assert_eq!(check.body["row_count"], 10, "{}", check.text);
    // The server's blocking curl calls run while the server runs on this runtime's other
    // threads; warm both sides first.
    let answer_only = move |n| {
        curl(
            &["-H", "content-type: application/json", "-d", &no_io_body],
            &no_io,
            n,
        )
    };
    let (mut plugboard, mut clickhouse, mut fixed) = tokio::task::spawn_blocking(move || {
        through(20);
        straight(20);
        answer_only(20);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            a.extend(through(QUERIES / 3));
            b.extend(straight(QUERIES / 3));
            c.extend(answer_only(QUERIES / 3));
        }
        (a, b, c)
    })
    .await
    .unwrap();
    let (p50, c50) = (
        percentile(&mut plugboard, 0.5),
        percentile(&mut clickhouse, 0.5),
    );
    let (p99, c99) = (
        percentile(&mut plugboard, 0.99),
        percentile(&mut clickhouse, 0.99),
    );
    println!("small ClickHouse query ({sql}), {QUERIES} requests each, curl time_total:");
    println!(
        "  through Plugboard: p50 {:.3} ms, p99 {:.3} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "  straight to ClickHouse: p50 {:.3} ms, p99 {:.3} ms",
        c50.as_secs_f64() * 1e3,
        c99.as_secs_f64() * 1e3
    );
    println!(
        "  (Plugboard's own share: a WASM plugin answering without I/O, through the API: p50 {:.3} ms)",
        percentile(&mut fixed, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "  ratio (p50): {:.2} (target <= 1.2)",
        p50.as_secs_f64() / c50.as_secs_f64()
    );
    server.stop().await;
}

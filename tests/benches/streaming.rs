//! Benchmark: streaming 1,000,000 rows × 7 columns out of PostgreSQL through Plugboard as
//! NDJSON, CSV and Arrow IPC, against `psql -c "COPY ... TO STDOUT"` on the same table, in
//! one run on one PostgreSQL; and the host's peak memory while it streams.
//!
//! Run with `cargo bench -p plugboard-tests --bench streaming` (or `scripts/bench.sh`).
//! Both sides connect over TCP with a password; psql's output and Plugboard's body are
//! discarded as they arrive. Plugboard runs in this process (release build), so the peak
//! RSS printed is the whole process's (host and HTTP client together): an upper bound on
//! the host's. It is reset before each format, through /proc/self/clear_refs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugboard_tests::bench::ms;
use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

const ROWS: u64 = 1_000_000;
const RUNS: usize = 5;
/// The targets: at most 1.3× psql's time, at most 64 MiB.
const TARGET_RATIO: f64 = 1.3;
const TARGET_RSS_MIB: f64 = 64.0;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Peak resident memory since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() {
    let pg = PgServer::start();
    let db = pg.create_database("stream");
    pg.exec_as_test_user(
        &db,
        &format!(
            "CREATE TABLE rows7 AS SELECT g::bigint AS id, (g % 100000)::int AS n, \
             g * 0.25::float8 AS f, 'label ' || g AS label, (g / 7.0)::numeric(18,6) AS amount, \
             timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS at, \
             g % 3 = 0 AS flag FROM generate_series(1, {ROWS}) AS g; VACUUM ANALYZE rows7;"
        ),
    );
    let sql = "SELECT id, n, f, label, amount, at, flag FROM rows7";

    let psql = pg.bin_dir().join("psql");
    let copy = format!("COPY ({sql}) TO STDOUT");
    let run_psql = || {
        let started = Instant::now();
        let status = Command::new(&psql)
            .args(["-X", "-q", "-h", "127.0.0.1", "-p"])
            .arg(pg.port.to_string())
            .args(["-U", TEST_USER, "-d", &db, "-c", &copy])
            .env("PGPASSWORD", TEST_PASSWORD)
            .stdout(Stdio::null())
            .status()
            .expect("running psql");
        assert!(status.success());
        started.elapsed()
    };

    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "bench", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "database": db, "username": TEST_USER, "password": TEST_PASSWORD,
            "options": {"sslmode": "disable"},
        }))
        .await;
    let client = reqwest::Client::new();
    let url = server.url(&format!("/api/v1/connections/{id}/query"));
    let stream = async |format: &str| -> (Duration, usize) {
        let started = Instant::now();
        let mut response = client
            .post(format!("{url}?format={format}"))
            .json(&json!({"sql": sql, "timeout_ms": 600_000}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            bytes += chunk.len();
        }
        (started.elapsed(), bytes)
    };

    run_psql();
    let baseline = median((0..RUNS).map(|_| run_psql()).collect());
    println!(
        "psql COPY TO STDOUT: {ROWS} rows x 7 columns in {:.0} ms (median of {RUNS})",
        ms(baseline)
    );
    let mut met = true;
    for format in ["ndjson", "csv", "arrow"] {
        stream(format).await;
        reset_peak_rss();
        let mut times = Vec::with_capacity(RUNS);
        let mut size = 0;
        for _ in 0..RUNS {
            let (time, bytes) = stream(format).await;
            times.push(time);
            size = bytes;
        }
        let time = median(times);
        let ratio = time.as_secs_f64() / baseline.as_secs_f64();
        let rss = peak_rss_mib();
        met &= ratio <= TARGET_RATIO && rss <= TARGET_RSS_MIB;
        println!(
            "plugboard {format:>6}: {:.0} ms, {:.1} MB, {:.2}x psql (target <= {TARGET_RATIO}), \
             peak RSS {rss:.1} MiB (target <= {TARGET_RSS_MIB})",
            ms(time),
            size as f64 / 1e6,
            ratio
        );
    }
    println!("targets {}", if met { "met" } else { "MISSED" });
    server.stop().await;
    pg.stop();
}

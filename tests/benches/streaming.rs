//! Benchmark: streaming 1,000,000 rows × 7 columns out of PostgreSQL through Plugboard as
//! NDJSON, CSV and Arrow IPC, against `psql -c "COPY ... TO STDOUT"` on the same table, in
//! one run on one PostgreSQL; and the host's peak memory while it streams.
//!
//! Run with `cargo bench -p plugboard-tests --bench streaming` (or `scripts/bench.sh`).
//! Both sides connect over TCP with a password; psql's output and Plugboard's body are
//! discarded as they arrive. Plugboard runs in this process (release build), so the peak
//! RSS printed is the whole process's (host and HTTP client together): an upper bound on
//! the host's. It is reset before each format, through /proc/self/clear_refs.
//! `STREAM_FORMATS=csv` (a comma-separated list) runs only the formats named.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugboard_tests::bench::ms;
use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

const ROWS: u64 = 1_000_000;
const RUNS: usize = 11;
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

/// CPU time this process (host and HTTP client) has used, from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses: utime and stime are the
    // 12th and 13th, in clock ticks (100 a second on Linux).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() {
    plugboard_tests::bench::log_as_the_binary_does();
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

    // The machine's speed drifts (psql alone ranged 0.84-1.39 s across runs here), so
    // psql and each format take turns, round by round, and each round's ratio is to that
    // round's psql; the medians of those are printed.
    let formats: Vec<String> = std::env::var("STREAM_FORMATS")
        .unwrap_or_else(|_| "ndjson,csv,arrow".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    run_psql();
    for format in &formats {
        stream(format).await;
    }
    let mut psql_times = Vec::with_capacity(RUNS);
    let mut times = vec![Vec::with_capacity(RUNS); formats.len()];
    let mut ratios = vec![Vec::with_capacity(RUNS); formats.len()];
    let mut peaks = vec![0.0_f64; formats.len()];
    let mut sizes = vec![0; formats.len()];
    let mut cpu = vec![Duration::ZERO; formats.len()];
    for _ in 0..RUNS {
        let psql_time = run_psql();
        psql_times.push(psql_time);
        for (i, format) in formats.iter().enumerate() {
            reset_peak_rss();
            let cpu_before = process_cpu();
            let (time, bytes) = stream(format).await;
            cpu[i] += process_cpu() - cpu_before;
            peaks[i] = peaks[i].max(peak_rss_mib());
            sizes[i] = bytes;
            times[i].push(time);
            ratios[i].push(time.as_secs_f64() / psql_time.as_secs_f64());
        }
    }
    println!(
        "psql COPY TO STDOUT: {ROWS} rows x 7 columns in {:.0} ms (median of {RUNS}, \
         alternating with the formats below)",
        ms(median(psql_times))
    );
    let mut met = true;
    for (i, format) in formats.iter().enumerate() {
        let mut round_ratios = std::mem::take(&mut ratios[i]);
        round_ratios.sort_by(f64::total_cmp);
        let ratio = round_ratios[round_ratios.len() / 2];
        let rss = peaks[i];
        met &= ratio <= TARGET_RATIO && rss <= TARGET_RSS_MIB;
        println!(
            "plugboard {format:>6}: {:.0} ms, {:.1} MB, {ratio:.2}x psql (median of the rounds' \
             ratios, {:.2}-{:.2}; target <= {TARGET_RATIO}), peak RSS {rss:.1} MiB \
             (target <= {TARGET_RSS_MIB}), CPU {:.0} ms a run (host and client)",
            ms(median(std::mem::take(&mut times[i]))),
            sizes[i] as f64 / 1e6,
            round_ratios[0],
            round_ratios[round_ratios.len() - 1],
            ms(cpu[i] / RUNS as u32),
        );
    }
    println!("targets {}", if met { "met" } else { "MISSED" });
    server.stop().await;
    pg.stop();
}

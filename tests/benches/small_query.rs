//! Benchmark: a point query (`pgbench -S`'s: one account's balance by key) through
//! Plugboard's HTTP API at 1 and 64 concurrent clients, against `pgbench -S` with as many
//! clients on the same PostgreSQL, in one run.
//!
//! Run with `cargo bench -p plugboard-tests --bench small_query` (or `scripts/bench.sh`).
//! Plugboard's clients are tasks in this process, each on its own keep-alive HTTP
//! connection, asking for a random key with a `$1` parameter; the connection's pool holds
//! up to 64 connections, as pgbench opens 64. Latencies are per request (pgbench's from its
//! per-transaction log); throughput is requests (transactions) per second.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

const SCALE: u32 = 10;
const SECONDS: u64 = 10;
const TARGET_P50_MS: f64 = 1.0;

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
}

fn figures(mut latencies_us: Vec<f64>, elapsed: Duration) -> Figures {
    latencies_us.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies_us[((latencies_us.len() as f64 * q) as usize).min(latencies_us.len() - 1)]
    };
    Figures {
        p50_ms: at(0.50) / 1000.0,
        p99_ms: at(0.99) / 1000.0,
        per_second: latencies_us.len() as f64 / elapsed.as_secs_f64(),
    }
}

fn pgbench(pg: &PgServer, db: &str, clients: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("log");
    let status = Command::new(pg.bin_dir().join("pgbench"))
        .args(["-n", "-S", "-h", "127.0.0.1", "-p"])
        .arg(pg.port.to_string())
        .args(["-U", TEST_USER, "-c"])
        .arg(clients.to_string())
        .args(["-j", "2", "-T"])
        .arg(SECONDS.to_string())
        .arg("-l")
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(db)
        .env("PGPASSWORD", TEST_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running pgbench");
    assert!(status.success(), "pgbench failed");
    // One line per transaction: client, transaction number, latency in µs, ...
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()),
        );
    }
    figures(latencies, Duration::from_secs(SECONDS))
}

async fn plugboard(server: &TestServer, id: &str, clients: usize, accounts: u32) -> Figures {
    let url = server.url(&format!("/api/v1/connections/{id}/query"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, stop) = (url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut key = (c as u64 * 7919) % u64::from(accounts);
            while !stop.load(Ordering::Relaxed) {
                key = (key * 6364136223846793005 + 1442695040888963407) % u64::from(accounts);
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .json(&json!({
                        "sql": "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                        "params": [key + 1],
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(started.elapsed().as_secs_f64() * 1e6);
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    figures(all, started.elapsed())
}

#[tokio::main]
async fn main() {
    plugboard_tests::bench::log_as_the_binary_does();
    let pg = PgServer::start();
    let db = pg.create_database("pgbench");
    let init = Command::new(pg.bin_dir().join("pgbench"))
        .args(["-i", "-q", "-s"])
        .arg(SCALE.to_string())
        .args(["-h", "127.0.0.1", "-p"])
        .arg(pg.port.to_string())
        .args(["-U", TEST_USER, &db])
        .env("PGPASSWORD", TEST_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running pgbench -i");
    assert!(init.success(), "pgbench -i failed");
    let accounts = SCALE * 100_000;

    let server = TestServer::start().await;
    let id = server
        .create(json!({
            "name": "bench", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
            "database": db, "username": TEST_USER, "password": TEST_PASSWORD,
            "options": {"sslmode": "disable", "pool": {"max_size": 64}},
        }))
        .await;
    // Warm the pool and the statement caches.
    plugboard(&server, &id, 64, accounts).await;

    for clients in [1, 64] {
        let base = pgbench(&pg, &db, clients);
        let ours = plugboard(&server, &id, clients, accounts).await;
        println!(
            "{clients:>2} client(s): plugboard p50 {:.3} ms p99 {:.3} ms {:.0}/s | pgbench -S p50 \
             {:.3} ms p99 {:.3} ms {:.0}/s | throughput {:.2}x pgbench",
            ours.p50_ms,
            ours.p99_ms,
            ours.per_second,
            base.p50_ms,
            base.p99_ms,
            base.per_second,
            ours.per_second / base.per_second
        );
        if clients == 1 {
            println!(
                "target p50 <= {TARGET_P50_MS} ms at one client: {}",
                if ours.p50_ms <= TARGET_P50_MS {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    }
    server.stop().await;
    pg.stop();
}

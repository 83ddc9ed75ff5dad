//! What the introspection benchmarks share: one way to time Plugboard's schema endpoint
//! against a baseline command, so every benchmark measures the same thing the same way.

use std::time::{Duration, Instant};

use crate::server::TestServer;

/// Medians of the two sides, and the size of Plugboard's answer.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    pub plugboard: Duration,
    pub baseline: Duration,
    pub bytes: usize,
}

impl Comparison {
    /// Plugboard's time over the baseline's.
    pub fn ratio(&self) -> f64 {
        self.plugboard.as_secs_f64() / self.baseline.as_secs_f64()
    }
}

/// Logs as the binary does by default ([`plugboard::DEFAULT_LOG_FILTER`], to stderr)
/// instead of capturing every DEBUG line in memory as the tests do, so a benchmark measures
/// the server as it runs. Call it before starting a [`TestServer`].
pub fn log_as_the_binary_does() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(plugboard::DEFAULT_LOG_FILTER)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Reads `path` (a live schema endpoint) once to warm the pool and check that it saw
/// `tables` tables of `columns_per_table` columns, runs `baseline` once to warm it too,
/// then times `runs` alternating rounds of each (HTTP request to the answer's last byte;
/// the baseline measures itself).
pub async fn compare_schema_reads(
    server: &TestServer,
    path: &str,
    tables: usize,
    columns_per_table: usize,
    runs: usize,
    mut baseline: impl FnMut() -> Duration,
) -> Comparison {
    let warm = server.get(path).await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let all_tables: Vec<&serde_json::Value> = warm.body["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tables"].as_array().unwrap())
        .collect();
    assert_eq!(all_tables.len(), tables, "Plugboard saw every table");
    let columns: usize = all_tables
        .iter()
        .map(|t| t["columns"].as_array().unwrap().len())
        .sum();
    assert_eq!(columns, tables * columns_per_table);
    baseline();

    let mut plugboard = Vec::with_capacity(runs);
    let mut base = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let reply = server.get(path).await;
        plugboard.push(started.elapsed());
        assert_eq!(reply.status, 200);
        base.push(baseline());
    }
    Comparison {
        plugboard: median(plugboard),
        baseline: median(base),
        bytes: warm.text.len(),
    }
}

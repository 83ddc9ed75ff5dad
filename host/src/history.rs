//! Query history: every query and transaction is recorded (connection, who, when, how long,
//! rows, status, error code, and the SQL's hash, or its text when the operator keeps it).
//!
//! Recording must not slow queries down, so records go through a bounded channel to one
//! writer task that inserts them in batches; a full channel (the store is down or far
//! behind) drops the record and counts it in `plugboard_history_dropped_total` rather than
//! hold a query up. The writer also prunes by age and count, at start and hourly.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::store::{HistoryRecord, Store};

/// Records waiting to be written, at most; past this, records are dropped.
const QUEUE: usize = 10_000;
/// Records written per store transaction, at most.
const BATCH: usize = 256;
/// How long the writer gathers records after the first of a batch arrives: a busy host
/// then commits (and syncs to disk) a few times a second instead of once per query or so.
/// At 3,000 queries a second the store's work was a fifth of the host's CPU; gathering cut
/// it by a third. A flush ends the wait at once.
const GATHER: Duration = Duration::from_millis(100);
/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What of a query's text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlRecording {
    /// The text and its hash. The text may hold secrets (`ALTER ROLE .. PASSWORD`).
    Keep,
    /// Only the SHA-256 of the text (the default).
    Hash,
}

/// How history is kept.
#[derive(Debug, Clone)]
pub struct HistorySettings {
    pub sql: SqlRecording,
    /// Records older than this are deleted.
    pub max_age: Duration,
    /// Only the newest this many records are kept.
    pub max_rows: i64,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            sql: SqlRecording::Hash,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_rows: 100_000,
        }
    }
}

enum Message {
    Record(Box<HistoryRecord>),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side, shared by every request.
#[derive(Clone)]
pub struct History {
    tx: mpsc::Sender<Message>,
    pub settings: HistorySettings,
}

impl History {
    /// Starts the writer over `store`; returns the sender and the writer's task.
    pub fn start(
        store: Store,
        settings: HistorySettings,
    ) -> (History, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write(store, settings.clone(), rx));
        (History { tx, settings }, task)
    }

    /// The SHA-256 of a query's text, and the text itself when it is kept.
    pub fn sql_fields(&self, sql: &str) -> (String, Option<String>) {
        let hash = Sha256::digest(sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = (self.settings.sql == SqlRecording::Keep).then(|| sql.to_owned());
        (hash, text)
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: HistoryRecord) {
        if self.tx.try_send(Message::Record(Box::new(record))).is_err() {
            metrics::counter!("plugboard_history_dropped_total").increment(1);
            tracing::warn!("query history is behind; a record was dropped");
        }
    }

    /// Waits until every record queued so far is written (so a client reads its own
    /// queries back).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(store: Store, settings: HistorySettings, mut rx: mpsc::Receiver<Message>) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushed = Vec::new();
    loop {
        tokio::select! {
            _ = prune.tick() => prune_old(&store, &settings).await,
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                gather(&mut rx, &mut batch).await;
                let mut records = Vec::with_capacity(batch.len());
                for message in batch.drain(..) {
                    match message {
                        Message::Record(r) => records.push(*r),
                        Message::Flush(done) => flushed.push(done),
                    }
                }
                if !records.is_empty()
                    && let Err(e) = store.insert_history(&records).await
                {
                    metrics::counter!("plugboard_history_dropped_total")
                        .increment(records.len() as u64);
                    tracing::warn!(error = %e, records = records.len(), "could not record query history");
                }
                for done in flushed.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }
}

/// Adds what arrives within [`GATHER`] to `batch`, up to [`BATCH`]; at once when someone
/// waits for a flush.
async fn gather(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Message>) {
    let window = tokio::time::sleep(GATHER);
    tokio::pin!(window);
    while batch.len() < BATCH && !batch.iter().any(|m| matches!(m, Message::Flush(_))) {
        tokio::select! {
            () = &mut window => return,
            received = rx.recv_many(batch, BATCH - batch.len()) => {
                if received == 0 {
                    return;
                }
            }
        }
    }
}

async fn prune_old(store: &Store, settings: &HistorySettings) {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(settings.max_age).unwrap_or(chrono::Duration::MAX);
    let cutoff = crate::store::query_time(cutoff);
    match store.prune_history(&cutoff, settings.max_rows).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned query history"),
        Err(e) => tracing::warn!(error = %e, "could not prune query history"),
    }
}

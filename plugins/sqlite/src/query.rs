//! Running a query as a stream of row batches.
//!
//! SQLite runs in-process, so "stopping the query on the server" means interrupting the
//! statement: each query arms a progress handler that SQLite calls every few thousand
//! virtual-machine steps, which interrupts the statement once its deadline has passed or
//! the consumer has gone away. Rows travel through the bounded channel every native plugin
//! shares, so memory stays flat whatever the result size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use plugboard_connector::{
    ChannelResultStream, ColumnMeta, CommonType, Error, QueryRequest, Result, ResultStream, Row,
    StreamEvent, Value,
};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteArguments;
use sqlx::{
    Arguments as _, Column as _, Either, Executor as _, Row as _, Sqlite, SqlitePool,
    Statement as _, TypeInfo as _,
};
use tokio::sync::mpsc;

use crate::{error, types};

const BATCH_ROWS: usize = 256;
const CHANNEL_BATCHES: usize = 2;
/// Virtual-machine steps between two looks at the deadline: small enough to stop within a
/// millisecond or so, large enough to cost nothing measurable.
const PROGRESS_STEPS: i32 = 10_000;

/// Why a statement on this connection should stop; read by SQLite's progress handler.
#[derive(Clone)]
pub(crate) struct Interrupt {
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// Arms the connection's progress handler for one operation.
    pub(crate) async fn arm(
        conn: &mut sqlx::SqliteConnection,
        timeout: Option<Duration>,
    ) -> Result<Interrupt> {
        let interrupt = Interrupt {
            stop: Arc::new(AtomicBool::new(false)),
            deadline: timeout.map(|t| Instant::now() + t),
        };
        let check = interrupt.clone();
        conn.lock_handle()
            .await
            .map_err(|e| error::map(e, "preparing the connection", false))?
            .set_progress_handler(PROGRESS_STEPS, move || !check.should_stop());
        Ok(interrupt)
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline_passed()
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Disarms the progress handler, so a pooled connection carries no stale deadline.
pub(crate) async fn disarm(conn: &mut sqlx::SqliteConnection) {
    if let Ok(mut handle) = conn.lock_handle().await {
        handle.remove_progress_handler();
    }
}

fn bind(
    arguments: &mut SqliteArguments<'static>,
    value: &Value,
) -> std::result::Result<(), String> {
    let result = match value {
        Value::Null => arguments.add(Option::<i64>::None),
        Value::Boolean(b) => arguments.add(i64::from(*b)),
        Value::Int(i) => arguments.add(*i),
        Value::Uint(u) => match i64::try_from(*u) {
            Ok(i) => arguments.add(i),
            Err(_) => return Err(format!("{u} is larger than SQLite's 64-bit integers")),
        },
        Value::Float(f) => arguments.add(*f),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => arguments.add(s.clone()),
        Value::Bytes(b) => arguments.add(b.clone()),
        Value::Json(_) | Value::Array(_) => arguments.add(value.to_json().to_string()),
    };
    result.map_err(|e| e.to_string())
}

pub(crate) async fn start(
    pool: &SqlitePool,
    request: QueryRequest,
) -> Result<Box<dyn ResultStream>> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| error::map(e, "acquiring a connection", false))?;
    let timeout = request
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.into()));
    let interrupt = Interrupt::arm(&mut conn, timeout).await?;

    let statement = (&mut *conn)
        .prepare(&request.sql)
        .await
        .map_err(|e| error::map(e, "preparing the query", interrupt.deadline_passed()))?;
    let columns: Vec<ColumnMeta> = statement
        .columns()
        .iter()
        .map(|c| {
            let declared = c.type_info().name().to_owned();
            ColumnMeta {
                name: c.name().to_owned(),
                common_type: types::common_type(&declared),
                data_type: declared.to_ascii_lowercase(),
            }
        })
        .collect();
    let expected = match statement.parameters() {
        Some(Either::Right(n)) => n,
        Some(Either::Left(types)) => types.len(),
        None => 0,
    };
    if expected != request.params.len() {
        return Err(Error::InvalidInput(format!(
            "the query takes {expected} parameter(s), {} given",
            request.params.len()
        )));
    }
    let mut arguments = SqliteArguments::default();
    for (i, value) in request.params.iter().enumerate() {
        bind(&mut arguments, value)
            .map_err(|e| Error::InvalidInput(format!("parameter {}: {e}", i + 1)))?;
    }

    let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
    let kinds: Vec<CommonType> = columns.iter().map(|c| c.common_type).collect();
    tokio::spawn(produce(conn, request.sql, arguments, kinds, tx, interrupt));
    // Wait for the first event, so that an error at the first step is the query's error.
    let first = rx.recv().await;
    Ok(Box::new(ChannelResultStream::new(columns, first, rx)))
}

async fn produce(
    mut conn: PoolConnection<Sqlite>,
    sql: String,
    arguments: SqliteArguments<'static>,
    kinds: Vec<CommonType>,
    tx: mpsc::Sender<StreamEvent>,
    interrupt: Interrupt,
) {
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
    let last = {
        let mut rows = (&mut *conn).fetch_many(sqlx::query_with(&sql, arguments));
        let mut rows_affected = 0;
        loop {
            let event = match rows.next().await {
                None => StreamEvent::Done {
                    rows_affected: Some(rows_affected),
                },
                Some(Err(e)) => StreamEvent::Failed(error::map(
                    e,
                    "running the query",
                    interrupt.deadline_passed(),
                )),
                Some(Ok(Either::Left(done))) => {
                    rows_affected += done.rows_affected();
                    continue;
                }
                Some(Ok(Either::Right(row))) => {
                    let decoded: std::result::Result<Row, Error> = kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| {
                            let raw = row
                                .try_get_raw(i)
                                .map_err(|e| error::map(e, "reading a row", false))?;
                            types::decode(raw, *kind)
                                .map_err(|e| Error::Unsupported(format!("column {}: {e}", i + 1)))
                        })
                        .collect();
                    match decoded {
                        Ok(r) => batch.push(r),
                        Err(e) => break Some(StreamEvent::Failed(e)),
                    }
                    if batch.len() < BATCH_ROWS {
                        continue;
                    }
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    if tx.send(StreamEvent::Rows(full)).await.is_err() {
                        // The consumer is gone: interrupt the statement, let it unwind.
                        interrupt.stop();
                        while rows.next().await.is_some() {}
                        break None;
                    }
                    continue;
                }
            };
            break Some(event);
        }
    };
    if let Some(last) = last {
        if !batch.is_empty() {
            let _ = tx.send(StreamEvent::Rows(batch)).await;
        }
        let _ = tx.send(last).await;
    }
    disarm(&mut conn).await;
}

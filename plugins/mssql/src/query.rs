//! Running a query as a stream of row batches.
//!
//! A task owns the pooled client for the query's life. A deadline, or a consumer that went
//! away, is answered with a TDS attention signal (`cancel_query`), which makes SQL Server
//! abort the batch; once the server acknowledges it, the client is clean and goes back to
//! the pool. Only the first result set is returned: a batch of several statements streams
//! the first one's rows and is then cancelled.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use plugboard_connector::{
    ChannelResultStream, ColumnMeta, CommonType, Error, QueryRequest, Result, ResultStream, Row,
    StreamEvent, Value,
};
use tiberius::{ColumnType, Query, QueryItem};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connect::{Lease, Pool};
use crate::error;

const BATCH_ROWS: usize = 256;
const CHANNEL_BATCHES: usize = 2;

/// A result column's type as SQL Server names it, and its common type.
pub(crate) fn column_type(ty: ColumnType) -> (&'static str, CommonType) {
    use ColumnType as T;
    match ty {
        T::Bit | T::Bitn => ("bit", CommonType::Boolean),
        T::Int1 => ("tinyint", CommonType::Int16),
        T::Int2 => ("smallint", CommonType::Int16),
        T::Int4 => ("int", CommonType::Int32),
        T::Int8 => ("bigint", CommonType::Int64),
        // A nullable integer whose width the metadata leaves to the value.
        T::Intn => ("int", CommonType::Int64),
        T::Float4 => ("real", CommonType::Float32),
        T::Float8 | T::Floatn => ("float", CommonType::Float64),
        T::Money | T::Money4 => ("money", CommonType::Decimal),
        T::Decimaln | T::Numericn => ("decimal", CommonType::Decimal),
        T::Guid => ("uniqueidentifier", CommonType::Uuid),
        T::Datetime | T::Datetimen => ("datetime", CommonType::Timestamp),
        T::Datetime4 => ("smalldatetime", CommonType::Timestamp),
        T::Daten => ("date", CommonType::Date),
        T::Timen => ("time", CommonType::Time),
        T::Datetime2 => ("datetime2", CommonType::Timestamp),
        T::DatetimeOffsetn => ("datetimeoffset", CommonType::Timestamptz),
        T::BigVarChar | T::BigChar | T::Text => ("varchar", CommonType::Text),
        T::NVarchar | T::NChar | T::NText => ("nvarchar", CommonType::Text),
        T::BigVarBin | T::BigBinary | T::Image => ("varbinary", CommonType::Binary),
        T::Xml => ("xml", CommonType::Text),
        T::Null => ("null", CommonType::Other),
        _ => ("other", CommonType::Other),
    }
}

fn bind(query: &mut Query<'_>, value: &Value) -> std::result::Result<(), String> {
    match value {
        Value::Null => query.bind(Option::<String>::None),
        Value::Boolean(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        Value::Uint(u) => {
            query.bind(i64::try_from(*u).map_err(|_| format!("{u} does not fit a bigint"))?)
        }
        Value::Float(f) => query.bind(*f),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => query.bind(s.clone()),
        Value::Bytes(b) => query.bind(b.clone()),
        Value::Json(_) | Value::Array(_) => query.bind(value.to_json().to_string()),
    }
    Ok(())
}

pub(crate) async fn start(pool: Arc<Pool>, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
    let mut query = Query::new(request.sql.clone());
    for (i, value) in request.params.iter().enumerate() {
        bind(&mut query, value)
            .map_err(|e| Error::InvalidInput(format!("parameter @P{}: {e}", i + 1)))?;
    }
    let lease = pool.acquire().await?;
    let deadline = request
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms.into()));
    let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
    let (columns_tx, columns_rx) = oneshot::channel();
    tokio::spawn(produce(pool, lease, query, deadline, columns_tx, tx));
    // The producer answers with the columns, or with the error that prevented them.
    match columns_rx.await {
        Ok(columns) => {
            let first = rx.recv().await;
            Ok(Box::new(ChannelResultStream::new(columns, first, rx)))
        }
        Err(_) => match rx.recv().await {
            Some(StreamEvent::Failed(e)) => Err(e),
            _ => Err(Error::Connection(
                "the query's connection ended early".into(),
            )),
        },
    }
}

/// Waits for `future` until the deadline, if there is one; `None` past it.
async fn until<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, future).await.ok(),
        None => Some(future.await),
    }
}

enum Ending {
    Done,
    /// The server rejected the query; the client is clean.
    Rejected(Error),
    /// The transport failed: the client is not reusable.
    Broken(Error),
    /// The deadline passed, or the consumer left: cancel on the server.
    Cancel {
        timed_out: bool,
    },
}

async fn produce(
    pool: Arc<Pool>,
    mut lease: Lease,
    query: Query<'static>,
    deadline: Option<Instant>,
    columns_tx: oneshot::Sender<Vec<ColumnMeta>>,
    tx: mpsc::Sender<StreamEvent>,
) {
    let mut columns_tx = Some(columns_tx);
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
    let ending = 'run: {
        let mut stream = match until(deadline, query.query(&mut lease.client)).await {
            None => break 'run Ending::Cancel { timed_out: true },
            Some(Err(e @ tiberius::error::Error::Server(_))) => {
                break 'run Ending::Rejected(error::map(e, "running the query"));
            }
            Some(Err(e)) => break 'run Ending::Broken(error::map(e, "running the query")),
            Some(Ok(stream)) => stream,
        };
        let mut result_sets = 0;
        loop {
            let item = match until(deadline, stream.try_next()).await {
                None => break Ending::Cancel { timed_out: true },
                Some(Ok(item)) => item,
                Some(Err(e)) if error::is_cancellation(&e) => {
                    break Ending::Cancel { timed_out: true };
                }
                Some(Err(e @ tiberius::error::Error::Server(_))) => {
                    break Ending::Rejected(error::map(e, "running the query"));
                }
                Some(Err(e)) => break Ending::Broken(error::map(e, "running the query")),
            };
            match item {
                None => break Ending::Done,
                Some(QueryItem::Metadata(meta)) => {
                    result_sets += 1;
                    if result_sets > 1 {
                        // Only the first result set is returned.
                        break Ending::Cancel { timed_out: false };
                    }
                    let columns = meta
                        .columns()
                        .iter()
                        .map(|c| {
                            let (name, common) = column_type(c.column_type());
                            ColumnMeta {
                                name: c.name().to_owned(),
                                data_type: name.to_owned(),
                                common_type: common,
                            }
                        })
                        .collect();
                    if let Some(sender) = columns_tx.take() {
                        let _ = sender.send(columns);
                    }
                }
                Some(QueryItem::Row(row)) => {
                    batch.push(
                        row.cells()
                            .map(|(_, data)| crate::types::convert(data))
                            .collect(),
                    );
                    if batch.len() == BATCH_ROWS {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                        if tx.send(StreamEvent::Rows(full)).await.is_err() {
                            break Ending::Cancel { timed_out: false };
                        }
                    }
                }
            }
        }
    };
    // A statement without a result set sends no metadata: it has no columns. A failure
    // before any metadata drops the sender instead, so `start` reports the error itself.
    let failed = matches!(
        ending,
        Ending::Rejected(_) | Ending::Broken(_) | Ending::Cancel { timed_out: true }
    );
    if let (Some(sender), false) = (columns_tx.take(), failed) {
        let _ = sender.send(Vec::new());
    }
    let flush = |batch: Vec<Row>| async {
        if !batch.is_empty() {
            let _ = tx.send(StreamEvent::Rows(batch)).await;
        }
    };
    match ending {
        Ending::Done => {
            flush(batch).await;
            let _ = tx
                .send(StreamEvent::Done {
                    rows_affected: None,
                })
                .await;
            pool.release(lease);
        }
        Ending::Rejected(e) => {
            flush(batch).await;
            let _ = tx.send(StreamEvent::Failed(e)).await;
            pool.release(lease);
        }
        Ending::Broken(e) => {
            let _ = tx.send(StreamEvent::Failed(e)).await;
        }
        Ending::Cancel { timed_out } => {
            // Abort the batch on the server; only an acknowledged cancel leaves the client
            // clean enough to reuse.
            let cancelled =
                tokio::time::timeout(Duration::from_secs(10), lease.client.cancel_query()).await;
            if timed_out {
                let _ = tx
                    .send(StreamEvent::Failed(Error::Timeout(
                        "the query ran past its deadline and was cancelled on the server".into(),
                    )))
                    .await;
            } else {
                flush(batch).await;
                let _ = tx
                    .send(StreamEvent::Done {
                        rows_affected: None,
                    })
                    .await;
            }
            if matches!(cancelled, Ok(Ok(()))) {
                pool.release(lease);
            }
        }
    }
}

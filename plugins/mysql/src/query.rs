//! Running a query as a stream of row batches.
//!
//! A query runs as a prepared statement on a pooled connection whose id the plugin notes
//! first. Its deadline is enforced on the server with `KILL QUERY <id>` from a separate
//! connection, which works for every statement on both MySQL and MariaDB (unlike
//! MySQL's `max_execution_time`, for SELECT only, or MariaDB's `max_statement_time`). The same
//! kill stops a query whose consumer went away. Rows travel through the bounded channel
//! every native plugin shares, as sqlx's rows: the consumer decodes them as it takes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use plugboard_connector::{
    ChannelResultStream, ColumnMeta, Error, QueryRequest, Result, ResultStream, Row,
    StatementResult, StreamEvent, TransactionError, Value,
};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{
    Arguments as _, Column as _, ConnectOptions as _, Connection as _, Decode, Either,
    Executor as _, MySql, Row as _, Statement as _, TransactionManager as _, TypeInfo as _,
    ValueRef as _,
};
use tokio::sync::mpsc;

use crate::connect::{Pool, Target};
use crate::{error, types};

/// Rows per message from the producing task, and messages it may be ahead by (as the
/// PostgreSQL plugin's, whose streaming benchmark chose them).
const BATCH_ROWS: usize = 512;
const CHANNEL_BATCHES: usize = 16;

/// Stops a running query from outside its connection.
#[derive(Clone)]
struct Killer {
    options: MySqlConnectOptions,
    connection_id: u64,
    deadline: Option<Instant>,
    /// Set once the deadline's kill was sent: some statements (a lone `SLEEP()`) end
    /// without an error when killed, and must still be reported as timed out.
    fired: Arc<AtomicBool>,
}

impl Killer {
    fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Kills the query once `timeout` passes, unless the returned task is aborted first.
    fn watch(&self, timeout: Option<Duration>) -> Option<tokio::task::JoinHandle<()>> {
        timeout.map(|t| {
            let killer = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                killer.fired.store(true, Ordering::SeqCst);
                killer.kill().await;
            })
        })
    }

    /// `KILL QUERY` from a new connection (the pool may be exhausted by the very query).
    async fn kill(&self) {
        if let Ok(mut conn) = self.options.connect().await {
            let _ = sqlx::query(&format!("KILL QUERY {}", self.connection_id))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

fn bind(arguments: &mut MySqlArguments, value: &Value) -> std::result::Result<(), String> {
    let result = match value {
        Value::Null => arguments.add(Option::<i64>::None),
        Value::Boolean(b) => arguments.add(*b),
        Value::Int(i) => arguments.add(*i),
        Value::Uint(u) => arguments.add(*u),
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

/// Prepares the statement (from the connection's cache when it can); returns its columns
/// and the parameters bound, checked against the count it takes.
async fn prepare(
    conn: &mut MySqlConnection,
    request: &QueryRequest,
) -> Result<(Vec<ColumnMeta>, MySqlArguments)> {
    let statement = conn
        .prepare(&request.sql)
        .await
        .map_err(|e| error::map(e, "preparing the query", false))?;
    let columns = columns_of(&statement);
    check_parameter_count(&statement, request.params.len())?;
    let mut arguments = MySqlArguments::default();
    for (i, value) in request.params.iter().enumerate() {
        bind(&mut arguments, value)
            .map_err(|e| Error::InvalidInput(format!("parameter {}: {e}", i + 1)))?;
    }
    Ok((columns, arguments))
}

fn columns_of(statement: &sqlx::mysql::MySqlStatement<'_>) -> Vec<ColumnMeta> {
    statement
        .columns()
        .iter()
        .map(|c| {
            let name = c.type_info().name().to_owned();
            ColumnMeta {
                name: c.name().to_owned(),
                common_type: types::common_type(&name, None),
                data_type: name.to_ascii_lowercase(),
            }
        })
        .collect()
}

fn check_parameter_count(statement: &sqlx::mysql::MySqlStatement<'_>, given: usize) -> Result<()> {
    let expected = match statement.parameters() {
        Some(Either::Right(n)) => n,
        Some(Either::Left(types)) => types.len(),
        None => 0,
    };
    if expected != given {
        return Err(Error::InvalidInput(format!(
            "the query takes {expected} parameter(s), {given} given"
        )));
    }
    Ok(())
}

async fn connection_id(conn: &mut MySqlConnection) -> Result<u64> {
    sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(conn)
        .await
        .map_err(|e| error::map(e, "reading the connection id", false))
}

/// Opens the `READ ONLY` transaction a query on a read-only connection runs in. The pool
/// rolls it back when the connection is released, however the query ended.
async fn begin_read_only(conn: &mut MySqlConnection) -> Result<()> {
    <MySql as sqlx::Database>::TransactionManager::begin(
        conn,
        Some("START TRANSACTION READ ONLY".into()),
    )
    .await
    .map_err(|e| error::map(e, "starting a read-only transaction", false))
}

pub(crate) async fn start(
    pool: &Pool,
    target: &Target,
    request: QueryRequest,
) -> Result<Box<dyn ResultStream>> {
    let options = &target.options;
    let mut conn = pool.acquire().await?;
    let connection_id = connection_id(&mut conn).await?;
    if target.read_only {
        begin_read_only(&mut conn).await?;
    }
    let (columns, arguments) = prepare(&mut conn, &request).await?;

    let timeout = request
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.into()));
    let killer = Killer {
        options: options.clone(),
        connection_id,
        deadline: timeout.map(|t| Instant::now() + t),
        fired: Arc::new(AtomicBool::new(false)),
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
    let width = columns.len();
    tokio::spawn(produce(conn, request.sql, arguments, tx, killer, timeout));
    let first = rx.recv().await;
    let decode = move |row: MySqlRow| decode_row(&row, width);
    Ok(Box::new(ChannelResultStream::decoding(
        columns, first, rx, decode,
    )))
}

async fn produce(
    mut conn: PoolConnection<MySql>,
    sql: String,
    arguments: MySqlArguments,
    tx: mpsc::Sender<StreamEvent<MySqlRow>>,
    killer: Killer,
    timeout: Option<Duration>,
) {
    let watchdog = killer.watch(timeout);
    let mut batch: Vec<MySqlRow> = Vec::with_capacity(BATCH_ROWS);
    let last = {
        let mut rows = (&mut *conn).fetch_many(sqlx::query_with(&sql, arguments));
        let mut rows_affected = 0;
        loop {
            // While the server works (a long sort, a `SLEEP`), nothing is sent: watch for
            // the consumer leaving too, so a cancelled query stops now.
            let next = tokio::select! {
                next = rows.next() => next,
                () = tx.closed() => {
                    killer.kill().await;
                    while rows.next().await.is_some() {}
                    break None;
                }
            };
            match next {
                None => {
                    break Some(StreamEvent::Done {
                        rows_affected: Some(rows_affected),
                    });
                }
                Some(Err(e)) => {
                    break Some(StreamEvent::Failed(error::map(
                        e,
                        "running the query",
                        killer.deadline_passed(),
                    )));
                }
                Some(Ok(Either::Left(done))) => rows_affected += done.rows_affected(),
                Some(Ok(Either::Right(row))) => {
                    batch.push(row);
                    if batch.len() == BATCH_ROWS {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                        if tx.send(StreamEvent::Rows(full)).await.is_err() {
                            // The consumer is gone: stop the query on the server, then read
                            // the connection clean so it can go back to the pool.
                            killer.kill().await;
                            while rows.next().await.is_some() {}
                            break None;
                        }
                    }
                }
            }
        }
    };
    // The query is over: the watchdog must not kill whatever runs on this connection next.
    if let Some(w) = watchdog {
        w.abort();
    }
    let last = match last {
        Some(StreamEvent::Done { .. }) if killer.fired.load(Ordering::SeqCst) => {
            Some(StreamEvent::Failed(Error::Timeout(
                "the query ran past its deadline and was killed on the server".into(),
            )))
        }
        other => other,
    };
    if let Some(last) = last {
        if !batch.is_empty() {
            let _ = tx.send(StreamEvent::Rows(batch)).await;
        }
        let _ = tx.send(last).await;
    }
    drop(conn);
}

/// Runs `statements` in one transaction on one connection; see `Session::transaction`.
/// Each statement's deadline is enforced with `KILL QUERY`, as a lone query's is. sqlx's
/// transaction rolls back when dropped, so a failure, or the caller going away, leaves
/// nothing half-done.
pub(crate) async fn transaction(
    pool: &Pool,
    target: &Target,
    statements: Vec<QueryRequest>,
    max_rows: usize,
) -> std::result::Result<Vec<StatementResult>, TransactionError> {
    let mut conn = pool.acquire().await.map_err(TransactionError::outside)?;
    let connection_id = connection_id(&mut conn)
        .await
        .map_err(TransactionError::outside)?;
    let begin = if target.read_only {
        "START TRANSACTION READ ONLY"
    } else {
        "START TRANSACTION"
    };
    let mut tx = conn.begin_with(begin).await.map_err(|e| {
        TransactionError::outside(error::map(e, "beginning the transaction", false))
    })?;
    let mut results = Vec::with_capacity(statements.len());
    for (i, request) in statements.into_iter().enumerate() {
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()));
        let killer = Killer {
            options: target.options.clone(),
            connection_id,
            deadline: timeout.map(|t| Instant::now() + t),
            fired: Arc::new(AtomicBool::new(false)),
        };
        let watchdog = killer.watch(timeout);
        let result = run_statement(&mut tx, &request, max_rows, &killer).await;
        if let Some(w) = watchdog {
            w.abort();
        }
        let result = match result {
            Ok(_) if killer.fired.load(Ordering::SeqCst) => Err(Error::Timeout(
                "the statement ran past its deadline and was killed on the server".into(),
            )),
            other => other,
        };
        results.push(result.map_err(|e| TransactionError::at(i, e))?);
    }
    tx.commit().await.map_err(|e| {
        TransactionError::outside(error::map(e, "committing the transaction", false))
    })?;
    Ok(results)
}

/// One statement of a transaction, its rows held up to `max_rows` (the rest read and
/// dropped, so the connection stays usable).
async fn run_statement(
    conn: &mut MySqlConnection,
    request: &QueryRequest,
    max_rows: usize,
    killer: &Killer,
) -> Result<StatementResult> {
    let (columns, arguments) = prepare(conn, request).await?;
    let width = columns.len();
    let mut out = StatementResult::new(columns);
    let mut affected = 0;
    let mut rows = conn.fetch_many(sqlx::query_with(&request.sql, arguments));
    while let Some(item) = rows.next().await {
        match item.map_err(|e| error::map(e, "running the statement", killer.deadline_passed()))? {
            Either::Left(done) => affected += done.rows_affected(),
            Either::Right(_) if out.rows.len() == max_rows => out.truncated = true,
            Either::Right(row) => out.rows.push(decode_row(&row, width)?),
        }
    }
    if width == 0 {
        out.rows_affected = Some(affected);
    }
    Ok(out)
}

/// Decodes a row by the types the server sent with the result, which can be more precise
/// than the prepared statement's (a bare `?` column is typed NULL until executed).
fn decode_row(row: &MySqlRow, width: usize) -> Result<Row> {
    // Sized once, rather than grown from nothing as collecting `Result`s would.
    let mut values = Vec::with_capacity(width);
    for i in 0..width {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| error::map(e, "reading a row", false))?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        // The value's type is its column's, borrowed from the row rather than copied.
        let name = row.column(i).type_info().name();
        // Read the bytes as they came, whatever the type: the decoding is ours.
        let bytes = <&[u8] as Decode<MySql>>::decode(raw)
            .map_err(|e| Error::Unsupported(format!("column {}: {e}", i + 1)))?;
        values.push(
            types::decode(name, bytes)
                .map_err(|e| Error::Unsupported(format!("column {}: {e}", i + 1)))?,
        );
    }
    Ok(values)
}

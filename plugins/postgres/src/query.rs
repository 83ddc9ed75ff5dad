//! Running a query as a stream of row batches.
//!
//! The statement is prepared first (cached per connection, so a repeated query costs no
//! extra round trip): that yields the result's columns before any row arrives, and the
//! parameter types the server inferred, which the JSON parameters are encoded to. A task
//! then owns the pooled connection and feeds batches of sqlx's rows into a small bounded
//! channel, so however large the result, only a few batches are in memory; the consumer
//! decodes them as it takes them (see `ChannelResultStream::decoding`), so the task that
//! reads the socket does nothing else. If the consumer goes away before the end, the task
//! drops the connection instead of returning it to the pool: the server sees the socket
//! close and stops the query, rather than Plugboard reading the rest of a large result only
//! to throw it away.

use futures_util::StreamExt as _;
use plugboard_connector::{
    ChannelResultStream, ColumnMeta, Error, QueryRequest, Result, ResultStream, Row,
    StatementResult, StreamEvent, TransactionError, Value,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnection, PgRow, PgTypeInfo, PgTypeKind};
use sqlx::{
    Arguments as _, Column as _, Either, Executor as _, Row as _, Statement as _,
    TransactionManager as _, TypeInfo as _, ValueRef as _,
};
use sqlx::{Connection as _, Postgres};
use tokio::sync::{mpsc, oneshot};

use crate::connect::Pool;
use crate::error;
use crate::types::{self, ParamType};

/// Rows per message from the producing task; with [`CHANNEL_BATCHES`] this bounds what one
/// query holds in memory.
const BATCH_ROWS: usize = 512;
/// Batches the producer may be ahead by: 8,192 undecoded rows (about a megabyte for rows of
/// a few columns), slack enough that on a busy machine neither side often waits for the
/// other to be scheduled (the streaming benchmark was a little faster than with 4).
const CHANNEL_BATCHES: usize = 16;

/// How a column is decoded, worked out once per query rather than per value.
#[derive(Debug, Clone, Copy)]
struct Decoder {
    oid: u32,
    is_array: bool,
}

/// The statement timeout every pooled connection has while it is idle: the host's default
/// `timeout_ms`. A query asking for it costs no round trip to set it; one asking for another
/// sets it, and puts it back before the connection returns to the pool.
pub(crate) const DEFAULT_STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// A pooled connection whose statement timeout may differ from the default: if it is
/// dropped before the timeout is put back, it is closed rather than returned to the pool.
struct Checkout {
    conn: Option<PoolConnection<Postgres>>,
    /// The connection's timeout is not [`DEFAULT_STATEMENT_TIMEOUT_MS`].
    dirty: bool,
}

impl Checkout {
    fn conn(&mut self) -> &mut PoolConnection<Postgres> {
        self.conn.as_mut().expect("held until taken")
    }

    fn take(&mut self) -> (PoolConnection<Postgres>, bool) {
        (self.conn.take().expect("held until taken"), self.dirty)
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.dirty
        {
            drop(conn.detach());
        }
    }
}

/// Puts a connection's statement timeout back to the default before it returns to the pool;
/// `false` when that failed (the connection must then be closed).
async fn restore_timeout(conn: &mut PgConnection) -> bool {
    set_statement_timeout(conn, DEFAULT_STATEMENT_TIMEOUT_MS)
        .await
        .is_ok()
}

/// Returns a connection to the pool once its answer is out, its timeout put back first when
/// the query changed it (closing it instead when that fails).
async fn give_back(mut conn: PoolConnection<Postgres>, dirty_timeout: bool) {
    if dirty_timeout {
        if conn.is_in_transaction() {
            // A read-only query's transaction, perhaps aborted by its error.
            <Postgres as sqlx::Database>::TransactionManager::start_rollback(&mut conn);
        }
        if !restore_timeout(&mut conn).await {
            drop(conn.detach());
        }
    }
}

/// Sets the statement timeout for everything the connection runs next; `0` disables it.
pub(crate) async fn set_statement_timeout(
    conn: &mut sqlx::PgConnection,
    timeout_ms: u32,
) -> Result<()> {
    sqlx::query("SELECT set_config('statement_timeout', $1, false)")
        .bind(format!("{timeout_ms}ms"))
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| error::map(e, "setting the statement timeout"))
}

/// Opens the `READ ONLY` transaction a query on a read-only connection runs in. The pool
/// rolls it back when the connection is released, however the query ended.
async fn begin_read_only(conn: &mut PgConnection) -> Result<()> {
    <Postgres as sqlx::Database>::TransactionManager::begin(conn, Some("BEGIN READ ONLY".into()))
        .await
        .map_err(|e| error::map(e, "starting a read-only transaction"))
}

pub(crate) async fn start(
    pool: &Pool,
    read_only: bool,
    request: QueryRequest,
) -> Result<Box<dyn ResultStream>> {
    let timeout = request.timeout_ms.unwrap_or(0);
    let mut checkout = Checkout {
        conn: Some(pool.acquire().await?),
        dirty: false,
    };
    if timeout != DEFAULT_STATEMENT_TIMEOUT_MS {
        checkout.dirty = true;
        set_statement_timeout(checkout.conn(), timeout).await?;
    }

    // A cached statement whose result type changed under it (a column added to a table it
    // selects `*` from) fails once with "cached plan must not change result type"; the
    // producer then hands the connection back with its cache cleared, and the query is
    // prepared afresh.
    for retry_stale_plan in [true, false] {
        if read_only {
            begin_read_only(checkout.conn()).await?;
        }
        let (columns, decoders, arguments) = prepare(checkout.conn(), &request).await?;
        let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
        let (stale_tx, stale_rx) = oneshot::channel();
        let stale_tx = retry_stale_plan.then_some(stale_tx);
        let sql = request.sql.clone();
        let (conn, dirty) = checkout.take();
        tokio::spawn(produce(conn, dirty, sql, arguments, tx, stale_tx));
        // Either the connection comes back (a stale plan), or the first event arrives and
        // the producer has dropped its stale-plan sender, which disables that branch. The
        // producer hands the connection back before it drops `tx`, so checking that branch
        // first never mistakes the end of the channel for an answer.
        tokio::select! {
            biased;
            Ok(returned) = stale_rx => checkout.conn = Some(returned),
            first = rx.recv() => {
                let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                let decode = move |row: PgRow| decode_row(&row, &decoders, &names);
                return Ok(Box::new(ChannelResultStream::decoding(columns, first, rx, decode)));
            }
        }
    }
    Err(Error::Connection(
        "the query's plan went stale twice in a row".into(),
    ))
}

/// Prepares the statement (from the connection's cache when it can), and returns its
/// columns, how to decode them, and the parameters encoded to the types it takes.
async fn prepare(
    conn: &mut PgConnection,
    request: &QueryRequest,
) -> Result<(Vec<ColumnMeta>, Vec<Decoder>, PgArguments)> {
    let statement = conn
        .prepare(&request.sql)
        .await
        .map_err(|e| error::map(e, "preparing the query"))?;
    let mut columns = Vec::with_capacity(statement.columns().len());
    let mut decoders = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let ty = column.type_info();
        let (oid, category) = type_identity(ty);
        columns.push(ColumnMeta {
            name: column.name().to_owned(),
            data_type: ty.name().to_ascii_lowercase(),
            common_type: types::common_type(oid, category),
        });
        decoders.push(Decoder {
            oid,
            is_array: category == Some('A'),
        });
    }
    let param_types: Vec<ParamType> = match statement.parameters() {
        Some(Either::Left(types)) => types
            .iter()
            .map(|t| ParamType {
                oid: type_identity(t).0,
                element: match t.kind() {
                    PgTypeKind::Array(element) => Some(type_identity(element).0),
                    _ => None,
                },
            })
            .collect(),
        Some(Either::Right(n)) => vec![
            ParamType {
                oid: types::oid::TEXT,
                element: None
            };
            n
        ],
        None => Vec::new(),
    };
    if param_types.len() != request.params.len() {
        return Err(Error::InvalidInput(format!(
            "the query takes {} parameter(s) ($1..${}), {} given",
            param_types.len(),
            param_types.len(),
            request.params.len()
        )));
    }
    let mut arguments = PgArguments::default();
    for (i, (ty, value)) in param_types.iter().zip(&request.params).enumerate() {
        let bytes = types::encode(*ty, value)
            .map_err(|e| Error::InvalidInput(format!("parameter ${}: {e}", i + 1)))?;
        arguments
            .add(RawParam { oid: ty.oid, bytes })
            .map_err(|e| Error::InvalidInput(format!("parameter ${}: {e}", i + 1)))?;
    }
    Ok((columns, decoders, arguments))
}

/// How the producing loop ended.
enum Ending {
    /// Every row was read.
    Done { rows_affected: u64 },
    /// The server rejected the query; the connection is in a clean state after it.
    Rejected(Error),
    /// Rows are left unread: the consumer went away.
    Abandoned,
    /// The cached statement is stale (see [`start`]).
    StalePlan,
}

fn is_stale_plan(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("0A000") && db.message().contains("cached plan")
    })
}

/// Runs the query on `conn` and feeds its rows into `tx` in batches. With `stale`, a stale
/// cached plan met before any row hands the connection back through it instead.
async fn produce(
    mut conn: PoolConnection<Postgres>,
    dirty_timeout: bool,
    sql: String,
    arguments: PgArguments,
    tx: mpsc::Sender<StreamEvent<PgRow>>,
    stale: Option<oneshot::Sender<PoolConnection<Postgres>>>,
) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let ending = {
        let mut rows = (&mut *conn).fetch_many(sqlx::query_with(&sql, arguments));
        let mut rows_affected = 0;
        let mut sent_any = false;
        loop {
            // While the server works (a long sort, a `pg_sleep`), nothing is sent: watch
            // for the consumer leaving too, so a cancelled query stops now, not at its
            // first row.
            let next = tokio::select! {
                next = rows.next() => next,
                () = tx.closed() => break Ending::Abandoned,
            };
            match next {
                None => break Ending::Done { rows_affected },
                Some(Err(e))
                    if stale.is_some() && !sent_any && batch.is_empty() && is_stale_plan(&e) =>
                {
                    break Ending::StalePlan;
                }
                Some(Err(e)) => break Ending::Rejected(error::map(e, "running the query")),
                Some(Ok(Either::Left(done))) => rows_affected += done.rows_affected(),
                Some(Ok(Either::Right(row))) => batch.push(row),
            }
            if batch.len() == BATCH_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if tx.send(StreamEvent::Rows(full)).await.is_err() {
                    break Ending::Abandoned;
                }
                sent_any = true;
            }
        }
    };
    // A failed send below means the consumer left after the query ended: nothing to stop.
    let flush = |batch: Vec<PgRow>| async {
        if !batch.is_empty() {
            let _ = tx.send(StreamEvent::Rows(batch)).await;
        }
    };
    match ending {
        Ending::Done { rows_affected } => {
            flush(batch).await;
            let _ = tx
                .send(StreamEvent::Done {
                    rows_affected: Some(rows_affected),
                })
                .await;
            give_back(conn, dirty_timeout).await;
        }
        Ending::Rejected(e) => {
            flush(batch).await;
            let _ = tx.send(StreamEvent::Failed(e)).await;
            give_back(conn, dirty_timeout).await;
        }
        Ending::Abandoned => {
            // Do not hand a connection with unread rows back to the pool: closing its
            // socket makes the server stop the query instead of Plugboard reading the rest.
            drop(conn.detach());
        }
        Ending::StalePlan => {
            if conn.is_in_transaction() {
                // The failed statement aborted the read-only transaction; `start` opens
                // another.
                <Postgres as sqlx::Database>::TransactionManager::start_rollback(&mut conn);
            }
            if conn.clear_cached_statements().await.is_ok() {
                let _ = stale.expect("only with a stale-plan sender").send(conn);
            } else {
                drop(conn.detach());
                let _ = tx
                    .send(StreamEvent::Failed(Error::Connection(
                        "the connection failed while clearing its statement cache".into(),
                    )))
                    .await;
            }
        }
    }
}

/// Runs `statements` in one transaction on one connection; see `Session::transaction`.
/// sqlx's transaction rolls back when dropped, so a failure, or the caller going away,
/// leaves nothing half-done.
pub(crate) async fn transaction(
    pool: &Pool,
    read_only: bool,
    statements: Vec<QueryRequest>,
    max_rows: usize,
) -> std::result::Result<Vec<StatementResult>, TransactionError> {
    let mut conn = pool.acquire().await.map_err(TransactionError::outside)?;
    let begin = if read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    let mut tx = conn
        .begin_with(begin)
        .await
        .map_err(|e| TransactionError::outside(error::map(e, "beginning the transaction")))?;
    let mut results = Vec::with_capacity(statements.len());
    for (i, request) in statements.iter().enumerate() {
        let result = async {
            // `true`: the timeout holds for this statement's transaction only.
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(format!("{}ms", request.timeout_ms.unwrap_or(0)))
                .execute(&mut *tx)
                .await
                .map_err(|e| error::map(e, "setting the statement timeout"))?;
            let (columns, decoders, arguments) = prepare(&mut tx, request).await?;
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let mut out = StatementResult::new(columns);
            let mut affected = 0;
            let mut rows = (&mut *tx).fetch_many(sqlx::query_with(&request.sql, arguments));
            while let Some(item) = rows.next().await {
                match item.map_err(|e| error::map(e, "running the statement"))? {
                    Either::Left(done) => affected += done.rows_affected(),
                    Either::Right(_) if out.rows.len() == max_rows => out.truncated = true,
                    Either::Right(row) => out.rows.push(decode_row(&row, &decoders, &names)?),
                }
            }
            if out.columns.is_empty() {
                out.rows_affected = Some(affected);
            }
            Ok::<_, Error>(out)
        }
        .await;
        results.push(result.map_err(|e| TransactionError::at(i, e))?);
    }
    tx.commit()
        .await
        .map_err(|e| TransactionError::outside(error::map(e, "committing the transaction")))?;
    Ok(results)
}

/// A type's OID and `typcategory`-style class: `A` for arrays, `E` for enums.
fn type_identity(ty: &PgTypeInfo) -> (u32, Option<char>) {
    let oid = ty.oid().map(|o| o.0).unwrap_or(0);
    let category = match ty.kind() {
        PgTypeKind::Array(_) => Some('A'),
        PgTypeKind::Enum(_) => Some('E'),
        _ => None,
    };
    (oid, category)
}

fn decode_row(row: &PgRow, decoders: &[Decoder], names: &[String]) -> Result<Row> {
    // Sized once: collecting `Result`s would grow the row from nothing, a reallocation per
    // row of a large result.
    let mut values = Vec::with_capacity(decoders.len());
    for (i, d) in decoders.iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| error::map(e, "reading a row"))?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let bytes = raw
            .as_bytes()
            .map_err(|e| Error::Unsupported(format!("column {}: {e}", names[i])))?;
        values.push(
            types::decode(d.oid, d.is_array, bytes)
                .map_err(|e| Error::Unsupported(format!("column {}: {e}", names[i])))?,
        );
    }
    Ok(values)
}

/// A parameter already encoded in the binary form of its server-inferred type.
struct RawParam {
    oid: u32,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<sqlx::Postgres> for RawParam {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(types::oid::UNKNOWN))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for RawParam {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match &self.bytes {
            None => Ok(sqlx::encode::IsNull::Yes),
            Some(bytes) => {
                buf.extend_from_slice(bytes);
                Ok(sqlx::encode::IsNull::No)
            }
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(sqlx::postgres::types::Oid(self.oid)))
    }
}

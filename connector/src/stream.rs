//! A [`ResultStream`] fed through a bounded channel, for plugins whose driver yields rows
//! from a task that owns the connection.
//!
//! The producing task sends [`StreamEvent`]s; the bound on the channel is what keeps a large
//! result from piling up in memory, since the producer waits while the consumer is behind.
//! When the consumer drops the stream, the producer's next send fails: that is its signal
//! to stop the query on the server.
//!
//! A producer may send its driver's raw rows and leave decoding them to the consumer
//! ([`ChannelResultStream::decoding`]): the task reading the socket then does nothing else,
//! and each value is made, encoded and freed on one thread (no allocation crosses threads,
//! which glibc's allocator makes costly).

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::query::{ColumnMeta, ResultStream, Row};

/// What a producing task sends: rows (decoded, or its driver's to be decoded by the
/// consumer), then an end.
#[derive(Debug)]
pub enum StreamEvent<R = Row> {
    /// More rows, in order.
    Rows(Vec<R>),
    /// The result is exhausted.
    Done {
        /// Rows the statement affected, as the engine counts them; `None` when the engine
        /// does not say.
        rows_affected: Option<u64>,
    },
    /// The query failed; nothing follows.
    Failed(Error),
}

/// Rows handed out as they came.
type Identity = fn(Row) -> Result<Row>;

/// The consuming end: a [`ResultStream`] over the events of one query, turning each raw
/// row `R` into a [`Row`] with `D` as it is handed out.
pub struct ChannelResultStream<R = Row, D = Identity> {
    columns: Vec<ColumnMeta>,
    /// An event received before the stream was handed out (a plugin may wait for the first
    /// event to report an early failure from `query` itself).
    first: Option<StreamEvent<R>>,
    rx: mpsc::Receiver<StreamEvent<R>>,
    /// Rows received but not yet handed out, when a batch was larger than asked for.
    pending: std::vec::IntoIter<R>,
    decode: D,
    rows_affected: Option<u64>,
    done: bool,
}

impl ChannelResultStream {
    /// A stream of decoded rows over `rx`, whose first event, if already received, is
    /// `first`.
    pub fn new(
        columns: Vec<ColumnMeta>,
        first: Option<StreamEvent>,
        rx: mpsc::Receiver<StreamEvent>,
    ) -> ChannelResultStream {
        ChannelResultStream::decoding(columns, first, rx, Ok as Identity)
    }
}

impl<R, D> ChannelResultStream<R, D>
where
    R: Send,
    D: FnMut(R) -> Result<Row> + Send,
{
    /// A stream over `rx` whose rows are decoded by `decode` as they are handed out. A
    /// row that fails to decode ends the stream with that error.
    pub fn decoding(
        columns: Vec<ColumnMeta>,
        first: Option<StreamEvent<R>>,
        rx: mpsc::Receiver<StreamEvent<R>>,
        decode: D,
    ) -> ChannelResultStream<R, D> {
        ChannelResultStream {
            columns,
            first,
            rx,
            pending: Vec::new().into_iter(),
            decode,
            rows_affected: None,
            done: false,
        }
    }
}

#[async_trait]
impl<R, D> ResultStream for ChannelResultStream<R, D>
where
    R: Send,
    D: FnMut(R) -> Result<Row> + Send,
{
    fn columns(&self) -> &[ColumnMeta] {
        &self.columns
    }

    async fn next_batch(&mut self, max_rows: usize) -> Result<Option<Vec<Row>>> {
        let max_rows = max_rows.max(1);
        while self.pending.len() == 0 && !self.done {
            let event = match self.first.take() {
                Some(first) => Some(first),
                None => self.rx.recv().await,
            };
            match event {
                Some(StreamEvent::Rows(rows)) => self.pending = rows.into_iter(),
                Some(StreamEvent::Done { rows_affected }) => {
                    self.rows_affected = rows_affected;
                    self.done = true;
                }
                Some(StreamEvent::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Err(Error::Connection(
                        "the query's connection ended before its result did".into(),
                    ));
                }
            }
        }
        if self.pending.len() == 0 {
            return Ok(None);
        }
        let mut batch = Vec::with_capacity(self.pending.len().min(max_rows));
        for raw in self.pending.by_ref().take(max_rows) {
            match (self.decode)(raw) {
                Ok(row) => batch.push(row),
                Err(e) => {
                    self.done = true;
                    self.pending = Vec::new().into_iter();
                    return Err(e);
                }
            }
        }
        Ok(Some(batch))
    }

    fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{CommonType, Value};

    fn column() -> Vec<ColumnMeta> {
        vec![ColumnMeta {
            name: "n".into(),
            data_type: "int".into(),
            common_type: CommonType::Int32,
        }]
    }

    #[tokio::test]
    async fn batches_are_split_to_the_size_asked_and_end_with_the_count() {
        let (tx, rx) = mpsc::channel(2);
        let rows = |r: std::ops::Range<i64>| r.map(|i| vec![Value::Int(i)]).collect::<Vec<_>>();
        tokio::spawn(async move {
            tx.send(StreamEvent::Rows(rows(0..5))).await.unwrap();
            tx.send(StreamEvent::Rows(rows(5..6))).await.unwrap();
            tx.send(StreamEvent::Done {
                rows_affected: Some(6),
            })
            .await
            .unwrap();
        });
        let mut stream = ChannelResultStream::new(column(), None, rx);
        let mut sizes = Vec::new();
        while let Some(batch) = stream.next_batch(2).await.unwrap() {
            sizes.push(batch.len());
        }
        assert_eq!(sizes, [2, 2, 1, 1]);
        assert_eq!(stream.rows_affected(), Some(6));
        assert_eq!(stream.next_batch(2).await.unwrap(), None);
    }

    #[tokio::test]
    async fn raw_rows_are_decoded_as_handed_out_and_a_bad_one_ends_the_stream() {
        let (tx, rx) = mpsc::channel(2);
        tx.send(StreamEvent::Rows(vec![1_i64, 2, -1, 4]))
            .await
            .unwrap();
        let decode = |n: i64| {
            if n < 0 {
                Err(Error::Unsupported(format!("{n} is negative")))
            } else {
                Ok(vec![Value::Int(n * 10)])
            }
        };
        let mut stream = ChannelResultStream::decoding(column(), None, rx, decode);
        assert_eq!(
            stream.next_batch(2).await.unwrap(),
            Some(vec![vec![Value::Int(10)], vec![Value::Int(20)]])
        );
        assert_eq!(
            stream.next_batch(2).await,
            Err(Error::Unsupported("-1 is negative".into()))
        );
        assert_eq!(stream.next_batch(2).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_producer_that_vanishes_is_an_error_not_an_end() {
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        let mut stream = ChannelResultStream::new(column(), None, rx);
        assert!(matches!(
            stream.next_batch(10).await,
            Err(Error::Connection(_))
        ));
    }
}

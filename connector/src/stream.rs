//! A [`ResultStream`] fed through a bounded channel, for plugins whose driver yields rows
//! from a task that owns the connection.
//!
//! The producing task sends [`StreamEvent`]s; the bound on the channel is what keeps a large
//! result from piling up in memory, since the producer waits while the consumer is behind.
//! When the consumer drops the stream, the producer's next send fails: that is its signal
//! to stop the query on the server.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::query::{ColumnMeta, ResultStream, Row};

/// What a producing task sends.
#[derive(Debug)]
pub enum StreamEvent {
    /// More rows, in order.
    Rows(Vec<Row>),
    /// The result is exhausted.
    Done {
        /// Rows the statement affected, as the engine counts them; `None` when the engine
        /// does not say.
        rows_affected: Option<u64>,
    },
    /// The query failed; nothing follows.
    Failed(Error),
}

/// The consuming end: a [`ResultStream`] over the events of one query.
pub struct ChannelResultStream {
    columns: Vec<ColumnMeta>,
    /// An event received before the stream was handed out (a plugin may wait for the first
    /// event to report an early failure from `query` itself).
    first: Option<StreamEvent>,
    rx: mpsc::Receiver<StreamEvent>,
    /// Rows received but not yet handed out, when a batch was larger than asked for.
    pending: Vec<Row>,
    rows_affected: Option<u64>,
    done: bool,
}

impl ChannelResultStream {
    /// A stream over `rx`, whose first event, if already received, is `first`.
    pub fn new(
        columns: Vec<ColumnMeta>,
        first: Option<StreamEvent>,
        rx: mpsc::Receiver<StreamEvent>,
    ) -> ChannelResultStream {
        ChannelResultStream {
            columns,
            first,
            rx,
            pending: Vec::new(),
            rows_affected: None,
            done: false,
        }
    }
}

#[async_trait]
impl ResultStream for ChannelResultStream {
    fn columns(&self) -> &[ColumnMeta] {
        &self.columns
    }

    async fn next_batch(&mut self, max_rows: usize) -> Result<Option<Vec<Row>>> {
        let max_rows = max_rows.max(1);
        while self.pending.is_empty() && !self.done {
            let event = match self.first.take() {
                Some(first) => Some(first),
                None => self.rx.recv().await,
            };
            match event {
                Some(StreamEvent::Rows(rows)) => self.pending = rows,
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
        if self.pending.is_empty() {
            return Ok(None);
        }
        if self.pending.len() <= max_rows {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        let rest = self.pending.split_off(max_rows);
        Ok(Some(std::mem::replace(&mut self.pending, rest)))
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

//! Queries as JSON commands: `{"find": "people", "filter": {...}, "projection": {...},
//! "sort": {...}, "skip": n, "limit": n}` or `{"aggregate": "people", "pipeline": [...]}`.
//! Values in them may use MongoDB Extended JSON (`{"$oid": ...}`, `{"$date": ...}`).
//! Results stream from the cursor as documents in relaxed Extended JSON, one per row;
//! dropping the stream drops the cursor, which the driver kills on the server.

use std::time::Duration;

use futures_util::StreamExt as _;
use mongodb::bson::{Bson, Document};
use mongodb::{Client, Cursor};
use plugboard_connector::{
    ChannelResultStream, ColumnMeta, CommonType, Error, QueryRequest, Result, ResultStream,
    StreamEvent, Value,
};
use tokio::sync::mpsc;

use crate::error;

const BATCH_ROWS: usize = 256;
const CHANNEL_BATCHES: usize = 2;

fn document(
    command: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<Document>> {
    match command.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => match Bson::try_from(v.clone()) {
            Ok(Bson::Document(d)) => Ok(Some(d)),
            _ => Err(Error::InvalidInput(format!(
                "`{key}` is not a valid document"
            ))),
        },
        Some(_) => Err(Error::InvalidInput(format!("`{key}` must be an object"))),
    }
}

fn count(command: &serde_json::Map<String, serde_json::Value>, key: &str) -> Result<Option<u64>> {
    match command.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::InvalidInput(format!("`{key}` must be a non-negative integer"))),
    }
}

fn collection_name<'a>(
    command: &'a serde_json::Map<String, serde_json::Value>,
    verb: &str,
) -> Result<&'a str> {
    command
        .get(verb)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::InvalidInput(format!("`{verb}` must name a collection")))
}

/// Starts a command on `database`.
pub(crate) async fn start(
    client: &Client,
    database: &str,
    request: QueryRequest,
) -> Result<Box<dyn ResultStream>> {
    if !request.params.is_empty() {
        return Err(Error::InvalidInput(
            "MongoDB commands take no positional parameters: put the values in the command".into(),
        ));
    }
    let command = match serde_json::from_str(&request.sql) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            return Err(Error::InvalidInput(
                "a MongoDB query is a JSON command: {\"find\": \"collection\", \"filter\": {...}} or \
                 {\"aggregate\": \"collection\", \"pipeline\": [...]}"
                    .into(),
            ));
        }
    };
    let max_time = request
        .timeout_ms
        .map(|ms| Duration::from_millis(ms.into()));
    let db = client.database(database);
    let known = |allowed: &[&str]| -> Result<()> {
        match command.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::InvalidInput(format!(
                "unknown field `{k}` in the command; it takes {}",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    };
    let cursor: Cursor<Document> = if command.contains_key("find") {
        known(&["find", "filter", "projection", "sort", "skip", "limit"])?;
        let collection = db.collection::<Document>(collection_name(&command, "find")?);
        let mut find = collection.find(document(&command, "filter")?.unwrap_or_default());
        if let Some(p) = document(&command, "projection")? {
            find = find.projection(p);
        }
        if let Some(s) = document(&command, "sort")? {
            find = find.sort(s);
        }
        if let Some(n) = count(&command, "skip")? {
            find = find.skip(n);
        }
        if let Some(n) = count(&command, "limit")? {
            find = find.limit(n as i64);
        }
        if let Some(t) = max_time {
            find = find.max_time(t);
        }
        find.await.map_err(|e| error::map(e, "running find"))?
    } else if command.contains_key("aggregate") {
        known(&["aggregate", "pipeline"])?;
        let collection = db.collection::<Document>(collection_name(&command, "aggregate")?);
        let stages = match command.get("pipeline") {
            Some(serde_json::Value::Array(stages)) => stages
                .iter()
                .map(|s| match Bson::try_from(s.clone()) {
                    Ok(Bson::Document(d)) => Ok(d),
                    _ => Err(Error::InvalidInput(
                        "each pipeline stage must be an object".into(),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(Error::InvalidInput(
                    "`pipeline` must be an array of stages".into(),
                ));
            }
        };
        let mut aggregate = collection.aggregate(stages);
        if let Some(t) = max_time {
            aggregate = aggregate.max_time(t);
        }
        aggregate
            .await
            .map_err(|e| error::map(e, "running aggregate"))?
    } else {
        return Err(Error::Unsupported(
            "only find and aggregate commands are supported".into(),
        ));
    };

    let (tx, mut rx) = mpsc::channel(CHANNEL_BATCHES);
    tokio::spawn(produce(cursor, tx));
    let first = rx.recv().await;
    let columns = vec![ColumnMeta {
        name: "document".into(),
        data_type: "object".into(),
        common_type: CommonType::Document,
    }];
    Ok(Box::new(ChannelResultStream::new(columns, first, rx)))
}

async fn produce(mut cursor: Cursor<Document>, tx: mpsc::Sender<StreamEvent>) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    loop {
        match cursor.next().await {
            None => break,
            Some(Err(e)) => {
                if !batch.is_empty() {
                    let _ = tx.send(StreamEvent::Rows(std::mem::take(&mut batch))).await;
                }
                let _ = tx
                    .send(StreamEvent::Failed(error::map(e, "reading the cursor")))
                    .await;
                return;
            }
            Some(Ok(doc)) => {
                batch.push(vec![Value::Json(
                    Bson::Document(doc).into_relaxed_extjson(),
                )]);
                if batch.len() == BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    if tx.send(StreamEvent::Rows(full)).await.is_err() {
                        // Dropping the cursor kills it on the server.
                        return;
                    }
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(StreamEvent::Rows(batch)).await;
    }
    let _ = tx
        .send(StreamEvent::Done {
            rows_affected: None,
        })
        .await;
}

//! Result formats: JSON (the default, bounded by `limit`) and the streamed ones, NDJSON,
//! CSV and Arrow IPC, chosen with `?format=` or the `Accept` header.
//!
//! A streamed format is written by an [`Encoder`] batch by batch into the response body,
//! so a result of any size passes through in bounded memory.

mod arrow;
mod text;

use axum::http::StatusCode;
use plugboard_connector::{ColumnMeta, Row};

use super::error::ApiError;

/// A result format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Arrow,
}

impl Format {
    /// `?format=` wins; otherwise the first `Accept` type that names a format; otherwise
    /// JSON.
    pub fn negotiate(query: Option<&str>, accept: Option<&str>) -> Result<Format, ApiError> {
        if let Some(name) = query {
            return Format::by_name(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query_string",
                    format!("format `{name}` is not one of json, ndjson, csv, arrow"),
                )
            });
        }
        let Some(accept) = accept else {
            return Ok(Format::Json);
        };
        let mut any = false;
        for media in accept.split(',') {
            let media = media
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let format = match media.as_str() {
                "application/json" => Format::Json,
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                    Format::Ndjson
                }
                "text/csv" => Format::Csv,
                "application/vnd.apache.arrow.stream" => Format::Arrow,
                "*/*" | "application/*" | "" => {
                    any = true;
                    continue;
                }
                _ => continue,
            };
            return Ok(format);
        }
        if any {
            return Ok(Format::Json);
        }
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "results are served as application/json, application/x-ndjson, text/csv or \
             application/vnd.apache.arrow.stream",
        ))
    }

    fn by_name(name: &str) -> Option<Format> {
        match name {
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "arrow" => Some(Format::Arrow),
            _ => None,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }

    /// The encoder for a streamed format; `None` for JSON.
    pub fn encoder(self, columns: &[ColumnMeta]) -> Option<Box<dyn Encoder>> {
        match self {
            Format::Json => None,
            Format::Ndjson => Some(Box::new(text::Ndjson::new(columns))),
            Format::Csv => Some(Box::new(text::Csv::new(columns))),
            Format::Arrow => Some(Box::new(arrow::Arrow::new(columns))),
        }
    }
}

/// Rows to hand an encoder per call: few enough that a batch's values stay in the
/// processor's cache and their allocations are reused from one batch to the next.
pub const ENCODE_BATCH_ROWS: usize = 512;

/// Writes a streamed format: a header, batches of rows, an end.
pub trait Encoder: Send {
    /// What comes before the first row.
    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
    /// A batch of rows.
    fn rows(&mut self, rows: &[Row], out: &mut Vec<u8>) -> Result<(), String>;
    /// What ends a complete result.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
    /// What a failure after the first byte writes, if the format can say it in band (the
    /// body is then cut short either way, so no client takes it for complete).
    fn failure(&mut self, _code: &str, _message: &str, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, TimeUnit};
    use plugboard_connector::{CommonType, Value};

    use super::arrow::RECORD_BATCH_ROWS;

    use super::*;

    fn columns() -> Vec<ColumnMeta> {
        [
            ("id", CommonType::Int64),
            ("name, \"quoted\"", CommonType::Text),
            ("at", CommonType::Timestamptz),
            ("ok", CommonType::Boolean),
        ]
        .into_iter()
        .map(|(name, common_type)| ColumnMeta {
            name: name.into(),
            data_type: "x".into(),
            common_type,
        })
        .collect()
    }

    fn rows() -> Vec<Row> {
        vec![
            vec![
                Value::Int(1),
                Value::Text("a,b\n\"c\"".into()),
                Value::Timestamp("2024-02-29T12:00:00.5+00:00".into()),
                Value::Boolean(true),
            ],
            vec![Value::Int(2), Value::Null, Value::Null, Value::Null],
        ]
    }

    fn encode(format: Format) -> Vec<u8> {
        let mut encoder = format.encoder(&columns()).unwrap();
        let mut out = Vec::new();
        encoder.header(&mut out).unwrap();
        encoder.rows(&rows(), &mut out).unwrap();
        encoder.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn negotiation_prefers_the_query_string_then_accept() {
        let n = Format::negotiate;
        assert_eq!(n(None, None).unwrap(), Format::Json);
        assert_eq!(
            n(Some("csv"), Some("application/json")).unwrap(),
            Format::Csv
        );
        assert_eq!(n(None, Some("text/csv;q=0.9, */*")).unwrap(), Format::Csv);
        assert_eq!(n(None, Some("*/*")).unwrap(), Format::Json);
        assert_eq!(
            n(None, Some("application/vnd.apache.arrow.stream")).unwrap(),
            Format::Arrow
        );
        assert_eq!(
            n(Some("xml"), None).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            n(None, Some("text/html")).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn ndjson_is_one_object_per_row() {
        let text = String::from_utf8(encode(Format::Ndjson)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["name, \"quoted\""], "a,b\n\"c\"");
        assert_eq!(lines[1]["at"], serde_json::Value::Null);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = String::from_utf8(encode(Format::Csv)).unwrap();
        assert_eq!(
            text,
            "id,\"name, \"\"quoted\"\"\",at,ok\r\n\
             1,\"a,b\n\"\"c\"\"\",2024-02-29T12:00:00.5+00:00,true\r\n\
             2,,,\r\n"
        );
    }

    #[test]
    fn arrow_reads_back_typed() {
        let bytes = encode(Format::Arrow);
        let reader = arrow_ipc::reader::StreamReader::try_new(&bytes[..], None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.schema().field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let at = batch
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(at.value(0), 1_709_208_000_500_000);
        assert!(arrow_array::Array::is_null(at, 1));
    }

    #[test]
    fn arrow_gathers_small_calls_into_record_batches_of_8192_rows() {
        let mut encoder = Format::Arrow.encoder(&columns()).unwrap();
        let mut out = Vec::new();
        encoder.header(&mut out).unwrap();
        let total = RECORD_BATCH_ROWS * 2 + 100;
        let mut sizes_after_each_call = Vec::new();
        for start in (0..total).step_by(ENCODE_BATCH_ROWS) {
            let rows: Vec<Row> = (start..total.min(start + ENCODE_BATCH_ROWS))
                .map(|i| vec![Value::Int(i as i64), Value::Null, Value::Null, Value::Null])
                .collect();
            encoder.rows(&rows, &mut out).unwrap();
            sizes_after_each_call.push(out.len());
        }
        encoder.finish(&mut out).unwrap();
        // Bytes appear only when a record batch is complete.
        sizes_after_each_call.dedup();
        assert_eq!(
            sizes_after_each_call.len(),
            3,
            "schema, then two full batches"
        );
        let reader = arrow_ipc::reader::StreamReader::try_new(&out[..], None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [RECORD_BATCH_ROWS, RECORD_BATCH_ROWS, 100]);
        let ids = batches[2]
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(ids.value(99), total as i64 - 1);
    }

    #[test]
    fn a_value_arrow_cannot_hold_is_a_clear_error() {
        let mut encoder = Format::Arrow.encoder(&columns()).unwrap();
        let mut out = Vec::new();
        encoder.header(&mut out).unwrap();
        let bad = vec![vec![
            Value::Int(1),
            Value::Null,
            Value::Timestamp("infinity".into()),
            Value::Null,
        ]];
        let err = encoder.rows(&bad, &mut out).unwrap_err();
        assert!(
            err.contains("column `at`") && err.contains("infinity"),
            "{err}"
        );
    }
}

//! Result formats: JSON (the default, bounded by `limit`) and the streamed ones, NDJSON,
//! CSV and Arrow IPC, chosen with `?format=` or the `Accept` header.
//!
//! A streamed format is written by an [`Encoder`] batch by batch into the response body,
//! so a result of any size passes through in bounded memory.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use axum::http::StatusCode;
use base64::Engine as _;
use plugboard_connector::{ColumnMeta, CommonType, Row, Value};

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
            Format::Ndjson => Some(Box::new(Ndjson::new(columns))),
            Format::Csv => Some(Box::new(Csv::new(columns))),
            Format::Arrow => Some(Box::new(Arrow::new(columns))),
        }
    }
}

/// Rows a text format encodes per call: few enough that a batch's values stay in the
/// processor's cache and their allocations are reused from one batch to the next.
const TEXT_BATCH_ROWS: usize = 512;
/// Rows per Arrow record batch: enough that each batch's fixed cost (its message, a
/// builder per column) is spread thin.
const RECORD_BATCH_ROWS: usize = 8_192;

/// Writes a streamed format: a header, batches of rows, an end.
pub trait Encoder: Send {
    /// Rows this encoder takes per [`Encoder::rows`] call (fewer at the end of a result).
    fn batch_rows(&self) -> usize {
        TEXT_BATCH_ROWS
    }
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

/// One JSON object per row, keyed by column name.
struct Ndjson {
    /// `"name":` per column, escaped once.
    keys: Vec<Vec<u8>>,
}

impl Ndjson {
    fn new(columns: &[ColumnMeta]) -> Ndjson {
        let keys = columns
            .iter()
            .map(|c| {
                let mut key = serde_json::to_vec(&c.name).expect("a string serializes");
                key.push(b':');
                key
            })
            .collect();
        Ndjson { keys }
    }
}

impl Encoder for Ndjson {
    fn header(&mut self, _out: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn rows(&mut self, rows: &[Row], out: &mut Vec<u8>) -> Result<(), String> {
        for row in rows {
            out.push(b'{');
            for (i, (key, value)) in self.keys.iter().zip(row).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                write_json(value, out);
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn failure(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        let line = serde_json::json!({ "error": { "code": code, "message": message } });
        serde_json::to_writer(&mut *out, &line).expect("writing to a Vec");
        out.push(b'\n');
    }
}

/// A value as JSON, the way [`Value::to_json`] shows it, written without building a tree.
fn write_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Uint(u) => out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes()),
        Value::Float(f) if f.is_finite() => to_json(f, out),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => to_json(s, out),
        Value::Float(_) | Value::Bytes(_) | Value::Array(_) => to_json(&value.to_json(), out),
        Value::Json(j) => to_json(j, out),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("writing to a Vec");
}

/// RFC 4180 CSV with a header row; NULL is an empty field, bytes are base64, JSON and
/// arrays are their JSON text.
struct Csv {
    names: Vec<String>,
}

impl Csv {
    fn new(columns: &[ColumnMeta]) -> Csv {
        Csv {
            names: columns.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

fn write_csv_field(text: &str, out: &mut Vec<u8>) {
    if text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for part in text.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

impl Encoder for Csv {
    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_csv_field(name, out);
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn rows(&mut self, rows: &[Row], out: &mut Vec<u8>) -> Result<(), String> {
        for row in rows {
            for (i, value) in row.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match value {
                    Value::Null => {}
                    Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                    Value::Int(n) => {
                        out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                    }
                    Value::Uint(n) => {
                        out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                    }
                    Value::Float(f) => write_float(*f, out),
                    // Temporal and decimal text too: a WASM plugin's is whatever it sent.
                    Value::Decimal(s)
                    | Value::Text(s)
                    | Value::Date(s)
                    | Value::Time(s)
                    | Value::Timestamp(s) => write_csv_field(s, out),
                    Value::Bytes(b) => out.extend_from_slice(
                        base64::engine::general_purpose::STANDARD
                            .encode(b)
                            .as_bytes(),
                    ),
                    Value::Json(_) | Value::Array(_) => {
                        write_csv_field(&value.to_json().to_string(), out)
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }
}

/// A float in the fewest digits that read back as the same float, never with an exponent
/// (`1`, `0.25`, `100000000000000000000`), as Rust's `Display` writes it; through zmij (as
/// NDJSON's serde_json writes floats) for the common magnitudes, several times faster on a
/// column of millions. Where 17 digits are needed, zmij's last digit may differ from
/// `Display`'s: both read back as the same float.
fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() && (f == 0.0 || (1e-5..1e16).contains(&f.abs())) {
        let mut buffer = zmij::Buffer::new();
        let text = buffer.format_finite(f);
        if !text.contains('e') {
            out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
            return;
        }
    }
    use std::io::Write as _;
    write!(out, "{f}").expect("writing to a Vec");
}

/// How a column's values become Arrow.
#[derive(Debug, Clone, Copy)]
enum ArrowKind {
    Boolean,
    Int,
    Float,
    Binary,
    Date,
    Timestamp,
    Timestamptz,
    /// Everything else, as text: decimals keep every digit, JSON is its text.
    Text,
}

impl ArrowKind {
    fn of(common: CommonType) -> ArrowKind {
        match common {
            CommonType::Boolean => ArrowKind::Boolean,
            CommonType::Int16 | CommonType::Int32 | CommonType::Int64 => ArrowKind::Int,
            CommonType::Float32 | CommonType::Float64 => ArrowKind::Float,
            CommonType::Binary => ArrowKind::Binary,
            CommonType::Date => ArrowKind::Date,
            CommonType::Timestamp => ArrowKind::Timestamp,
            CommonType::Timestamptz => ArrowKind::Timestamptz,
            _ => ArrowKind::Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            ArrowKind::Boolean => DataType::Boolean,
            ArrowKind::Int => DataType::Int64,
            ArrowKind::Float => DataType::Float64,
            ArrowKind::Binary => DataType::Binary,
            ArrowKind::Date => DataType::Date32,
            ArrowKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ArrowKind::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ArrowKind::Text => DataType::Utf8,
        }
    }
}

/// The Arrow IPC stream format: a schema message, one record batch per pulled batch, an
/// end-of-stream marker.
struct Arrow {
    schema: Arc<Schema>,
    kinds: Vec<ArrowKind>,
    names: Vec<String>,
    writer: Option<StreamWriter<Vec<u8>>>,
}

impl Arrow {
    fn new(columns: &[ColumnMeta]) -> Arrow {
        let kinds: Vec<ArrowKind> = columns
            .iter()
            .map(|c| ArrowKind::of(c.common_type))
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&kinds)
            .map(|(c, k)| Field::new(&c.name, k.data_type(), true))
            .collect();
        Arrow {
            schema: Arc::new(Schema::new(fields)),
            kinds,
            names: columns.iter().map(|c| c.name.clone()).collect(),
            writer: None,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        if let Some(writer) = &mut self.writer {
            out.append(writer.get_mut());
        }
    }

    fn column(&self, index: usize, rows: &[Row]) -> Result<ArrayRef, String> {
        let name = &self.names[index];
        let bad = |v: &Value| {
            format!(
                "column `{name}`: a {} value (`{}`) cannot be written as Arrow {}; ask for \
                 ndjson or csv, or cast it in the query",
                v.kind(),
                v.to_json(),
                self.kinds[index].data_type()
            )
        };
        let values = rows.iter().map(|r| &r[index]);
        let mut builder: Box<dyn ArrayBuilder> = match self.kinds[index] {
            ArrowKind::Boolean => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Boolean(x) => b.append_value(*x),
                        other => return Err(bad(other)),
                    }
                }
                Box::new(b)
            }
            ArrowKind::Int => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Int(x) => b.append_value(*x),
                        Value::Uint(x) => b.append_value(i64::try_from(*x).map_err(|_| bad(v))?),
                        other => return Err(bad(other)),
                    }
                }
                Box::new(b)
            }
            ArrowKind::Float => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Float(x) => b.append_value(*x),
                        Value::Int(x) => b.append_value(*x as f64),
                        other => return Err(bad(other)),
                    }
                }
                Box::new(b)
            }
            ArrowKind::Binary => {
                let mut b = BinaryBuilder::with_capacity(rows.len(), rows.len() * 16);
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Bytes(x) => b.append_value(x),
                        other => return Err(bad(other)),
                    }
                }
                Box::new(b)
            }
            ArrowKind::Date => {
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
                let mut b = Date32Builder::with_capacity(rows.len());
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Date(s) => {
                            let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                                .map_err(|_| bad(v))?;
                            let days = (date - epoch).num_days();
                            b.append_value(i32::try_from(days).map_err(|_| bad(v))?);
                        }
                        other => return Err(bad(other)),
                    }
                }
                Box::new(b)
            }
            kind @ (ArrowKind::Timestamp | ArrowKind::Timestamptz) => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Timestamp(s) => {
                            let micros = if matches!(kind, ArrowKind::Timestamptz) {
                                chrono::DateTime::parse_from_rfc3339(s)
                                    .map(|t| t.timestamp_micros())
                            } else {
                                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                                    .map(|t| t.and_utc().timestamp_micros())
                            };
                            b.append_value(micros.map_err(|_| bad(v))?);
                        }
                        other => return Err(bad(other)),
                    }
                }
                let b = b.with_timezone_opt(matches!(kind, ArrowKind::Timestamptz).then(|| "UTC"));
                Box::new(b)
            }
            ArrowKind::Text => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for v in values {
                    match v {
                        Value::Null => b.append_null(),
                        Value::Decimal(s)
                        | Value::Text(s)
                        | Value::Date(s)
                        | Value::Time(s)
                        | Value::Timestamp(s) => b.append_value(s),
                        Value::Json(j) => b.append_value(j.to_string()),
                        other => match other.to_json() {
                            serde_json::Value::String(s) => b.append_value(s),
                            json => b.append_value(json.to_string()),
                        },
                    }
                }
                Box::new(b)
            }
        };
        Ok(builder.finish())
    }
}

impl Encoder for Arrow {
    fn batch_rows(&self) -> usize {
        RECORD_BATCH_ROWS
    }

    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let writer = StreamWriter::try_new(Vec::new(), &self.schema).map_err(|e| e.to_string())?;
        self.writer = Some(writer);
        self.drain(out);
        Ok(())
    }

    fn rows(&mut self, rows: &[Row], out: &mut Vec<u8>) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = (0..self.kinds.len())
            .map(|i| self.column(i, rows))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = if columns.is_empty() {
            RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
            )
        } else {
            RecordBatch::try_new(self.schema.clone(), columns)
        }
        .map_err(|e| e.to_string())?;
        let writer = self.writer.as_mut().expect("the header was written");
        writer.write(&batch).map_err(|e| e.to_string())?;
        self.drain(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let writer = self.writer.as_mut().expect("the header was written");
        writer.finish().map_err(|e| e.to_string())?;
        self.drain(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_in_the_fewest_digits_without_exponent() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut samples = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.25,
            0.1,
            1e-5,
            9.99e-6,
            1e15,
            1e16,
            123456.789,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            2.5e-7,
            1e21,
        ];
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Any bit pattern, and values of everyday magnitudes with few digits.
            samples.push(f64::from_bits(seed));
            samples.push((seed % 2_000_000) as f64 / 64.0 - 15_000.0);
        }
        for f in samples.into_iter().filter(|f| f.is_finite()) {
            let mut out = Vec::new();
            write_float(f, &mut out);
            let text = String::from_utf8(out).unwrap();
            let display = f.to_string();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                f.to_bits(),
                "{f:e}: {text}"
            );
            assert!(!text.contains('e'), "{f:e}: {text}");
            assert_eq!(text.len(), display.len(), "{f:e}: {text} vs {display}");
        }
    }

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

//! Arrow IPC: each batch of rows becomes one record batch, built column by column through
//! the `arrow` crates' builders.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use plugboard_connector::{ColumnMeta, CommonType, Row, Value};

use super::{Encoder, RECORD_BATCH_ROWS};

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
pub(super) struct Arrow {
    schema: Arc<Schema>,
    kinds: Vec<ArrowKind>,
    names: Vec<String>,
    writer: Option<StreamWriter<Vec<u8>>>,
}

impl Arrow {
    pub(super) fn new(columns: &[ColumnMeta]) -> Arrow {
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

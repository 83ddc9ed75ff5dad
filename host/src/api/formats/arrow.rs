//! Arrow IPC: rows are appended to one `arrow` builder per column, and every
//! [`RECORD_BATCH_ROWS`] rows (and at the end) the builders become a record batch.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use plugboard_connector::{ColumnMeta, CommonType, Row, Value};

use super::Encoder;

/// Rows per record batch: enough that each batch's fixed cost (its message, an array per
/// column) is spread thin.
pub(super) const RECORD_BATCH_ROWS: usize = 8_192;

/// The time zone of time-zone-aware timestamps, which are sent in UTC.
const UTC: &str = "UTC";

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
            ArrowKind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            ArrowKind::Text => DataType::Utf8,
        }
    }
}

/// One column's values on their way into the next record batch.
enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    /// With the time zone, for `Timestamptz`.
    Timestamp(TimestampMicrosecondBuilder, Option<&'static str>),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(kind: ArrowKind) -> ColumnBuilder {
        let rows = RECORD_BATCH_ROWS;
        match kind {
            ArrowKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ArrowKind::Int => ColumnBuilder::Int(Int64Builder::with_capacity(rows)),
            ArrowKind::Float => ColumnBuilder::Float(Float64Builder::with_capacity(rows)),
            ArrowKind::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(rows, rows * 16))
            }
            ArrowKind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            ArrowKind::Timestamp | ArrowKind::Timestamptz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows),
                matches!(kind, ArrowKind::Timestamptz).then_some(UTC),
            ),
            ArrowKind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
        }
    }

    /// Appends `value`; `false` when the column's Arrow type cannot hold it.
    fn append(&mut self, value: &Value) -> bool {
        match (self, value) {
            (ColumnBuilder::Boolean(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Boolean(b), Value::Boolean(x)) => b.append_value(*x),
            (ColumnBuilder::Int(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Int(b), Value::Int(x)) => b.append_value(*x),
            (ColumnBuilder::Int(b), Value::Uint(x)) => match i64::try_from(*x) {
                Ok(x) => b.append_value(x),
                Err(_) => return false,
            },
            (ColumnBuilder::Float(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Float(b), Value::Float(x)) => b.append_value(*x),
            (ColumnBuilder::Float(b), Value::Int(x)) => b.append_value(*x as f64),
            (ColumnBuilder::Binary(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Binary(b), Value::Bytes(x)) => b.append_value(x),
            (ColumnBuilder::Date(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Date(b), Value::Date(s)) => match iso::date_days(s) {
                Some(days) => b.append_value(days),
                None => return false,
            },
            (ColumnBuilder::Timestamp(b, _), Value::Null) => b.append_null(),
            (ColumnBuilder::Timestamp(b, zone), Value::Timestamp(s)) => {
                match iso::timestamp_micros(s, zone.is_some()) {
                    Some(micros) => b.append_value(micros),
                    None => return false,
                }
            }
            (ColumnBuilder::Text(b), value) => match value {
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
            },
            _ => return false,
        }
        true
    }

    /// The values appended so far, as an array; the builder starts empty again.
    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, zone) => {
                Arc::new(b.finish().with_timezone_opt(zone.map(|z| z.to_owned())))
            }
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// The Arrow IPC stream format: a schema message, record batches of up to
/// [`RECORD_BATCH_ROWS`] rows, an end-of-stream marker. Rows are appended to the column
/// builders as they arrive, so only the batch being built is held, in Arrow's compact form.
pub(super) struct Arrow {
    /// The columns' names and Arrow types.
    schema: Arc<Schema>,
    builders: Vec<ColumnBuilder>,
    /// Rows in the builders.
    pending: usize,
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
            builders: kinds.iter().map(|k| ColumnBuilder::new(*k)).collect(),
            pending: 0,
            writer: None,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        if let Some(writer) = &mut self.writer {
            out.append(writer.get_mut());
        }
    }

    /// Writes the rows in the builders as one record batch.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(self.pending));
        self.pending = 0;
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| e.to_string())?;
        let writer = self.writer.as_mut().expect("the header was written");
        writer.write(&batch).map_err(|e| e.to_string())?;
        self.drain(out);
        Ok(())
    }

    fn cannot_hold(&self, index: usize, value: &Value) -> String {
        let field = self.schema.field(index);
        format!(
            "column `{}`: a {} value (`{}`) cannot be written as Arrow {}; ask for ndjson or \
             csv, or cast it in the query",
            field.name(),
            value.kind(),
            value.to_json(),
            field.data_type()
        )
    }
}

impl Encoder for Arrow {
    fn header(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let writer = StreamWriter::try_new(Vec::new(), &self.schema).map_err(|e| e.to_string())?;
        self.writer = Some(writer);
        self.drain(out);
        Ok(())
    }

    fn rows(&mut self, rows: &[Row], out: &mut Vec<u8>) -> Result<(), String> {
        for row in rows {
            for (i, (builder, value)) in self.builders.iter_mut().zip(row).enumerate() {
                if !builder.append(value) {
                    return Err(self.cannot_hold(i, value));
                }
            }
            self.pending += 1;
            if self.pending == RECORD_BATCH_ROWS {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        self.flush(out)?;
        let writer = self.writer.as_mut().expect("the header was written");
        writer.finish().map_err(|e| e.to_string())?;
        self.drain(out);
        Ok(())
    }
}

/// Reading back the ISO-8601 dates and timestamps plugins send. The common shapes
/// (`2024-02-29`, `2024-02-29T12:00:00[.ffffff][Z|±HH:MM]`) are read digit by digit:
/// chrono's general parsers were the largest single cost of an Arrow result with a
/// timestamp column. Anything else (other years, leap seconds, other spellings) goes to
/// chrono, so what is accepted, and its value, is chrono's either way; the tests compare
/// the two.
mod iso {
    /// Days since 1970-01-01 of a `YYYY-MM-DD` date.
    pub(super) fn date_days(s: &str) -> Option<i32> {
        fast_date(s.as_bytes())
            .map(|(y, m, d)| days_from_civil(y, m, d))
            .and_then(|days| i32::try_from(days).ok())
            .or_else(|| chrono_date_days(s))
    }

    fn chrono_date_days(s: &str) -> Option<i32> {
        let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
        i32::try_from((date - epoch).num_days()).ok()
    }

    /// Microseconds since 1970-01-01T00:00:00Z; `zoned` timestamps carry an offset (RFC
    /// 3339), the others none.
    pub(super) fn timestamp_micros(s: &str, zoned: bool) -> Option<i64> {
        fast_timestamp(s.as_bytes(), zoned).or_else(|| chrono_timestamp_micros(s, zoned))
    }

    fn chrono_timestamp_micros(s: &str, zoned: bool) -> Option<i64> {
        if zoned {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_micros())
        } else {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_micros())
        }
    }

    fn fast_timestamp(b: &[u8], zoned: bool) -> Option<i64> {
        let (y, m, d) = fast_date(b.get(..10)?)?;
        if b.get(10) != Some(&b'T') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return None;
        }
        let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
        // Second 60 (a leap second) is chrono's to interpret.
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let mut at = 19;
        let mut micros = 0;
        if b.get(at) == Some(&b'.') {
            let start = at + 1;
            let count = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=9).contains(&count) {
                return None;
            }
            // Digits past the sixth (nanoseconds) are truncated, as chrono does.
            let kept = count.min(6);
            micros = digits(b, start, kept)? * 10_i64.pow((6 - kept) as u32);
            at = start + count;
        }
        let offset_seconds = match (zoned, &b[at..]) {
            (false, []) => 0,
            (true, [b'Z']) => 0,
            (true, [sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
                let (h, m) = (digits(b, at + 1, 2)?, digits(b, at + 4, 2)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let seconds = h * 3600 + m * 60;
                if *sign == b'-' { -seconds } else { seconds }
            }
            _ => return None,
        };
        let seconds =
            days_from_civil(y, m, d) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
        Some(seconds * 1_000_000 + micros)
    }

    /// A `YYYY-MM-DD` date of the years 1 to 9999 that exists; `None` for anything else.
    fn fast_date(b: &[u8]) -> Option<(i64, i64, i64)> {
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (y, m, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (y >= 1 && (1..=month_days).contains(&d)).then_some((y, m, d))
    }

    /// The number written in `b[at..at + n]`, all ASCII digits.
    fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
        b.get(at..at + n)?.iter().try_fold(0, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's
    /// `days_from_civil`, in 400-year eras.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let year_of_era = y.rem_euclid(400);
        let shifted_month = if m > 2 { m - 3 } else { m + 9 };
        let day_of_year = (153 * shifted_month + 2) / 5 + d - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dates_and_timestamps_read_as_chrono_reads_them() {
            // What plugins send takes the fast path.
            assert!(fast_timestamp(b"2024-02-29T12:00:00.123456+00:00", true).is_some());
            assert!(fast_timestamp(b"2024-02-29T12:00:00", false).is_some());
            assert!(fast_date(b"2024-02-29").is_some());
            let mut seed: u64 = 0x853c_49e6_748f_ea9b;
            let mut next = move |n: u64| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 33) % n
            };
            let mut samples: Vec<String> = [
                "1970-01-01T00:00:00",
                "0001-01-01T00:00:00",
                "9999-12-31T23:59:59.999999",
                "2024-02-29T12:00:00.5",
                "2023-02-29T12:00:00",
                "2024-13-01T00:00:00",
                "2024-01-01T24:00:00",
                "2024-06-30T23:59:60",
                "2024-01-01T00:00:00.",
                "2024-01-01T00:00:00.1234567891",
                "2024-01-01 00:00:00",
                "+12024-01-01T00:00:00",
                "2024-1-01T00:00:00",
                "2024-01-01T00:00:00+25:00",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for _ in 0..20_000 {
                let fraction = match next(4) {
                    0 => String::new(),
                    1 => format!(".{:03}", next(1000)),
                    2 => format!(".{:06}", next(1_000_000)),
                    _ => format!(".{:09}", next(1_000_000_000)),
                };
                samples.push(format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}",
                    next(10_000),
                    next(13),
                    next(32),
                    next(25),
                    next(61),
                    next(61)
                ));
            }
            for sample in samples {
                for (text, zoned) in [
                    (sample.clone(), false),
                    (sample.clone(), true),
                    (format!("{sample}Z"), true),
                    (format!("{sample}+00:00"), true),
                    (format!("{sample}-05:30"), true),
                    (format!("{sample}+14:00"), false),
                ] {
                    assert_eq!(
                        timestamp_micros(&text, zoned),
                        chrono_timestamp_micros(&text, zoned),
                        "{text} zoned={zoned}"
                    );
                }
                let date = &sample[..sample.len().min(10)];
                assert_eq!(date_days(date), chrono_date_days(date), "{date}");
            }
        }
    }
}

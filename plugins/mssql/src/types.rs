//! SQL Server types: their common names, how the catalog's type columns read as a type's
//! full name (`nvarchar(50)`, `decimal(10,2)`), and values converted from tiberius' column
//! data, exactly: decimals as text with every digit, temporal values as ISO-8601 text
//! computed from the wire's day and tick counts (not through a lossy float).

use chrono::{Duration, NaiveDate, NaiveDateTime};
use plugboard_connector::{CommonType, Value};
use tiberius::ColumnData;

/// The common type of a SQL Server type name (`TYPE_NAME(system_type_id)`).
pub(crate) fn common_type(name: &str) -> CommonType {
    match name.to_ascii_lowercase().as_str() {
        "bit" => CommonType::Boolean,
        "tinyint" | "smallint" => CommonType::Int16,
        "int" => CommonType::Int32,
        "bigint" => CommonType::Int64,
        "real" => CommonType::Float32,
        "float" => CommonType::Float64,
        "decimal" | "numeric" | "money" | "smallmoney" => CommonType::Decimal,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname" | "xml" => {
            CommonType::Text
        }
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => CommonType::Binary,
        "date" => CommonType::Date,
        "time" => CommonType::Time,
        "datetime" | "datetime2" | "smalldatetime" => CommonType::Timestamp,
        "datetimeoffset" => CommonType::Timestamptz,
        "uniqueidentifier" => CommonType::Uuid,
        _ => CommonType::Other,
    }
}

/// A column's full type as `sys.columns` describes it: lengths for strings and binaries
/// (`max` for -1; bytes halved for the n-types), precision and scale for decimals, scale
/// for the fractional-second types.
pub(crate) fn render_type(name: &str, max_length: i32, precision: i32, scale: i32) -> String {
    let lower = name.to_ascii_lowercase();
    let length = |chars: i32| {
        if max_length == -1 {
            "max".to_owned()
        } else {
            chars.to_string()
        }
    };
    match lower.as_str() {
        "varchar" | "char" | "varbinary" | "binary" => format!("{name}({})", length(max_length)),
        "nvarchar" | "nchar" => format!("{name}({})", length(max_length / 2)),
        "decimal" | "numeric" => format!("{name}({precision},{scale})"),
        "datetime2" | "time" | "datetimeoffset" => format!("{name}({scale})"),
        _ => name.to_owned(),
    }
}

/// `value / 10^scale` as decimal text.
pub(crate) fn format_numeric(value: i128, scale: u8) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn format_fraction(nanos: u64) -> String {
    if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    }
}

/// `time(n)`: increments of 10^-scale seconds since midnight.
fn time_of(increments: u64, scale: u8) -> (u64, u64) {
    let per_second = 10u64.pow(scale as u32);
    let seconds = increments / per_second;
    let nanos = (increments % per_second) * 10u64.pow(9 - scale.min(9) as u32);
    (seconds, nanos)
}

fn format_time(seconds: u64, nanos: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}{}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        format_fraction(nanos)
    )
}

fn date_from(epoch: NaiveDate, days: i64) -> Option<NaiveDate> {
    epoch.checked_add_signed(Duration::days(days))
}

fn day_one() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap()
}

fn nineteen_hundred() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()
}

/// Converts one value; `None` inside any variant is SQL NULL.
pub(crate) fn convert(data: &ColumnData<'_>) -> Value {
    let or_null = |v: Option<Value>| v.unwrap_or(Value::Null);
    match data {
        ColumnData::U8(v) => or_null(v.map(|x| Value::Int(x.into()))),
        ColumnData::I16(v) => or_null(v.map(|x| Value::Int(x.into()))),
        ColumnData::I32(v) => or_null(v.map(|x| Value::Int(x.into()))),
        ColumnData::I64(v) => or_null(v.map(Value::Int)),
        ColumnData::F32(v) => or_null(v.map(|x| Value::Float(x.into()))),
        ColumnData::F64(v) => or_null(v.map(Value::Float)),
        ColumnData::Bit(v) => or_null(v.map(Value::Boolean)),
        ColumnData::String(v) => or_null(v.as_ref().map(|s| Value::Text(s.to_string()))),
        ColumnData::Guid(v) => or_null(v.map(|g| Value::Text(g.to_string()))),
        ColumnData::Binary(v) => or_null(v.as_ref().map(|b| Value::Bytes(b.to_vec()))),
        ColumnData::Numeric(v) => {
            or_null(v.map(|n| Value::Decimal(format_numeric(n.value(), n.scale()))))
        }
        ColumnData::Xml(v) => or_null(v.as_ref().map(|x| Value::Text(x.to_string()))),
        ColumnData::DateTime(v) => or_null(v.map(|dt| {
            // Days since 1900-01-01 and three-hundredths of a second since midnight.
            let nanos = u64::from(dt.seconds_fragments()) * 1_000_000_000 / 300;
            datetime_value(
                date_from(nineteen_hundred(), dt.days().into()),
                nanos / 1_000_000_000,
                nanos % 1_000_000_000,
            )
        })),
        ColumnData::SmallDateTime(v) => or_null(v.map(|dt| {
            datetime_value(
                date_from(nineteen_hundred(), dt.days().into()),
                u64::from(dt.seconds_fragments()) * 60,
                0,
            )
        })),
        ColumnData::Time(v) => or_null(v.map(|t| {
            let (s, n) = time_of(t.increments(), t.scale());
            Value::Time(format_time(s, n))
        })),
        ColumnData::Date(v) => or_null(v.map(|d| match date_from(day_one(), d.days().into()) {
            Some(date) => Value::Date(date.format("%Y-%m-%d").to_string()),
            None => Value::Text(format!("{} days from 0001-01-01", d.days())),
        })),
        ColumnData::DateTime2(v) => or_null(v.map(|dt| {
            let (s, n) = time_of(dt.time().increments(), dt.time().scale());
            datetime_value(date_from(day_one(), dt.date().days().into()), s, n)
        })),
        ColumnData::DateTimeOffset(v) => or_null(v.map(|dto| {
            // The wire holds UTC; show the local time with its offset, as SQL Server does.
            let dt = dto.datetime2();
            let (s, n) = time_of(dt.time().increments(), dt.time().scale());
            let offset = i64::from(dto.offset());
            match date_from(day_one(), dt.date().days().into()) {
                Some(date) => {
                    let utc = date.and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(s as i64);
                    let local = utc + Duration::minutes(offset);
                    let sign = if offset < 0 { '-' } else { '+' };
                    Value::Timestamp(format!(
                        "{}{}{sign}{:02}:{:02}",
                        local.format("%Y-%m-%dT%H:%M:%S"),
                        format_fraction(n),
                        offset.abs() / 60,
                        offset.abs() % 60
                    ))
                }
                None => Value::Null,
            }
        })),
    }
}

fn datetime_value(date: Option<NaiveDate>, seconds: u64, nanos: u64) -> Value {
    match date {
        Some(date) => {
            let dt: NaiveDateTime =
                date.and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(seconds as i64);
            Value::Timestamp(format!(
                "{}{}",
                dt.format("%Y-%m-%dT%H:%M:%S"),
                format_fraction(nanos)
            ))
        }
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiberius::numeric::Numeric;
    use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, Time};

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(format_numeric(1250, 2), "12.50");
        assert_eq!(format_numeric(-5, 3), "-0.005");
        assert_eq!(format_numeric(42, 0), "42");
        let big = 12345678901234567890123456789012345678i128;
        assert_eq!(
            format_numeric(big, 10),
            "1234567890123456789012345678.9012345678"
        );
        let n = Numeric::new_with_scale(-1999, 2);
        assert_eq!(
            convert(&ColumnData::Numeric(Some(n))),
            Value::Decimal("-19.99".into())
        );
    }

    #[test]
    fn temporal_values_are_iso_8601() {
        // 2024-02-29 is day 45349 since 1900-01-01; 13:45:30 is 14_859_000 ticks of 1/300 s.
        let dt = DateTime::new(45_349, (13 * 3600 + 45 * 60 + 30) * 300 + 150);
        assert_eq!(
            convert(&ColumnData::DateTime(Some(dt))),
            Value::Timestamp("2024-02-29T13:45:30.5".into())
        );
        let date = Date::new(738_944); // days since 0001-01-01
        assert_eq!(
            convert(&ColumnData::Date(Some(date))),
            Value::Date("2024-02-29".into())
        );
        let time = Time::new(495_301_234_567, 7); // 13:45:30.1234567
        assert_eq!(
            convert(&ColumnData::Time(Some(time))),
            Value::Time("13:45:30.1234567".into())
        );
        let dt2 = DateTime2::new(date, time);
        assert_eq!(
            convert(&ColumnData::DateTime2(Some(dt2))),
            Value::Timestamp("2024-02-29T13:45:30.1234567".into())
        );
        let dto = DateTimeOffset::new(dt2, 120);
        assert_eq!(
            convert(&ColumnData::DateTimeOffset(Some(dto))),
            Value::Timestamp("2024-02-29T15:45:30.1234567+02:00".into())
        );
        assert_eq!(convert(&ColumnData::Date(None)), Value::Null);
    }

    #[test]
    fn catalog_types_render_as_declared() {
        assert_eq!(render_type("nvarchar", 100, 0, 0), "nvarchar(50)");
        assert_eq!(render_type("varchar", -1, 0, 0), "varchar(max)");
        assert_eq!(render_type("decimal", 9, 10, 2), "decimal(10,2)");
        assert_eq!(render_type("datetime2", 8, 27, 7), "datetime2(7)");
        assert_eq!(render_type("int", 4, 10, 0), "int");
        assert_eq!(common_type("nvarchar"), CommonType::Text);
        assert_eq!(common_type("datetimeoffset"), CommonType::Timestamptz);
        assert_eq!(common_type("uniqueidentifier"), CommonType::Uuid);
    }
}

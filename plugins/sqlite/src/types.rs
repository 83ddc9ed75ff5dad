//! SQLite types: declared types mapped to the common vocabulary, and values read by their
//! storage class, refined by the column's declared type.
//!
//! SQLite stores every value as NULL, INTEGER, REAL, TEXT or BLOB whatever the column
//! declares; the declaration only tells what the value means (a `BOOLEAN` stored as 1, a
//! `DATETIME` stored as ISO text, `JSON` stored as text).

use plugboard_connector::{CommonType, Value};
use sqlx::sqlite::SqliteValueRef;
use sqlx::{Decode, Sqlite, TypeInfo as _, ValueRef as _};

/// The common type of a declared column type, following SQLite's affinity rules
/// (<https://www.sqlite.org/datatype3.html#determination_of_column_affinity>) after the
/// names that carry more meaning than their affinity.
pub(crate) fn common_type(declared: &str) -> CommonType {
    let d = declared.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    if d.is_empty() || d == "NULL" {
        CommonType::Other
    } else if has("BOOL") {
        CommonType::Boolean
    } else if has("DATETIME") || has("TIMESTAMP") {
        CommonType::Timestamp
    } else if has("DATE") {
        CommonType::Date
    } else if d == "TIME" {
        CommonType::Time
    } else if has("INT") {
        CommonType::Int64
    } else if has("JSON") {
        CommonType::Json
    } else if has("UUID") {
        CommonType::Uuid
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        CommonType::Text
    } else if has("BLOB") {
        CommonType::Binary
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        CommonType::Float64
    } else if has("DEC") || has("NUMERIC") {
        CommonType::Decimal
    } else {
        CommonType::Other
    }
}

/// Reads one value: by its storage class, given meaning by the column's common type.
pub(crate) fn decode(value: SqliteValueRef<'_>, declared: CommonType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let storage = value.type_info().name().to_owned();
    let err = |e: sqlx::error::BoxDynError| e.to_string();
    Ok(match storage.as_str() {
        "INTEGER" | "BOOLEAN" => {
            let i = <i64 as Decode<Sqlite>>::decode(value).map_err(err)?;
            match declared {
                CommonType::Boolean => Value::Boolean(i != 0),
                _ => Value::Int(i),
            }
        }
        "REAL" => Value::Float(<f64 as Decode<Sqlite>>::decode(value).map_err(err)?),
        "BLOB" => Value::Bytes(<Vec<u8> as Decode<Sqlite>>::decode(value).map_err(err)?),
        _ => {
            let text = <String as Decode<Sqlite>>::decode(value).map_err(err)?;
            match declared {
                CommonType::Json => serde_json::from_str(&text)
                    .map(Value::Json)
                    .unwrap_or(Value::Text(text)),
                CommonType::Decimal => Value::Decimal(text),
                CommonType::Date => Value::Date(text),
                CommonType::Time => Value::Time(text),
                CommonType::Timestamp => Value::Timestamp(text),
                _ => Value::Text(text),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_by_affinity_and_meaning() {
        for (declared, expected) in [
            ("INTEGER", CommonType::Int64),
            ("bigint", CommonType::Int64),
            ("BOOLEAN", CommonType::Boolean),
            ("VARCHAR(20)", CommonType::Text),
            ("TEXT", CommonType::Text),
            ("REAL", CommonType::Float64),
            ("DOUBLE PRECISION", CommonType::Float64),
            ("NUMERIC(10,2)", CommonType::Decimal),
            ("DATETIME", CommonType::Timestamp),
            ("DATE", CommonType::Date),
            ("TIME", CommonType::Time),
            ("JSON", CommonType::Json),
            ("BLOB", CommonType::Binary),
            ("", CommonType::Other),
        ] {
            assert_eq!(common_type(declared), expected, "{declared}");
        }
    }
}

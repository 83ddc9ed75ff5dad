//! MySQL and MariaDB types: their common names, and values decoded from the binary protocol.
//!
//! Every query runs as a prepared statement, so rows arrive in the binary protocol: integers
//! little-endian at their declared width, DECIMAL as its digits, temporal values as packed
//! fields. Decoding them here by the column's type keeps every digit of a DECIMAL, zero
//! dates (`0000-00-00`), and TIME values past 24 hours, which typed decoders reject.

use plugboard_connector::{CommonType, Value};

/// The common type of a column type as sqlx names it (`INT UNSIGNED`, `VARCHAR`, ...), or
/// as `information_schema.COLUMNS.DATA_TYPE` does (`int`, `varchar`, `tinyint`, ...).
pub(crate) fn common_type(name: &str, column_type: Option<&str>) -> CommonType {
    let n = name.to_ascii_uppercase();
    let base = n.split_whitespace().next().unwrap_or("");
    if column_type.is_some_and(|t| t.eq_ignore_ascii_case("tinyint(1)")) || base == "BOOLEAN" {
        return CommonType::Boolean;
    }
    match base {
        "TINYINT" | "SMALLINT" => CommonType::Int16,
        "INT" | "INTEGER" | "MEDIUMINT" if n.contains("UNSIGNED") => CommonType::Int64,
        "INT" | "INTEGER" | "MEDIUMINT" => CommonType::Int32,
        "BIGINT" => CommonType::Int64,
        "FLOAT" => CommonType::Float32,
        "DOUBLE" | "REAL" => CommonType::Float64,
        "DECIMAL" | "NUMERIC" => CommonType::Decimal,
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            CommonType::Text
        }
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT"
        | "GEOMETRY" => CommonType::Binary,
        "DATE" => CommonType::Date,
        "TIME" => CommonType::Time,
        "DATETIME" | "TIMESTAMP" => CommonType::Timestamp,
        "YEAR" => CommonType::Int16,
        "JSON" => CommonType::Json,
        "UUID" => CommonType::Uuid,
        _ => CommonType::Other,
    }
}

fn le<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("value truncated: wanted {N} bytes, got {}", bytes.len()))
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// Decodes one binary-protocol value of the column type `name` (as sqlx names it).
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<Value, String> {
    let unsigned = name.ends_with("UNSIGNED");
    let base = name.split_whitespace().next().unwrap_or("");
    Ok(match base {
        "BOOLEAN" => Value::Boolean(le::<1>(bytes)?[0] != 0),
        "TINYINT" if unsigned => Value::Int(le::<1>(bytes)?[0].into()),
        "TINYINT" => Value::Int((le::<1>(bytes)?[0] as i8).into()),
        "SMALLINT" | "YEAR" if unsigned || base == "YEAR" => {
            Value::Int(u16::from_le_bytes(le(bytes)?).into())
        }
        "SMALLINT" => Value::Int(i16::from_le_bytes(le(bytes)?).into()),
        "INT" | "MEDIUMINT" if unsigned => Value::Int(u32::from_le_bytes(le(bytes)?).into()),
        "INT" | "MEDIUMINT" => Value::Int(i32::from_le_bytes(le(bytes)?).into()),
        "BIGINT" if unsigned => {
            let u = u64::from_le_bytes(le(bytes)?);
            i64::try_from(u).map(Value::Int).unwrap_or(Value::Uint(u))
        }
        "BIGINT" => Value::Int(i64::from_le_bytes(le(bytes)?)),
        "FLOAT" => Value::Float(f32::from_le_bytes(le(bytes)?).into()),
        "DOUBLE" => Value::Float(f64::from_le_bytes(le(bytes)?)),
        "DECIMAL" => Value::Decimal(text(bytes)?),
        "DATE" => Value::Date(decode_datetime(bytes, false)?),
        "DATETIME" | "TIMESTAMP" => Value::Timestamp(decode_datetime(bytes, true)?),
        "TIME" => Value::Time(decode_time(bytes)?),
        "JSON" => {
            let t = text(bytes)?;
            serde_json::from_str(&t)
                .map(Value::Json)
                .unwrap_or(Value::Text(t))
        }
        "BIT" => Value::Uint(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "GEOMETRY" => {
            Value::Bytes(bytes.to_vec())
        }
        "NULL" => Value::Null,
        _ => match String::from_utf8(bytes.to_vec()) {
            Ok(s) => Value::Text(s),
            Err(_) => Value::Bytes(bytes.to_vec()),
        },
    })
}

/// DATE, DATETIME and TIMESTAMP: a length byte (0, 4, 7 or 11), then year (2 bytes), month,
/// day, and with 7 or more hour, minute, second, and with 11 microseconds (4 bytes).
fn decode_datetime(bytes: &[u8], with_time: bool) -> Result<String, String> {
    let len = *bytes.first().ok_or("empty temporal value")? as usize;
    let b = bytes.get(1..1 + len).ok_or("temporal value truncated")?;
    let (year, month, day) = match len {
        0 => (0, 0, 0),
        _ => (u16::from_le_bytes(le(b)?), b[2], b[3]),
    };
    let date = format!("{year:04}-{month:02}-{day:02}");
    if !with_time {
        return Ok(date);
    }
    let (h, m, s) = if len >= 7 {
        (b[4], b[5], b[6])
    } else {
        (0, 0, 0)
    };
    let micros = if len >= 11 {
        u32::from_le_bytes(le(&b[7..])?)
    } else {
        0
    };
    Ok(format!("{date}T{h:02}:{m:02}:{s:02}{}", fraction(micros)))
}

/// TIME: a length byte (0, 8 or 12), then sign, days (4 bytes), hour, minute, second, and
/// with 12 microseconds. Hours run past 24, as MySQL's TIME does (up to 838).
fn decode_time(bytes: &[u8]) -> Result<String, String> {
    let len = *bytes.first().ok_or("empty TIME value")? as usize;
    if len == 0 {
        return Ok("00:00:00".into());
    }
    let b = bytes.get(1..1 + len).ok_or("TIME value truncated")?;
    let negative = b[0] == 1;
    let days = u32::from_le_bytes(le(&b[1..])?);
    let hours = days * 24 + u32::from(b[5]);
    let micros = if len >= 12 {
        u32::from_le_bytes(le(&b[8..])?)
    } else {
        0
    };
    Ok(format!(
        "{}{hours:02}:{:02}:{:02}{}",
        if negative { "-" } else { "" },
        b[6],
        b[7],
        fraction(micros)
    ))
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}").trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_values_are_iso_8601() {
        let dt = [11, 0xE8, 0x07, 2, 29, 13, 45, 30, 0x40, 0xE2, 0x01, 0x00];
        assert_eq!(
            decode("DATETIME", &dt).unwrap(),
            Value::Timestamp("2024-02-29T13:45:30.123456".into())
        );
        assert_eq!(
            decode("DATE", &[4, 0xE8, 0x07, 2, 29]).unwrap(),
            Value::Date("2024-02-29".into())
        );
        assert_eq!(
            decode("DATE", &[0]).unwrap(),
            Value::Date("0000-00-00".into())
        );
        let time = [8, 1, 1, 0, 0, 0, 2, 3, 4];
        assert_eq!(
            decode("TIME", &time).unwrap(),
            Value::Time("-26:03:04".into())
        );
    }

    #[test]
    fn integers_keep_their_width_and_sign() {
        assert_eq!(decode("TINYINT", &[0xFF]).unwrap(), Value::Int(-1));
        assert_eq!(
            decode("TINYINT UNSIGNED", &[0xFF]).unwrap(),
            Value::Int(255)
        );
        assert_eq!(decode("BOOLEAN", &[1]).unwrap(), Value::Boolean(true));
        assert_eq!(
            decode("BIGINT UNSIGNED", &u64::MAX.to_le_bytes()).unwrap(),
            Value::Uint(u64::MAX)
        );
        assert_eq!(
            decode("DECIMAL", b"-12.50").unwrap(),
            Value::Decimal("-12.50".into())
        );
        assert_eq!(common_type("int", Some("int(11)")), CommonType::Int32);
        assert_eq!(
            common_type("tinyint", Some("tinyint(1)")),
            CommonType::Boolean
        );
        assert_eq!(common_type("INT UNSIGNED", None), CommonType::Int64);
    }
}

//! ClickHouse types in the common vocabulary, and JSONCompact values as typed values.
//!
//! Values arrive as JSON with 64-bit integers quoted (`output_format_json_quote_64bit_integers`)
//! and NaN/infinities quoted (`output_format_json_quote_denormals`), so nothing is rounded
//! through a float; decimals are read from the raw JSON text, digit for digit.

use plugboard_sdk::{CommonType, Element, Value};
use serde_json::value::RawValue;

/// The type without the wrappers that do not change what a value is: `Nullable(T)`,
/// `LowCardinality(T)`, and whether it was nullable.
pub fn unwrap(data_type: &str) -> (&str, bool) {
    let mut t = data_type.trim();
    let mut nullable = false;
    loop {
        if let Some(inner) = strip_call(t, "Nullable") {
            nullable = true;
            t = inner;
        } else if let Some(inner) = strip_call(t, "LowCardinality") {
            t = inner;
        } else {
            return (t, nullable);
        }
    }
}

/// `inner` of `name(inner)`.
fn strip_call<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    t.strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

fn base_name(t: &str) -> &str {
    t.split('(').next().unwrap_or(t).trim()
}

/// The common type of a ClickHouse type name.
pub fn common_type(data_type: &str) -> CommonType {
    let (t, _) = unwrap(data_type);
    match base_name(t) {
        "Bool" | "Boolean" => CommonType::Boolean,
        "Int8" | "Int16" | "UInt8" => CommonType::Int16,
        "Int32" | "UInt16" => CommonType::Int32,
        "Int64" | "UInt32" => CommonType::Int64,
        "UInt64" | "Int128" | "UInt128" | "Int256" | "UInt256" => CommonType::Decimal,
        "Float32" => CommonType::Float32,
        "Float64" => CommonType::Float64,
        "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => CommonType::Decimal,
        "String" | "FixedString" | "Enum8" | "Enum16" | "Enum" | "IPv4" | "IPv6" => {
            CommonType::Text
        }
        "UUID" => CommonType::Uuid,
        "Date" | "Date32" => CommonType::Date,
        "DateTime" | "DateTime64" if t.contains('\'') => CommonType::Timestamptz,
        "DateTime" | "DateTime64" => CommonType::Timestamp,
        "Array" => CommonType::Array,
        "Tuple" | "Map" | "Nested" | "JSON" | "Object" => CommonType::Json,
        _ => CommonType::Other,
    }
}

/// A JSONCompact value of `data_type` as a typed value.
pub fn value(raw: &RawValue, data_type: &str) -> Value {
    let text = raw.get();
    if text == "null" {
        return Value::Null;
    }
    let (t, _) = unwrap(data_type);
    let base = base_name(t);
    match base {
        "Array" => {
            let inner = strip_call(t, "Array").unwrap_or("String");
            let items: Vec<&RawValue> = serde_json::from_str(text).unwrap_or_default();
            let values: Vec<Value> = items.iter().map(|item| value(item, inner)).collect();
            match values
                .iter()
                .cloned()
                .map(Value::into_element)
                .collect::<Option<Vec<Element>>>()
            {
                Some(elements) => Value::Array(elements),
                // Arrays of arrays: WIT values do not nest, so they travel as JSON.
                None => Value::Json(text.to_owned()),
            }
        }
        "Tuple" | "Map" | "Nested" | "JSON" | "Object" => Value::Json(text.to_owned()),
        _ => scalar(text, base),
    }
}

fn scalar(text: &str, base: &str) -> Value {
    // Quoted values (strings, 64-bit integers, special floats) unquoted; numbers as written.
    let unquoted: Option<String> = serde_json::from_str::<String>(text).ok();
    let plain = unquoted.as_deref().unwrap_or(text);
    match base {
        "Bool" | "Boolean" => match plain {
            "true" | "1" => Value::Boolean(true),
            "false" | "0" => Value::Boolean(false),
            _ => Value::Text(plain.to_owned()),
        },
        "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" => plain
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::Text(plain.to_owned())),
        "UInt64" => plain
            .parse::<u64>()
            .map(Value::Uint)
            .unwrap_or_else(|_| Value::Text(plain.to_owned())),
        "Int128" | "UInt128" | "Int256" | "UInt256" => Value::Decimal(plain.to_owned()),
        "Float32" | "Float64" => match plain {
            "nan" | "-nan" => Value::Float(f64::NAN),
            "inf" | "+inf" => Value::Float(f64::INFINITY),
            "-inf" => Value::Float(f64::NEG_INFINITY),
            _ => plain
                .parse::<f64>()
                .map(Value::Float)
                .unwrap_or_else(|_| Value::Text(plain.to_owned())),
        },
        "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => {
            Value::Decimal(plain.to_owned())
        }
        "Date" | "Date32" => Value::Date(plain.to_owned()),
        "DateTime" | "DateTime64" => Value::Timestamp(plain.to_owned()),
        _ => match unquoted {
            Some(s) => Value::Text(s),
            None => Value::Json(text.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated types have no `PartialEq`; their `Debug` output says everything.
    fn same(a: Value, b: Value) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn types_map_to_the_common_vocabulary() {
        for (t, expected) in [
            ("UInt8", CommonType::Int16),
            ("Nullable(Int32)", CommonType::Int32),
            ("LowCardinality(Nullable(String))", CommonType::Text),
            ("UInt64", CommonType::Decimal),
            ("Decimal(10, 2)", CommonType::Decimal),
            ("DateTime('Europe/Berlin')", CommonType::Timestamptz),
            ("DateTime", CommonType::Timestamp),
            ("Array(Nullable(UInt8))", CommonType::Array),
            ("Tuple(UInt8, String)", CommonType::Json),
            ("Nothing", CommonType::Other),
        ] {
            assert_eq!(common_type(t), expected, "{t}");
        }
        assert_eq!(unwrap("Nullable(Decimal(10, 2))"), ("Decimal(10, 2)", true));
    }

    #[test]
    fn values_keep_every_digit() {
        same(
            value(&raw("\"18446744073709551615\""), "UInt64"),
            Value::Uint(u64::MAX),
        );
        same(
            value(&raw("\"-9223372036854775808\""), "Int64"),
            Value::Int(i64::MIN),
        );
        same(
            value(&raw("10.50"), "Decimal(10, 2)"),
            Value::Decimal("10.50".into()),
        );
        same(value(&raw("null"), "Nullable(String)"), Value::Null);
        assert!(matches!(value(&raw("\"nan\""), "Float64"), Value::Float(f) if f.is_nan()));
        same(
            value(&raw("\"-inf\""), "Float32"),
            Value::Float(f64::NEG_INFINITY),
        );
        same(
            value(&raw("\"日本語 ✓\""), "String"),
            Value::Text("日本語 ✓".into()),
        );
        same(
            value(&raw("\"2024-01-15\""), "Date"),
            Value::Date("2024-01-15".into()),
        );
        same(
            value(&raw("[1,null]"), "Array(Nullable(UInt8))"),
            Value::Array(vec![Element::Int(1), Element::Null]),
        );
        same(
            value(&raw("[[1],[2]]"), "Array(Array(UInt8))"),
            Value::Json("[[1],[2]]".into()),
        );
    }
}

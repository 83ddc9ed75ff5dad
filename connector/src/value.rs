//! Typed values (WIT `types.value`) and the common type vocabulary (WIT `types.common-type`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The common type vocabulary: what a client can rely on whatever the engine. The engine's
/// own type name always travels beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // the names say it; the WIT documents the subtle ones
pub enum CommonType {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact numeric; values travel as decimal text.
    Decimal,
    Text,
    Binary,
    Date,
    Time,
    Timestamp,
    /// A timestamp with a time zone; values carry their offset.
    Timestamptz,
    Interval,
    Uuid,
    Json,
    Array,
    /// A nested document (document stores).
    Document,
    /// Anything else: the engine's type name says what it is.
    Other,
}

/// A typed value in a parameter or a result row.
///
/// Decimals and temporal values are text (decimal digits, ISO-8601) so no precision or
/// offset is lost. Arrays nest here; across the WIT boundary a nested array travels as JSON.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// Decimal digits with an optional sign and point, or `NaN`, `Infinity`, `-Infinity`.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// ISO-8601 date, e.g. `2024-02-29`.
    Date(String),
    /// ISO-8601 time, e.g. `13:45:00.25` or `13:45:00+02:00`.
    Time(String),
    /// ISO-8601 timestamp, with an offset when the engine's type has a time zone.
    Timestamp(String),
    Json(serde_json::Value),
    Array(Vec<Value>),
}

impl Value {
    /// The value as JSON, the way the HTTP API shows it: decimals and temporal values as
    /// strings, bytes as standard base64, JSON embedded as JSON, arrays as arrays.
    /// Non-finite floats become the strings `NaN`, `Infinity` and `-Infinity`, which JSON
    /// numbers cannot express.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Uint(u) => J::from(*u),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => J::Number(n),
                None => J::String(non_finite_name(*f).to_owned()),
            },
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Json(j) => j.clone(),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// A value from a JSON parameter. The plugin converts it to the type the engine expects,
    /// so this keeps only what JSON says: numbers, strings, booleans, arrays; objects stay
    /// JSON.
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Value::Text(s.clone()),
            J::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            J::Object(_) => Value::Json(json.clone()),
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int(_) | Value::Uint(_) => "integer",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::Json(_) => "json",
            Value::Array(_) => "array",
        }
    }
}

fn non_finite_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shows_exact_and_binary_values_as_strings() {
        let row = Value::Array(vec![
            Value::Decimal("12345678901234567890.000001".into()),
            Value::Bytes(vec![0, 255, 16]),
            Value::Timestamp("2024-02-29T12:00:00+00:00".into()),
            Value::Float(f64::INFINITY),
            Value::Json(json!({"a": [1, 2]})),
            Value::Null,
        ]);
        assert_eq!(
            row.to_json(),
            json!([
                "12345678901234567890.000001",
                "AP8Q",
                "2024-02-29T12:00:00+00:00",
                "Infinity",
                {"a": [1, 2]},
                null
            ])
        );
    }

    #[test]
    fn json_parameters_keep_their_json_kind() {
        assert_eq!(Value::from_json(&json!(7)), Value::Int(7));
        assert_eq!(Value::from_json(&json!(u64::MAX)), Value::Uint(u64::MAX));
        assert_eq!(Value::from_json(&json!(1.5)), Value::Float(1.5));
        assert_eq!(Value::from_json(&json!("x")), Value::Text("x".into()));
        assert_eq!(
            Value::from_json(&json!([1, null])),
            Value::Array(vec![Value::Int(1), Value::Null])
        );
        assert_eq!(
            Value::from_json(&json!({"k": 1})),
            Value::Json(json!({"k": 1}))
        );
    }
}

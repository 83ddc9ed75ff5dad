//! The text formats: NDJSON and CSV, written value by value without building a tree.

use base64::Engine as _;
use plugboard_connector::{ColumnMeta, Row, Value};

use super::Encoder;

/// One JSON object per row, keyed by column name.
pub(super) struct Ndjson {
    /// `"name":` per column, escaped once.
    keys: Vec<Vec<u8>>,
}

impl Ndjson {
    pub(super) fn new(columns: &[ColumnMeta]) -> Ndjson {
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
pub(super) struct Csv {
    names: Vec<String>,
}

impl Csv {
    pub(super) fn new(columns: &[ColumnMeta]) -> Csv {
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
}

//! Query parameters, written in ClickHouse's own syntax: `{p1:Int32}` is the first
//! parameter as an `Int32`, `{p2:Nullable(String)}` the second, and so on.
//!
//! Servers that support query parameters (19.12 and later here) get them as
//! `param_p1=...` beside the query, so the server parses each value as its declared type.
//! Older servers (Debian's 18.16) get each placeholder replaced with
//! `CAST('<escaped text>' AS <type>)`: the value is always a quoted, escaped string literal
//! that the server then converts, so no value can change the statement's shape.

use plugboard_sdk::{Element, Error, Result, Value};

/// One placeholder found in the SQL text.
#[derive(Debug, PartialEq)]
struct Placeholder {
    start: usize,
    end: usize,
    index: usize,
    data_type: String,
}

/// The statement to send, and the `param_*` pairs when the server binds them itself.
#[derive(Debug, PartialEq)]
pub struct Bound {
    pub sql: String,
    pub params: Vec<(String, String)>,
}

/// Binds `params` into `sql`, server-side when `server_side`, by escaping otherwise.
pub fn bind(sql: &str, params: &[Value], server_side: bool) -> Result<Bound> {
    let placeholders = find(sql)?;
    for p in &placeholders {
        if p.index == 0 || p.index > params.len() {
            return Err(Error::InvalidInput(format!(
                "the query uses parameter p{} but {} parameter(s) were given",
                p.index,
                params.len()
            )));
        }
    }
    if let Some(unused) = (1..=params.len()).find(|i| !placeholders.iter().any(|p| p.index == *i)) {
        return Err(Error::InvalidInput(format!(
            "parameter {unused} is not used: write it as {{p{unused}:Type}} in the query"
        )));
    }
    if server_side {
        let params = params
            .iter()
            .enumerate()
            .map(|(i, v)| Ok((format!("param_p{}", i + 1), param_text(v)?)))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Bound {
            sql: sql.to_owned(),
            params,
        });
    }
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for p in &placeholders {
        out.push_str(&sql[last..p.start]);
        let value = &params[p.index - 1];
        match value {
            Value::Null => out.push_str(&format!("CAST(NULL AS {})", p.data_type)),
            other => out.push_str(&format!(
                "CAST('{}' AS {})",
                escape_literal(&text(other)?),
                p.data_type
            )),
        }
        last = p.end;
    }
    out.push_str(&sql[last..]);
    Ok(Bound {
        sql: out,
        params: Vec::new(),
    })
}

/// Finds `{pN:Type}` outside string literals, quoted identifiers and comments.
fn find(sql: &str) -> Result<Vec<Placeholder>> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'{' => {
                let Some(close) = sql[i..].find('}') else {
                    return Err(Error::InvalidInput("an unclosed `{` in the query".into()));
                };
                let inner = &sql[i + 1..i + close];
                let Some((name, data_type)) = inner.split_once(':') else {
                    return Err(Error::InvalidInput(format!(
                        "`{{{inner}}}` is not a parameter: write {{p1:Type}}"
                    )));
                };
                let index = name
                    .trim()
                    .strip_prefix('p')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "parameter `{}` must be named p1, p2, ... by position",
                            name.trim()
                        ))
                    })?;
                let data_type = data_type.trim();
                if data_type.is_empty()
                    || !data_type
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || " _(),'".contains(c))
                {
                    return Err(Error::InvalidInput(format!(
                        "`{data_type}` is not a ClickHouse type name"
                    )));
                }
                found.push(Placeholder {
                    start: i,
                    end: i + close + 1,
                    index,
                    data_type: data_type.to_owned(),
                });
                i += close + 1;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// The value as text a ClickHouse type parses (arrays in their quoted literal form).
fn text(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Null => "NULL".to_owned(),
        Value::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) if f.is_nan() => "nan".to_owned(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.to_owned(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s)
        | Value::Json(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| {
            Error::InvalidInput("a bytes parameter must be UTF-8 to reach ClickHouse".into())
        })?,
        Value::Array(items) => {
            let parts = items
                .iter()
                .map(|e| {
                    let v = element_value(e);
                    Ok(match v {
                        Value::Null => "NULL".to_owned(),
                        Value::Boolean(_) | Value::Int(_) | Value::Uint(_) | Value::Float(_) => {
                            text(&v)?
                        }
                        other => format!("'{}'", escape_literal(&text(&other)?)),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            format!("[{}]", parts.join(","))
        }
    })
}

fn element_value(e: &Element) -> Value {
    match e.clone() {
        Element::Null => Value::Null,
        Element::Boolean(b) => Value::Boolean(b),
        Element::Int(i) => Value::Int(i),
        Element::Uint(u) => Value::Uint(u),
        Element::Float(f) => Value::Float(f),
        Element::Decimal(s) => Value::Decimal(s),
        Element::Text(s) => Value::Text(s),
        Element::Bytes(b) => Value::Bytes(b),
        Element::Date(s) => Value::Date(s),
        Element::Time(s) => Value::Time(s),
        Element::Timestamp(s) => Value::Timestamp(s),
        Element::Json(s) => Value::Json(s),
    }
}

/// A `param_*` value: ClickHouse reads it in its escaped text format.
fn param_text(value: &Value) -> Result<String> {
    if matches!(value, Value::Null) {
        return Ok("\\N".to_owned());
    }
    let text = text(value)?;
    // An array is already in its quoted form, its strings escaped: as TSV writes it.
    if matches!(value, Value::Array(_)) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The inside of a single-quoted ClickHouse string literal.
pub fn escape_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_servers_get_escaped_casts() {
        let bound = bind(
            "SELECT {p1:String} AS a, '{p9:x}' AS literal, {p2:Nullable(Int32)} -- {p7:y}\n",
            &[Value::Text("it's \\ a\ntest".into()), Value::Null],
            false,
        )
        .unwrap();
        assert_eq!(
            bound.sql,
            "SELECT CAST('it\\'s \\\\ a\\ntest' AS String) AS a, '{p9:x}' AS literal, \
             CAST(NULL AS Nullable(Int32)) -- {p7:y}\n"
        );
        assert!(bound.params.is_empty());
    }

    #[test]
    fn newer_servers_get_parameters() {
        let bound = bind(
            "SELECT {p1:Array(String)}, {p2:String}, {p3:Nullable(UInt8)}",
            &[
                Value::Array(vec![Element::Text("a'b".into()), Element::Null]),
                Value::Text("tab\there".into()),
                Value::Null,
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            bound.params,
            [
                ("param_p1".to_owned(), "['a\\'b',NULL]".to_owned()),
                ("param_p2".to_owned(), "tab\\there".to_owned()),
                ("param_p3".to_owned(), "\\N".to_owned()),
            ]
        );
    }

    #[test]
    fn mismatches_are_clear_errors() {
        let e = bind("SELECT {p2:UInt8}", &[Value::Int(1)], false).unwrap_err();
        assert!(e.to_string().contains("uses parameter p2"), "{e}");
        let e = bind("SELECT 1", &[Value::Int(1)], false).unwrap_err();
        assert!(e.to_string().contains("parameter 1 is not used"), "{e}");
        let e = bind("SELECT {id:UInt8}", &[Value::Int(1)], false).unwrap_err();
        assert!(e.to_string().contains("p1, p2"), "{e}");
        let e = bind("SELECT {p1:UInt8); DROP TABLE x}", &[Value::Int(1)], false).unwrap_err();
        assert!(e.to_string().contains("not a ClickHouse type"), "{e}");
    }
}

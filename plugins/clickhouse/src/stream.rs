//! Reads a JSONCompact answer as it arrives: the `meta` first, then one row at a time, so
//! a large result is never held whole.
//!
//! ClickHouse writes `{"meta": [...], "data": [[...], ...], "rows": N, ...}`. If the query
//! fails after the answer has started, the server appends its exception text to the body
//! instead of closing the JSON; the reader returns that text as the error.

use std::io::Read;

use serde_json::value::RawValue;

/// Why reading stopped early.
#[derive(Debug, PartialEq)]
pub enum ReadError {
    /// The body broke off or was not JSONCompact; the text is what was found instead (a
    /// ClickHouse exception, usually).
    Malformed(String),
    /// Reading the body failed.
    Io(String),
}

/// A column of the answer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// The reader over a body.
pub struct CompactReader<R> {
    body: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> CompactReader<R> {
    pub fn new(body: R) -> CompactReader<R> {
        CompactReader {
            body,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            done: false,
        }
    }

    /// Reads more of the body; false at its end.
    fn fill(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = self
            .body
            .read(&mut chunk)
            .map_err(|e| ReadError::Io(e.to_string()))?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    /// Everything left of the body, as text (for an error message).
    fn rest(&mut self) -> String {
        while let Ok(true) = self.fill() {
            if self.buf.len() - self.pos > 64 * 1024 {
                break;
            }
        }
        String::from_utf8_lossy(&self.buf[self.pos..])
            .trim()
            .to_owned()
    }

    fn malformed(&mut self) -> ReadError {
        ReadError::Malformed(self.rest())
    }

    /// Skips whitespace; the next byte, reading more as needed.
    fn peek(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            while self.pos < self.buf.len() && self.buf[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.pos < self.buf.len() {
                return Ok(Some(self.buf[self.pos]));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The length of the JSON value starting at `pos`, once all of it is buffered.
    fn value_len(&mut self) -> Result<usize, ReadError> {
        loop {
            let bytes = &self.buf[self.pos..];
            let mut depth = 0usize;
            let mut in_string = false;
            let mut escaped = false;
            // Scanned from the value's start each time more arrives: values are rows, small
            // next to the 64 KiB read at a time, so this stays cheap.
            for (i, &b) in bytes.iter().enumerate() {
                if in_string {
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ if depth == 0 => return Err(self.malformed()),
                    _ => {}
                }
            }
            if !self.fill()? {
                return Err(self.malformed());
            }
        }
    }

    /// Expects `"key":` next.
    fn key(&mut self, key: &str) -> Result<bool, ReadError> {
        let wanted = format!("\"{key}\"");
        if self.peek()? != Some(b'"') {
            return Ok(false);
        }
        while self.buf.len() - self.pos < wanted.len() {
            if !self.fill()? {
                return Ok(false);
            }
        }
        if &self.buf[self.pos..self.pos + wanted.len()] != wanted.as_bytes() {
            return Ok(false);
        }
        self.pos += wanted.len();
        if self.peek()? != Some(b':') {
            return Err(self.malformed());
        }
        self.pos += 1;
        Ok(true)
    }

    /// Reads up to the first row: the columns. `None` for an empty body (a statement
    /// without a result).
    pub fn meta(&mut self) -> Result<Option<Vec<Meta>>, ReadError> {
        match self.peek()? {
            None => {
                self.done = true;
                return Ok(None);
            }
            Some(b'{') => self.pos += 1,
            Some(_) => return Err(self.malformed()),
        }
        if !self.key("meta")? {
            return Err(self.malformed());
        }
        self.peek()?;
        let len = self.value_len()?;
        let meta: Vec<Meta> = serde_json::from_slice(&self.buf[self.pos..self.pos + len])
            .map_err(|_| self.malformed())?;
        self.pos += len;
        if self.peek()? != Some(b',') {
            return Err(self.malformed());
        }
        self.pos += 1;
        if !self.key("data")? || self.peek()? != Some(b'[') {
            return Err(self.malformed());
        }
        self.pos += 1;
        Ok(Some(meta))
    }

    /// The next row's values, raw; `None` after the last.
    pub fn row(&mut self) -> Result<Option<Vec<Box<RawValue>>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                self.peek()?;
            }
            Some(b']') => {
                self.pos += 1;
                self.done = true;
                return self.finish().map(|()| None);
            }
            _ => {}
        }
        if self.peek()? != Some(b'[') {
            return Err(self.malformed());
        }
        let len = self.value_len()?;
        let row: Vec<Box<RawValue>> = serde_json::from_slice(&self.buf[self.pos..self.pos + len])
            .map_err(|_| self.malformed())?;
        self.pos += len;
        Ok(Some(row))
    }

    /// After the data: the rest must be the closing statistics, not an exception.
    fn finish(&mut self) -> Result<(), ReadError> {
        let rest = self.rest();
        if rest.contains("Code: ") && rest.contains("Exception") {
            return Err(ReadError::Malformed(rest));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out the body a few bytes at a time, as a network would.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    const ANSWER: &str = "{\n\t\"meta\":\n\t[\n\t\t{\n\t\t\t\"name\": \"a]\",\n\t\t\t\"type\": \"String\"\n\t\t},\n\t\t{\"name\": \"b\", \"type\": \"Array(UInt8)\"}\n\t],\n\n\t\"data\":\n\t[\n\t\t[\"x\\\"]\", [1,2]],\n\t\t[null, []]\n\t],\n\n\t\"rows\": 2,\n\t\"statistics\": {\"elapsed\": 0.1}\n}\n";

    #[test]
    fn rows_are_read_one_by_one() {
        let mut reader = CompactReader::new(Trickle(ANSWER.as_bytes()));
        let meta = reader.meta().unwrap().unwrap();
        assert_eq!(meta[0].name, "a]");
        assert_eq!(meta[1].data_type, "Array(UInt8)");
        let first = reader.row().unwrap().unwrap();
        assert_eq!(first[0].get(), "\"x\\\"]\"");
        assert_eq!(first[1].get(), "[1,2]");
        let second = reader.row().unwrap().unwrap();
        assert_eq!(second[0].get(), "null");
        assert!(reader.row().unwrap().is_none());
        assert!(reader.row().unwrap().is_none());
    }

    #[test]
    fn an_exception_mid_answer_is_an_error() {
        let broken = "{\"meta\": [{\"name\": \"n\", \"type\": \"UInt64\"}], \"data\": [[\"1\"],\nCode: 159, e.displayText() = DB::Exception: Timeout exceeded";
        let mut reader = CompactReader::new(Trickle(broken.as_bytes()));
        reader.meta().unwrap().unwrap();
        reader.row().unwrap().unwrap();
        match reader.row() {
            Err(ReadError::Malformed(text)) => assert!(text.starts_with("Code: 159"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_body_has_no_columns() {
        let mut reader = CompactReader::new(Trickle(b""));
        assert_eq!(reader.meta().unwrap(), None);
    }
}

//! An HTTP client over `wasi:http`, the one way out of the sandbox.
//!
//! The host lets a request through only to the connection's own host and port (and the
//! operator's allow-list); anything else fails with [`HttpErrorKind::Denied`]. Bodies are
//! read as a stream ([`Response`] implements [`std::io::Read`]), so a large result need not
//! be held whole.
//!
//! ```ignore
//! let client = Client::for_config(&config, 8123, false)?;
//! let response = client.post("/?query=SELECT%201").body("").send()?;
//! let text = response.error_for_status()?.text()?;
//! ```

use std::time::Duration;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method as WasiMethod, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};
use crate::{Config, Error};

/// The HTTP methods a connector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

/// Why a request failed, before any response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The host's sandbox refused the destination.
    Denied,
    /// The name did not resolve, or the connection was refused or broke.
    Connect,
    /// A connect or read timeout passed.
    Timeout,
    /// TLS failed (certificate, protocol).
    Tls,
    /// The server answered with a status that [`Response::error_for_status`] refuses.
    Status(u16),
    /// Anything else (a malformed request or response).
    Protocol,
}

/// A failed request: its kind and a message fit for the user (no secret in it).
#[derive(Debug, Clone)]
pub struct HttpError {
    /// What went wrong.
    pub kind: HttpErrorKind,
    /// Says so in words, with the server's address.
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        match e.kind {
            HttpErrorKind::Timeout => Error::Timeout(e.message),
            HttpErrorKind::Denied
            | HttpErrorKind::Connect
            | HttpErrorKind::Tls
            | HttpErrorKind::Protocol
            | HttpErrorKind::Status(_) => Error::Connection(e.message),
        }
    }
}

fn error(kind: HttpErrorKind, message: impl Into<String>) -> HttpError {
    HttpError {
        kind,
        message: message.into(),
    }
}

fn from_code(code: ErrorCode, authority: &str) -> HttpError {
    use HttpErrorKind as K;
    match code {
        ErrorCode::HttpRequestDenied => error(
            K::Denied,
            format!(
                "the host denied a request to {authority}: plugins may only reach their \
                 connection's host and port"
            ),
        ),
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => {
            error(K::Timeout, format!("{authority} did not answer in time"))
        }
        ErrorCode::DnsError(_) => error(K::Connect, format!("cannot resolve {authority}")),
        ErrorCode::ConnectionRefused => {
            error(K::Connect, format!("{authority} refused the connection"))
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => {
            error(K::Tls, format!("TLS with {authority} failed: {code}"))
        }
        ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached => {
            error(K::Connect, format!("cannot reach {authority}: {code}"))
        }
        other => error(
            K::Protocol,
            format!("request to {authority} failed: {other}"),
        ),
    }
}

/// A client for one server: a base URL, default headers and a timeout.
#[derive(Debug, Clone)]
pub struct Client {
    https: bool,
    authority: String,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl Client {
    /// A client for `http://host:port` or `https://host:port`.
    pub fn new(base_url: &str) -> Result<Client, Error> {
        let (https, rest) = if let Some(rest) = base_url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base_url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(Error::Configuration(format!(
                "`{base_url}` is not an http:// or https:// URL"
            )));
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(Error::Configuration(format!(
                "`{base_url}` must be a scheme and an authority only"
            )));
        }
        Ok(Client {
            https,
            authority: authority.to_owned(),
            headers: Vec::new(),
            timeout: None,
        })
    }

    /// A client for the connection's host and port (`default_port` when none is set).
    pub fn for_config(config: &Config, default_port: u16, https: bool) -> Result<Client, Error> {
        let host = config.required_host()?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = config.port.unwrap_or(default_port);
        Client::new(&format!(
            "{}://{host}:{port}",
            if https { "https" } else { "http" }
        ))
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the connect and read timeouts of every request (the host may lower them).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// The `host:port` requests go to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A request with `method` to `path_and_query` (starting with `/`).
    pub fn request(&self, method: Method, path_and_query: &str) -> Request {
        Request {
            client: self.clone(),
            method,
            path: path_and_query.to_owned(),
            headers: self.headers.clone(),
            body: Vec::new(),
            timeout: self.timeout,
        }
    }

    /// A GET request.
    pub fn get(&self, path_and_query: &str) -> Request {
        self.request(Method::Get, path_and_query)
    }

    /// A POST request.
    pub fn post(&self, path_and_query: &str) -> Request {
        self.request(Method::Post, path_and_query)
    }
}

/// A request being built.
#[derive(Debug)]
pub struct Request {
    client: Client,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

impl Request {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Request {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Sets this request's connect and read timeouts.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and waits for the response's status and headers; the body is
    /// read from the [`Response`].
    pub fn send(self) -> Result<Response, HttpError> {
        let authority = self.client.authority.clone();
        let protocol = |what: &str| error(HttpErrorKind::Protocol, format!("{what} ({authority})"));
        let mut fields: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .filter(|(k, _)| k != "content-length")
            .collect();
        // The body is known whole: say its length rather than send it chunked.
        if !self.body.is_empty() || matches!(self.method, Method::Post | Method::Put) {
            fields.push((
                "content-length".to_owned(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        let headers =
            Fields::from_list(&fields).map_err(|e| protocol(&format!("bad header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let method = match self.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Delete => WasiMethod::Delete,
        };
        request
            .set_method(&method)
            .map_err(|()| protocol("bad method"))?;
        request
            .set_scheme(Some(if self.client.https {
                &Scheme::Https
            } else {
                &Scheme::Http
            }))
            .map_err(|()| protocol("bad scheme"))?;
        request
            .set_authority(Some(&authority))
            .map_err(|()| protocol("bad authority"))?;
        request
            .set_path_with_query(Some(&self.path))
            .map_err(|()| protocol("bad path"))?;
        let body = request
            .body()
            .map_err(|()| protocol("request body taken twice"))?;
        let options = self.timeout.map(|t| {
            let options = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_connect_timeout(Some(ns));
            let _ = options.set_first_byte_timeout(Some(ns));
            let _ = options.set_between_bytes_timeout(Some(ns));
            options
        });
        let pending = outgoing_handler::handle(request, options)
            .map_err(|code| from_code(code, &authority))?;
        {
            let stream = body
                .write()
                .map_err(|()| protocol("request body stream taken twice"))?;
            for chunk in self.body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|e| {
                    error(
                        HttpErrorKind::Connect,
                        format!("sending to {authority} failed: {e:?}"),
                    )
                })?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|code| from_code(code, &authority))?;
        let response = loop {
            match pending.get() {
                Some(result) => break result,
                None => pending.subscribe().block(),
            }
        };
        let response = response
            .map_err(|()| protocol("response taken twice"))?
            .map_err(|code| from_code(code, &authority))?;
        Response::new(response, authority)
    }
}

/// A response: status and headers at once, the body as a stream.
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    authority: String,
    // Fields drop in order: the stream before its body, the body before the response.
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
    _response: IncomingResponse,
    /// Bytes read from the stream but not yet handed out.
    pending: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("authority", &self.authority)
            .finish()
    }
}

/// Largest body [`Response::bytes`] reads into memory.
pub const MAX_BUFFERED_BODY: usize = 64 << 20;

impl Response {
    fn new(response: IncomingResponse, authority: String) -> Result<Response, HttpError> {
        let status = response.status();
        let headers = response.headers().entries();
        let body = response.consume().ok();
        let stream = body.as_ref().and_then(|b| b.stream().ok());
        Ok(Response {
            status,
            headers,
            authority,
            stream,
            _body: body,
            _response: response,
            pending: Vec::new(),
        })
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value (the first, when repeated), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Fails with the status and the start of the body unless the status is 2xx.
    pub fn error_for_status(mut self) -> Result<Response, HttpError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let status = self.status;
        let mut body = self.bytes().unwrap_or_default();
        body.truncate(2000);
        Err(error(
            HttpErrorKind::Status(status),
            format!(
                "{} answered {status}: {}",
                self.authority,
                String::from_utf8_lossy(&body).trim()
            ),
        ))
    }

    /// The next chunk of the body; `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Ok(Some(bytes)),
                Err(StreamError::Closed) => {
                    self.stream = None;
                    return Ok(None);
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(error(
                        HttpErrorKind::Connect,
                        format!(
                            "reading from {} failed: {}",
                            self.authority,
                            e.to_debug_string()
                        ),
                    ));
                }
            }
        }
    }

    /// The whole body (at most [`MAX_BUFFERED_BODY`] bytes).
    pub fn bytes(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk()? {
            all.extend_from_slice(&chunk);
            if all.len() > MAX_BUFFERED_BODY {
                return Err(error(
                    HttpErrorKind::Protocol,
                    format!(
                        "the answer from {} is larger than {MAX_BUFFERED_BODY} bytes",
                        self.authority
                    ),
                ));
            }
        }
        Ok(all)
    }

    /// The whole body as text.
    pub fn text(mut self) -> Result<String, HttpError> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }

    /// The whole body as JSON.
    pub fn json(mut self) -> Result<serde_json::Value, HttpError> {
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            error(
                HttpErrorKind::Protocol,
                format!("{} sent JSON that does not parse: {e}", self.authority),
            )
        })
    }
}

impl std::io::Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.chunk().map_err(std::io::Error::other)? {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// `application/x-www-form-urlencoded`-style encoding of query-string pairs.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `Basic` authorization header value for a user and password.
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            query_string([("query", "SELECT 1"), ("x", "")]),
            "query=SELECT%201&x="
        );
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(Client::new("http://127.0.0.1:8123").is_ok());
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("http://x/path").is_err());
        let mut config = Config::new("x");
        config.host = Some("::1".into());
        let client = Client::for_config(&config, 8123, false).unwrap();
        assert_eq!(client.authority(), "[::1]:8123");
    }
}

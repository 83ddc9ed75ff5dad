//! Kept-alive HTTP/1 connections for plugins' plain-HTTP requests.
//!
//! `wasmtime_wasi_http::default_send_request` opens a new TCP connection for every request,
//! which costs a round trip and the server's per-connection set-up on every query. Plugins
//! talk to the same few servers over and over, so connections to an address (one that the
//! egress check has already allowed) are kept and reused across requests and instances.
//! HTTPS requests still go through the default sender.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// Idle connections kept per address.
const IDLE_PER_ADDRESS: usize = 16;

/// A connection idle for longer is not reused: the server may be closing it just as the
/// next request goes out (ClickHouse closes idle connections after 3 s by default), which
/// would fail that request with a protocol error.
const REUSE_WITHIN: Duration = Duration::from_secs(2);

/// An idle connection and when it was last given back.
type Idle = (SendRequest<WasiBody>, Instant);

/// Idle connections, by address.
#[derive(Default)]
pub struct ConnectionPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

impl ConnectionPool {
    /// An idle connection to `address` that can take a request now.
    fn take(&self, address: SocketAddr) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().unwrap();
        let senders = idle.get_mut(&address)?;
        senders.retain(|(sender, kept)| !sender.is_closed() && kept.elapsed() < REUSE_WITHIN);
        while let Some((sender, kept)) = senders.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
            // Still reading an earlier response: not usable now.
            if senders.len() < IDLE_PER_ADDRESS {
                senders.insert(0, (sender, kept));
                break;
            }
        }
        None
    }

    /// Keeps a connection for later; it becomes ready once its response has been read.
    fn keep(&self, address: SocketAddr, sender: SendRequest<WasiBody>) {
        let mut idle = self.idle.lock().unwrap();
        let senders = idle.entry(address).or_default();
        senders.retain(|(s, kept)| !s.is_closed() && kept.elapsed() < REUSE_WITHIN);
        if senders.len() < IDLE_PER_ADDRESS {
            senders.push((sender, Instant::now()));
        }
    }

    async fn connect(
        address: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<SendRequest<WasiBody>, Error> {
        let stream = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = tokio::time::timeout(
            connect_timeout,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "plugin", error = %e, "plugin HTTP connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `request` to `address` over a kept connection, or a new one.
    pub async fn send(
        &self,
        address: SocketAddr,
        mut request: http::Request<WasiBody>,
        connect_timeout: Duration,
        first_byte_timeout: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        // On the wire the request names only its path; the Host header names the server.
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(
                request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/"),
            )
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let send = async {
            if let Some(mut sender) = self.take(address) {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok((sender, response)),
                    // The kept connection was closed by the server before the request went
                    // out (it closes idle or failed connections): the request comes back
                    // unsent, and goes out once more on a new connection.
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(Error::from(e.into_error())),
                    },
                }
            }
            let mut sender = Self::connect(address, connect_timeout).await?;
            let response = sender.send_request(request).await.map_err(Error::from)?;
            Ok((sender, response))
        };
        let (sender, response) = tokio::time::timeout(first_byte_timeout, send)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        // A response that ends its connection leaves nothing to reuse; nor, to be safe, does
        // an error response (servers may close the connection after one without saying so,
        // and a request sent on it would fail).
        let closing = response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if !closing && response.status().is_success() {
            self.keep(address, sender);
        }
        Ok(response.map(|body| body.map_err(Error::from).boxed_unsync()))
    }
}

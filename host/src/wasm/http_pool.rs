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
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// Idle connections kept per address.
const IDLE_PER_ADDRESS: usize = 16;

/// Idle connections, by address.
#[derive(Default)]
pub struct ConnectionPool {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<WasiBody>>>>,
}

impl ConnectionPool {
    /// An idle connection to `address` that can take a request now.
    fn take(&self, address: SocketAddr) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().unwrap();
        let senders = idle.get_mut(&address)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
            // Closed, or still reading an earlier response: not usable now.
            if !sender.is_closed() && senders.len() < IDLE_PER_ADDRESS {
                senders.insert(0, sender);
                break;
            }
        }
        None
    }

    /// Keeps a connection for later; it becomes ready once its response has been read.
    fn keep(&self, address: SocketAddr, sender: SendRequest<WasiBody>) {
        let mut idle = self.idle.lock().unwrap();
        let senders = idle.entry(address).or_default();
        senders.retain(|s| !s.is_closed());
        if senders.len() < IDLE_PER_ADDRESS {
            senders.push(sender);
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
        let mut sender = match self.take(address) {
            Some(sender) => sender,
            None => Self::connect(address, connect_timeout).await?,
        };
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        self.keep(address, sender);
        Ok(response.map(|body| body.map_err(Error::from).boxed_unsync()))
    }
}

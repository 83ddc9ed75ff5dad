//! What a plugin instance may touch: the state of its store.
//!
//! The WASI context grants nothing (no preopened directory, no environment variable, no
//! socket, no name lookup); stdout and stderr go to the host's log under the plugin's name.
//! Outbound HTTP is the only way out, and [`Egress`] lets a request through only towards the
//! connection being served (or an operator allow-list), checked on the resolved address.
//! Memory growth past the limit traps, and is recorded so the error can say so.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::bindings::{LogLevel, plugboard::connector};
use super::http_pool::ConnectionPool;

/// Everything an instance's store holds.
pub struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: Egress,
    pub memory: MemoryLimit,
    /// Epoch ticks (10 ms each) the current call has run for; see `engine.rs`.
    pub cpu_ticks: u64,
    plugin: Arc<str>,
}

impl StoreState {
    pub fn new(plugin: Arc<str>, egress: Egress, memory_bytes: usize) -> StoreState {
        let wasi = WasiCtxBuilder::new()
            .stdout(LogOutput {
                plugin: plugin.clone(),
                stream: "stdout",
            })
            .stderr(LogOutput {
                plugin: plugin.clone(),
                stream: "stderr",
            })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress,
            memory: MemoryLimit {
                max_bytes: memory_bytes,
                exceeded: false,
            },
            cpu_ticks: 0,
            plugin,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl connector::types::Host for StoreState {}

impl connector::host::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) {
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }
}

/// The memory limit, enforced through wasmtime's resource limiter. Growth past it fails
/// and traps (rather than returning -1, which a Rust guest turns into an abort that looks
/// like any panic); `exceeded` lets the host name the cause.
pub struct MemoryLimit {
    pub max_bytes: usize,
    pub exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded",
                self.max_bytes >> 20
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Where outbound requests may go: the operator's part, shared by every instance.
#[derive(Debug, Clone, Default)]
pub struct EgressRules {
    /// `host:port` pairs every plugin may reach besides its connection's own.
    pub allow: Vec<(String, u16)>,
    /// Whether link-local and cloud metadata addresses may be reached.
    pub allow_link_local: bool,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("target", &self.target)
            .finish()
    }
}

/// The outbound-request hook of one instance: its connection's address plus the rules.
pub struct Egress {
    plugin: Arc<str>,
    target: Option<(String, u16)>,
    rules: Arc<EgressRules>,
    /// Upper bound on each outbound request's connect and read timeouts.
    timeout: Duration,
    pool: Arc<ConnectionPool>,
}

impl Egress {
    pub fn new(
        plugin: Arc<str>,
        target: Option<(String, u16)>,
        rules: Arc<EgressRules>,
        timeout: Duration,
        pool: Arc<ConnectionPool>,
    ) -> Egress {
        Egress {
            plugin,
            target,
            rules,
            timeout,
            pool,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        let plugin = self.plugin.clone();
        let target = self.target.clone();
        let rules = self.rules.clone();
        let cap = self.timeout;
        let pool = self.pool.clone();
        Box::new(async move {
            let uri = request.uri().clone();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let address = match check(&host, port, target.as_ref(), &rules).await {
                Ok(address) => address,
                Err(reason) => {
                    tracing::warn!(target: "plugin", plugin = &*plugin, host, port, "outbound request denied: {reason}");
                    return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                }
            };
            let clamp = |d: Option<Duration>| Some(d.unwrap_or(cap).min(cap));
            let options = RequestOptions {
                connect_timeout: clamp(options.and_then(|o| o.connect_timeout)),
                first_byte_timeout: clamp(options.and_then(|o| o.first_byte_timeout)),
                between_bytes_timeout: clamp(options.and_then(|o| o.between_bytes_timeout)),
            };
            // Plain HTTP goes to the address that was checked, over a kept connection, so a
            // second lookup cannot answer differently (DNS rebinding); the Host header keeps
            // the name. Over HTTPS the certificate must match the name, which rebinding
            // cannot forge.
            if !https {
                let response = pool
                    .send(
                        address,
                        request,
                        options.connect_timeout.unwrap_or(cap),
                        options.first_byte_timeout.unwrap_or(cap),
                    )
                    .await?;
                let done: Box<dyn Future<Output = _> + Send> = Box::new(async { Ok(()) });
                return Ok((response, done));
            }
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Resolves `host` and decides whether a plugin serving `target` may reach it on `port`;
/// returns the address to connect to, or why not.
pub async fn check(
    host: &str,
    port: u16,
    target: Option<&(String, u16)>,
    rules: &EgressRules,
) -> Result<SocketAddr, String> {
    let resolved = resolve(host, port).await?;
    let named = |(h, p): &(String, u16)| *p == port && h.eq_ignore_ascii_case(host);
    let mut allowed = target.is_some_and(named) || rules.allow.iter().any(named);
    if !allowed {
        // The same place under another name (`localhost` for `127.0.0.1`) is allowed:
        // every address the name resolves to must be one the target resolves to.
        let mut known = HashSet::new();
        for (h, p) in target.into_iter().chain(rules.allow.iter()) {
            if *p == port {
                known.extend(resolve(h, *p).await.unwrap_or_default());
            }
        }
        allowed = resolved.iter().all(|a| known.contains(a));
    }
    if !allowed {
        return Err(format!(
            "{host}:{port} is neither the connection's address nor on the allow-list"
        ));
    }
    if !rules.allow_link_local
        && let Some(bad) = resolved.iter().find(|a| is_link_local_or_metadata(a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, a link-local or metadata address",
            bad.ip()
        ));
    }
    Ok(resolved[0])
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    Ok(found)
}

/// Link-local ranges (where cloud metadata services live) and the known metadata
/// addresses outside them.
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.octets() == [100, 100, 100, 200] || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_link_local_or_metadata(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]
                || v6.is_unspecified()
        }
    }
}

/// A plugin's stdout or stderr: each line goes to the host's log at DEBUG, tagged with the
/// plugin and the stream, never to the host's own output.
struct LogOutput {
    plugin: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            plugin: self.plugin.clone(),
            stream: self.stream,
            line: Vec::new(),
        })
    }
}

/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

struct LineLogger {
    plugin: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        if !self.line.is_empty() {
            let text = String::from_utf8_lossy(&self.line);
            tracing::debug!(target: "plugin", plugin = &*self.plugin, stream = self.stream, "{}", text.trim_end());
            self.line.clear();
        }
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &byte in buf {
            if byte == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE {
                self.line.push(byte);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EgressRules {
        EgressRules::default()
    }

    #[tokio::test]
    async fn only_the_connections_address_is_reachable() {
        let target = ("127.0.0.1".to_owned(), 8123);
        assert!(
            check("127.0.0.1", 8123, Some(&target), &rules())
                .await
                .is_ok()
        );
        assert!(
            check("localhost", 8123, Some(&target), &rules())
                .await
                .is_ok()
        );
        let other_port = check("127.0.0.1", 9000, Some(&target), &rules()).await;
        assert!(other_port.unwrap_err().contains("allow-list"));
        assert!(
            check("127.0.0.2", 8123, Some(&target), &rules())
                .await
                .is_err()
        );
        assert!(check("127.0.0.1", 8123, None, &rules()).await.is_err());
    }

    #[tokio::test]
    async fn the_allow_list_adds_addresses() {
        let rules = EgressRules {
            allow: vec![("127.0.0.1".into(), 9000)],
            allow_link_local: false,
        };
        assert!(check("127.0.0.1", 9000, None, &rules).await.is_ok());
    }

    #[tokio::test]
    async fn metadata_addresses_are_refused_even_as_the_target() {
        let target = ("169.254.169.254".to_owned(), 80);
        let denied = check("169.254.169.254", 80, Some(&target), &rules()).await;
        assert!(denied.unwrap_err().contains("metadata"));
        let allowed = EgressRules {
            allow_link_local: true,
            ..rules()
        };
        assert!(
            check("169.254.169.254", 80, Some(&target), &allowed)
                .await
                .is_ok()
        );
        assert!(is_link_local_or_metadata("fe80::1".parse().unwrap()));
        assert!(is_link_local_or_metadata("fd00:ec2::254".parse().unwrap()));
        assert!(is_link_local_or_metadata(
            "::ffff:169.254.1.1".parse().unwrap()
        ));
        assert!(!is_link_local_or_metadata("10.0.0.1".parse().unwrap()));
    }
}

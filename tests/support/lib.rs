//! What the end-to-end tests and benchmarks share: real servers started and stopped by the
//! test set-up itself, on loopback ports picked at run time.
//!
//! - [`postgres`]: a throw-away PostgreSQL cluster (initdb in a temporary directory);
//! - [`server`]: a Plugboard server on `127.0.0.1:0`, with its log captured.

pub mod bench;
pub mod clickhouse;
pub mod conformance;
pub mod mariadb;
pub mod mongo;
pub mod postgres;
pub mod server;
pub mod wasm;

/// A free TCP port on 127.0.0.1, as the kernel picks it. Another process could take it
/// before it is used; servers started on it retry with a new one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// Whether this process runs as root (servers that refuse root then run as their own user).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// If this process dies without running its exit handlers, a small shell process notices,
/// stops the server `pid` with `signal` (then SIGKILL), and removes its directory.
pub(crate) fn spawn_watchdog(pid: u32, signal: &str, dir: &std::path::Path) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
         kill -{signal} {pid} 2>/dev/null; sleep 3; kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    let _ = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

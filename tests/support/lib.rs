//! What the end-to-end tests and benchmarks share: real servers started and stopped by the
//! test set-up itself, on loopback ports picked at run time.
//!
//! - [`postgres`]: a throw-away PostgreSQL cluster (initdb in a temporary directory);
//! - [`server`]: a Plugboard server on `127.0.0.1:0`, with its log captured.

/// The body of a `shared()` constructor: one server of type `$server`, started by `$start`
/// on first use and stopped (its `stop()`) when the process exits.
macro_rules! shared_server {
    ($server:ty, $start:expr) => {{
        static SHARED: std::sync::OnceLock<$server> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            extern "C" fn stop_shared() {
                if let Some(server) = SHARED.get() {
                    server.stop();
                }
            }
            // SAFETY: registering a plain `extern "C" fn` with no captured state.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(stop_shared);
            }
            $start
        })
    }};
}

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

/// Stops a server this process started: SIGTERM to `pid` (a clean shutdown), up to 20 s
/// for it to exit, then SIGKILL; reaps it and removes its directory.
pub(crate) fn stop_server(
    pid: i32,
    child: &std::sync::Mutex<Option<std::process::Child>>,
    dir: &std::path::Path,
) {
    // SAFETY: kill(2) with a pid we started and a valid signal.
    #[allow(unsafe_code)]
    let signal = |sig| unsafe { libc::kill(pid, sig) == 0 };
    if signal(libc::SIGTERM) {
        let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let exited = match child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => !signal(0),
            };
            if exited {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Some(c) = child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

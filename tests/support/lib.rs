//! What the end-to-end tests and benchmarks share: real servers started and stopped by the
//! test set-up itself, on loopback ports picked at run time.
//!
//! - [`postgres`]: a throw-away PostgreSQL cluster (initdb in a temporary directory);
//! - [`server`]: a Plugboard server on `127.0.0.1:0`, with its log captured.

pub mod conformance;
pub mod mariadb;
pub mod mongo;
pub mod postgres;
pub mod server;

/// A free TCP port on 127.0.0.1, as the kernel picks it. Another process could take it
/// before it is used; servers started on it retry with a new one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

//! Writing to the host's log. Lines are tagged with the plugin's name; never log a secret.
//! (`println!` and `eprintln!` also reach the host's log, at DEBUG.)

use crate::bindings::plugboard::connector::host::{LogLevel, log};

/// A DEBUG line.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

/// An INFO line.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// A WARN line.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// An ERROR line.
pub fn error(message: &str) {
    log(LogLevel::Error, message);
}

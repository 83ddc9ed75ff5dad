//! From a connection's configuration to a confined file path, connect options and a pool.
//!
//! A connection is a database file. Plugboard opens only files inside the directories the
//! operator allows (`PLUGBOARD_SQLITE_ALLOWED_DIRS`; none by default), checked on the
//! canonical path so that `..` and symbolic links cannot lead outside them. Files open
//! read-only unless the connection opts in with `"writable": true`, and are never created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugboard_connector::{ConnectionConfig, Error, PoolSettings, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, SqlitePool};

pub(crate) const KNOWN_OPTIONS: &[&str] = &["writable", "read_only", "busy_timeout_ms", "pool"];

/// The environment variable that lists the allowed directories.
pub const ALLOWED_DIRS_VAR: &str = "PLUGBOARD_SQLITE_ALLOWED_DIRS";

/// Everything a session needs to open its file.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub options: SqliteConnectOptions,
    pub pool: PoolSettings,
    pub path: PathBuf,
}

/// The file a connection names, if it lies inside an allowed directory.
pub(crate) fn confine(path: &str, allowed: &[PathBuf]) -> Result<PathBuf> {
    if allowed.is_empty() {
        return Err(Error::Configuration(format!(
            "no directory is allowed for SQLite files; start Plugboard with {ALLOWED_DIRS_VAR} \
             set to the directories it may open (colon-separated)"
        )));
    }
    let requested = Path::new(path);
    if !requested.is_absolute() {
        return Err(Error::Configuration(format!(
            "the SQLite path must be absolute, got `{path}`"
        )));
    }
    let canonical = requested.canonicalize().map_err(|e| {
        Error::Configuration(format!("the SQLite file `{path}` cannot be opened: {e}"))
    })?;
    if !canonical.is_file() {
        return Err(Error::Configuration(format!("`{path}` is not a file")));
    }
    if !allowed.iter().any(|dir| canonical.starts_with(dir)) {
        return Err(Error::Configuration(format!(
            "`{path}` is outside the directories allowed for SQLite files ({}); {ALLOWED_DIRS_VAR} \
             lists them",
            allowed
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(canonical)
}

impl Target {
    pub(crate) fn from_config(config: &ConnectionConfig, allowed: &[PathBuf]) -> Result<Target> {
        config.reject_unknown_options(KNOWN_OPTIONS)?;
        if config.host.is_some()
            || config.port.is_some()
            || config.username.is_some()
            || config.password.is_some()
        {
            return Err(Error::Configuration(
                "a SQLite connection is a file: give its absolute path as `database`, and no \
                 host, port, username or password"
                    .into(),
            ));
        }
        let path = config
            .database
            .as_deref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                Error::Configuration("sqlite needs the database file's path in `database`".into())
            })?;
        let path = confine(path, allowed)?;
        // Files open read-only (the engine refuses writes) unless `writable`; `read_only`
        // is accepted too, as every engine takes it.
        let writable = config.bool_option("writable")?.unwrap_or(false);
        if writable && config.read_only()? {
            return Err(Error::Configuration(
                "`writable` and `read_only` cannot both be true".into(),
            ));
        }
        let busy = config
            .integer_option("busy_timeout_ms", 0..=600_000)?
            .unwrap_or(5_000);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(!writable)
            .create_if_missing(false)
            .busy_timeout(Duration::from_millis(busy))
            // A statement's text may hold a secret: sqlx must not log it.
            .disable_statement_logging();
        Ok(Target {
            options,
            pool: config.pool_settings()?,
            path,
        })
    }

    /// A pool that opens the file on first use.
    pub(crate) fn lazy_pool(&self) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(self.pool.max_size)
            .min_connections(0)
            .acquire_timeout(self.pool.acquire_timeout())
            .idle_timeout(self.pool.idle_timeout())
            .max_lifetime(self.pool.max_lifetime())
            .connect_lazy_with(self.options.clone())
    }
}

/// The allowed directories from the environment variable's value, canonicalised; entries
/// that do not exist are left out (they could not hold a file anyway).
pub fn allowed_dirs_from(value: &str) -> Vec<PathBuf> {
    value
        .split(':')
        .filter(|d| !d.trim().is_empty())
        .filter_map(|d| Path::new(d.trim()).canonicalize().ok())
        .filter(|d| d.is_dir())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_allowed_directories() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let other = root.path().join("other");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(allowed.join("a.db"), b"").unwrap();
        std::fs::write(other.join("b.db"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(other.join("b.db"), allowed.join("link.db")).unwrap();
        let dirs = allowed_dirs_from(&format!("{}:/does/not/exist", allowed.display()));
        assert_eq!(dirs.len(), 1);

        assert!(confine(allowed.join("a.db").to_str().unwrap(), &dirs).is_ok());
        let escape = format!("{}/../other/b.db", allowed.display());
        for path in [
            other.join("b.db").display().to_string(),
            escape,
            allowed.join("link.db").display().to_string(),
        ] {
            let err = confine(&path, &dirs).unwrap_err();
            assert!(
                matches!(&err, Error::Configuration(m) if m.contains("outside")),
                "{path}: {err}"
            );
        }
        let err = confine("relative.db", &dirs).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("absolute")));
        let err = confine(allowed.join("missing.db").to_str().unwrap(), &dirs).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains("cannot be opened")));
        let err = confine(allowed.join("a.db").to_str().unwrap(), &[]).unwrap_err();
        assert!(matches!(err, Error::Configuration(m) if m.contains(ALLOWED_DIRS_VAR)));
    }
}

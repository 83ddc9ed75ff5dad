//! Plugboard, the database connection host: the server and its parts.
//!
//! - [`input`]: request bodies and their validation;
//! - [`service`]: every operation on connections, used by the API;
//! - [`api`]: the HTTP API over the service;
//! - [`store`]: the registry (SQLite by default, PostgreSQL when configured);
//! - [`secrets`]: passwords sealed with AES-256-GCM;
//! - [`catalog`]: which plugin serves which engine;
//! - [`sessions`]: one live session (and pool) per connection;
//! - [`queries`]: running queries (ids, cancellation) and [`history`]: finished ones;
//! - [`health`]: the background connection checker; [`metrics`]: `/metrics`;
//! - [`wasm`]: the WebAssembly plugin runtime and the plugins folder.
//!
//! `main.rs` only parses configuration and sets up logging; [`start`] builds the service and
//! [`serve`] runs the API on a listener until a shutdown future completes, so tests can run a
//! real server on `127.0.0.1:0`.

pub mod api;
pub mod catalog;
pub mod health;
pub mod history;
pub mod input;
pub mod metrics;
pub mod plugin_check;
pub mod queries;
pub mod secrets;
pub mod service;
pub mod sessions;
pub mod store;
pub mod wasm;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::catalog::Catalog;
use crate::secrets::{KeySource, SecretBox};
use crate::service::Service;
use crate::store::Store;

/// What the binary logs unless `RUST_LOG` says otherwise: sqlx logs every statement at
/// DEBUG and slow ones at INFO, so only its warnings are kept.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

/// How long a connection's session (and its pool) stays open without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(600);

/// Everything the server is configured with.
#[derive(Clone)]
pub struct Settings {
    /// Where the SQLite store and the key file live.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL for a shared store instead of the embedded one.
    pub database_url: Option<String>,
    /// The current encryption key (base64), instead of the key file.
    pub encryption_key: Option<String>,
    /// Keys that still decrypt (base64, comma-separated), for rotation.
    pub previous_encryption_keys: Option<String>,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Directories the SQLite plugin may open files in (`PLUGBOARD_SQLITE_ALLOWED_DIRS`).
    pub sqlite_allowed_dirs: Vec<PathBuf>,
    /// The folder of WASM plugins; `<data_dir>/plugins` when `None`.
    pub plugins_dir: Option<PathBuf>,
    /// What each WASM plugin call may use.
    pub plugin_limits: wasm::Limits,
    /// Where WASM plugins may send requests besides their connection's own address.
    pub plugin_egress: wasm::EgressRules,
    /// What query history keeps, and for how long.
    pub history: history::HistorySettings,
    /// How often connections are checked in the background.
    pub health: health::HealthSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|_| "(set)"))
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "(set)"),
            )
            .field("body_limit", &self.body_limit)
            .field("sqlite_allowed_dirs", &self.sqlite_allowed_dirs)
            .field("plugins_dir", &self.plugins_dir())
            .field("plugin_limits", &self.plugin_limits)
            .field("plugin_egress", &self.plugin_egress)
            .field("history", &self.history)
            .field("health", &self.health)
            .finish()
    }
}

impl Settings {
    /// Settings for `data_dir` with everything else at its default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            data_dir: data_dir.into(),
            database_url: None,
            encryption_key: None,
            previous_encryption_keys: None,
            body_limit: api::DEFAULT_BODY_LIMIT,
            sqlite_allowed_dirs: Vec::new(),
            plugins_dir: None,
            plugin_limits: wasm::Limits::default(),
            plugin_egress: wasm::EgressRules::default(),
            history: history::HistorySettings::default(),
            health: health::HealthSettings::default(),
        }
    }

    /// The folder WASM plugins are loaded from.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }
}

/// Prepares the data directory, loads the keys, opens and migrates the store.
pub async fn start(settings: &Settings) -> anyhow::Result<Arc<Service>> {
    if !settings.data_dir.exists() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", settings.data_dir.display()))?;
        }
    }
    if settings.database_url.is_some() && settings.encryption_key.is_none() {
        anyhow::bail!(
            "PLUGBOARD_ENCRYPTION_KEY must be set when PLUGBOARD_DATABASE_URL is: replicas that \
             share a store must share its key (generate one with `openssl rand -base64 32`)"
        );
    }
    let (secrets, source) = SecretBox::load(
        settings.encryption_key.as_deref(),
        settings.previous_encryption_keys.as_deref(),
        &settings.data_dir,
    )?;
    match source {
        KeySource::NewFile(path) => tracing::warn!(
            path = %path.display(),
            key_id = secrets.current_key_id(),
            "created a new encryption key file (mode 0600); back it up: stored passwords cannot be decrypted without it"
        ),
        KeySource::File(path) => {
            tracing::info!(path = %path.display(), key_id = secrets.current_key_id(), "using the encryption key file")
        }
        KeySource::Environment => tracing::info!(
            key_id = secrets.current_key_id(),
            "using the encryption key from PLUGBOARD_ENCRYPTION_KEY"
        ),
    }
    let store = match &settings.database_url {
        Some(url) => Store::open_postgres(url)
            .await
            .context("opening the PostgreSQL store")?,
        None => {
            let path = settings.data_dir.join("registry.db");
            let store = Store::open_sqlite(&path)
                .await
                .with_context(|| format!("opening the store {}", path.display()))?;
            tracing::info!(path = %path.display(), "registry store ready");
            store
        }
    };
    let catalog = Catalog::with_native_plugins(settings.sqlite_allowed_dirs.clone());
    let runtime = wasm::Runtime::new(
        settings.plugin_limits.clone(),
        settings.plugin_egress.clone(),
        Some(settings.data_dir.join("plugin-cache")),
    )?;
    let plugins_dir = settings.plugins_dir();
    std::fs::create_dir_all(&plugins_dir)
        .with_context(|| format!("creating the plugins folder {}", plugins_dir.display()))?;
    let mut folder = wasm::PluginFolder::new(plugins_dir.clone(), runtime, catalog.clone());
    folder.scan().await;
    tracing::info!(dir = %plugins_dir.display(), plugins = catalog.plugins().len(), "plugins ready; watching the folder for changes");
    let service = Arc::new(Service::new(
        store,
        secrets,
        catalog,
        settings.history.clone(),
    ));
    service.keep_running(folder.watch());
    if settings.health.interval.is_zero() {
        tracing::info!("background health checks are off");
    } else {
        service.keep_running(health::spawn_checker(
            service.clone(),
            settings.health.clone(),
        ));
    }
    Ok(service)
}

/// Serves the API on `listener` until `shutdown` completes, then closes every session and
/// the store.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let sweeper = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SESSION_IDLE / 10);
            loop {
                tick.tick().await;
                service.close_idle_sessions(SESSION_IDLE).await;
            }
        })
    };
    let app = api::router(service.clone(), body_limit);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    // Queries recorded but not yet written are written before the writer stops.
    service.history.flush().await;
    service.stop_background();
    service.sessions.close_all().await;
    service.store.close().await;
    result.context("serving HTTP")
}

//! The `plugboard` binary: parses configuration, sets up logging, and runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plugboard::Settings;

#[derive(Parser)]
#[command(name = "plugboard", version, about = "A database connection host")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    ///
    /// Secrets are read from the environment, never from flags (which `ps` shows):
    /// PLUGBOARD_ENCRYPTION_KEY (base64, 32 bytes; default: a key file in the data
    /// directory), PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS (comma-separated, for rotation),
    /// PLUGBOARD_DATABASE_URL (a PostgreSQL store shared by replicas; default: SQLite in the
    /// data directory). PLUGBOARD_SQLITE_ALLOWED_DIRS (colon-separated) lists the directories
    /// whose SQLite files connections may open; none by default.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the registry and the key file live.
        #[arg(long, default_value = "./plugboard-data")]
        data_dir: PathBuf,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = plugboard::api::DEFAULT_BODY_LIMIT)]
        max_body_bytes: usize,
        #[command(flatten)]
        plugins: PluginFlags,
        #[command(flatten)]
        operations: OperationFlags,
    },
    /// Work with WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a component as the server would and, given a configuration, check it against a
    /// live target (test, databases, introspection, a query in batches, error kinds).
    /// Exits non-zero when anything fails.
    Check {
        /// The `.wasm` component.
        file: PathBuf,
        /// A connection field or option, `key=value` (host, port, database, username,
        /// password, or any option; repeat for each).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// The query run in batches.
        #[arg(long, default_value = "SELECT 1")]
        query: String,
    },
}

/// Query history and health checks.
#[derive(clap::Args)]
struct OperationFlags {
    /// What query history keeps of a query's text: its SHA-256 only, or the text as well
    /// (which may hold secrets, such as `ALTER ROLE .. PASSWORD`).
    #[arg(long, value_enum, default_value = "hash")]
    history_sql: plugboard::history::SqlRecording,
    /// Query history older than this many days is deleted.
    #[arg(long, default_value_t = 30)]
    history_max_age_days: u64,
    /// Only the newest this many queries are kept in the history.
    #[arg(long, default_value_t = 100_000)]
    history_max_rows: i64,
    /// Seconds between background health checks of every connection; 0 turns them off.
    #[arg(long, default_value_t = 60)]
    health_interval_seconds: u64,
    /// Health checks running at once, at most.
    #[arg(long, default_value_t = 8)]
    health_concurrency: usize,
}

impl OperationFlags {
    fn apply(self, settings: &mut Settings) {
        settings.history = plugboard::history::HistorySettings {
            sql: self.history_sql,
            max_age: std::time::Duration::from_secs(self.history_max_age_days * 24 * 3600),
            max_rows: self.history_max_rows.max(1),
        };
        settings.health = plugboard::health::HealthSettings {
            interval: std::time::Duration::from_secs(self.health_interval_seconds),
            concurrency: self.health_concurrency.max(1),
        };
    }
}

/// The WASM plugin runtime's settings.
#[derive(clap::Args)]
struct PluginFlags {
    /// The folder of WASM plugins, watched for changes (default: DATA_DIR/plugins).
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// Memory each plugin instance may use, in MiB.
    #[arg(long, default_value_t = 256)]
    plugin_memory_mib: usize,
    /// Guest CPU time each plugin call may use, in seconds.
    #[arg(long, default_value_t = 10)]
    plugin_cpu_seconds: u64,
    /// Wall-clock time of a plugin call without its own timeout, in seconds (host calls
    /// such as outbound HTTP included).
    #[arg(long, default_value_t = 60)]
    plugin_timeout_seconds: u64,
    /// Calls one plugin may run at once.
    #[arg(long, default_value_t = 32)]
    plugin_concurrency: usize,
    /// A HOST:PORT every plugin may reach besides its connection's own (repeatable).
    #[arg(long = "plugin-allow", value_name = "HOST:PORT")]
    plugin_allow: Vec<String>,
    /// Let plugins reach link-local and cloud metadata addresses (169.254.0.0/16, ...).
    #[arg(long)]
    plugin_allow_link_local: bool,
}

impl PluginFlags {
    fn apply(self, settings: &mut Settings) -> anyhow::Result<()> {
        settings.plugins_dir = self.plugins_dir;
        settings.plugin_limits = plugboard::wasm::Limits {
            memory_bytes: self.plugin_memory_mib.max(1) << 20,
            cpu: std::time::Duration::from_secs(self.plugin_cpu_seconds.max(1)),
            call_timeout: std::time::Duration::from_secs(self.plugin_timeout_seconds.max(1)),
            busy_instances: self.plugin_concurrency.max(1),
        };
        let mut allow = Vec::new();
        for entry in self.plugin_allow {
            let (host, port) = entry
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("--plugin-allow `{entry}` is not HOST:PORT"))?;
            allow.push((host, port));
        }
        settings.plugin_egress = plugboard::wasm::EgressRules {
            allow,
            allow_link_local: self.plugin_allow_link_local,
        };
        Ok(())
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| plugboard::DEFAULT_LOG_FILTER.into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    match Cli::parse().command {
        Command::Serve {
            listen,
            data_dir,
            max_body_bytes,
            plugins,
            operations,
        } => {
            let mut settings = Settings {
                database_url: env_var("PLUGBOARD_DATABASE_URL"),
                encryption_key: env_var("PLUGBOARD_ENCRYPTION_KEY"),
                previous_encryption_keys: env_var("PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS"),
                body_limit: max_body_bytes,
                sqlite_allowed_dirs: plugboard_plugin_sqlite::connect::allowed_dirs_from(
                    &env_var(plugboard_plugin_sqlite::connect::ALLOWED_DIRS_VAR)
                        .unwrap_or_default(),
                ),
                ..Settings::new(data_dir)
            };
            plugins.apply(&mut settings)?;
            operations.apply(&mut settings);
            let service = plugboard::start(&settings).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, "plugboard listening");
            plugboard::serve(listener, service, settings.body_limit, shutdown_signal()).await?;
            tracing::info!("plugboard stopped");
            Ok(())
        }
        Command::Plugin {
            command:
                PluginCommand::Check {
                    file,
                    config,
                    query,
                },
        } => {
            let (report, passed) = plugboard::plugin_check::check(&file, &config, &query).await?;
            print!("{report}");
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

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
    },
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    match Cli::parse().command {
        Command::Serve {
            listen,
            data_dir,
            max_body_bytes,
        } => {
            let settings = Settings {
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
            let service = plugboard::start(&settings).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, "plugboard listening");
            plugboard::serve(listener, service, settings.body_limit, shutdown_signal()).await?;
            tracing::info!("plugboard stopped");
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

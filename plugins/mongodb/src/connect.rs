//! From a connection's configuration to driver options.

use std::time::Duration;

use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use plugboard_connector::{ConnectionConfig, Result};

pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "auth_source",
    "authSource",
    "tls",
    "tls_ca_file",
    "tls_allow_invalid_certificates",
    "sample_size",
    "sample_time_ms",
    "max_depth",
    "connect_timeout_ms",
    "pool",
    "read_only",
];
pub(crate) const DEFAULT_PORT: u16 = 27017;
pub(crate) const DEFAULT_SAMPLE_SIZE: u64 = 100;
pub(crate) const DEFAULT_MAX_DEPTH: u64 = 3;
pub(crate) const DEFAULT_SAMPLE_TIME_MS: u64 = 5_000;

/// Everything a session needs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub options: ClientOptions,
    /// The database the connection names, if any.
    pub database: Option<String>,
    pub tls: bool,
    pub sample_size: u32,
    pub sample_time: Duration,
    pub max_depth: usize,
}

impl Target {
    pub(crate) fn from_config(config: &ConnectionConfig) -> Result<Target> {
        config.reject_unknown_options(KNOWN_OPTIONS)?;
        config.refuse_read_only("log in as a user with only the `read` role")?;
        let host = config.required_host()?.to_owned();
        let port = config.port.unwrap_or(DEFAULT_PORT);
        let connect_timeout = Duration::from_millis(
            config
                .integer_option("connect_timeout_ms", 1..=600_000)?
                .unwrap_or(10_000),
        );
        let pool = config.pool_settings()?;
        let mut options = ClientOptions::default();
        options.hosts = vec![ServerAddress::Tcp {
            host,
            port: Some(port),
        }];
        options.app_name = Some("plugboard".into());
        options.connect_timeout = Some(connect_timeout);
        options.server_selection_timeout = Some(connect_timeout);
        options.max_pool_size = Some(pool.max_size);
        options.min_pool_size = Some(0);
        options.max_idle_time = pool.idle_timeout();
        // One server as given: do not discover (and route to) other members by default.
        options.direct_connection = Some(true);
        if let Some(username) = config.username.clone().filter(|u| !u.is_empty()) {
            let source = config
                .text_option("auth_source")?
                .or(config.text_option("authSource")?)
                .unwrap_or("admin")
                .to_owned();
            let mut credential = Credential::default();
            credential.username = Some(username);
            credential.password = config.password.as_ref().map(|p| p.expose().to_owned());
            credential.source = Some(source);
            options.credential = Some(credential);
        }
        let tls = config.bool_option("tls")?.unwrap_or(false);
        if tls {
            let mut tls_options = TlsOptions::default();
            tls_options.ca_file_path = config.text_option("tls_ca_file")?.map(Into::into);
            tls_options.allow_invalid_certificates =
                config.bool_option("tls_allow_invalid_certificates")?;
            options.tls = Some(Tls::Enabled(tls_options));
        }
        Ok(Target {
            options,
            database: config.database.clone().filter(|d| !d.is_empty()),
            tls,
            sample_size: config
                .integer_option("sample_size", 1..=100_000)?
                .unwrap_or(DEFAULT_SAMPLE_SIZE) as u32,
            sample_time: Duration::from_millis(
                config
                    .integer_option("sample_time_ms", 1..=600_000)?
                    .unwrap_or(DEFAULT_SAMPLE_TIME_MS),
            ),
            max_depth: config
                .integer_option("max_depth", 1..=20)?
                .unwrap_or(DEFAULT_MAX_DEPTH) as usize,
        })
    }
}

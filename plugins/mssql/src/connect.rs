//! From a connection's configuration to a tiberius `Config`, and a small bounded pool.
//!
//! tiberius has no pool of its own; this one is a semaphore over idle clients. A client is
//! returned to the pool only when its last use ended cleanly; anything else (an error
//! mid-result, a cancelled query whose acknowledgement did not arrive) drops it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugboard_connector::{ConnectionConfig, Error, PoolSettings, Result};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt as _};

use crate::error;

pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "encrypt",
    "trust_server_certificate",
    "ca_file",
    "instance",
    "connect_timeout_ms",
    "pool",
    "read_only",
];
pub(crate) const DEFAULT_PORT: u16 = 1433;

/// A connected client.
pub(crate) type MssqlClient = Client<Compat<TcpStream>>;

/// Everything a session needs to connect.
#[derive(Clone)]
pub(crate) struct Target {
    pub config: Config,
    pub pool: PoolSettings,
    pub connect_timeout: Duration,
    pub address: String,
    pub encrypted: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tiberius' Config holds the password: show only what is safe.
        f.debug_struct("Target")
            .field("address", &self.address)
            .finish()
    }
}

impl Target {
    pub(crate) fn from_config(config: &ConnectionConfig) -> Result<Target> {
        config.reject_unknown_options(KNOWN_OPTIONS)?;
        config.refuse_read_only("log in as a user with only the db_datareader role")?;
        let host = config.required_host()?;
        let username = config
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::Configuration("mssql needs a username (SQL Server authentication)".into())
            })?;
        let port = config.port.unwrap_or(DEFAULT_PORT);
        let mut c = Config::new();
        c.host(host);
        c.port(port);
        c.application_name("plugboard");
        c.authentication(AuthMethod::sql_server(
            username,
            config.password.as_ref().map(|p| p.expose()).unwrap_or(""),
        ));
        if let Some(db) = config.database.as_deref().filter(|d| !d.is_empty()) {
            c.database(db);
        }
        if let Some(instance) = config.text_option("instance")? {
            c.instance_name(instance);
        }
        let encrypt = config.text_option("encrypt")?.unwrap_or("required");
        let (level, encrypted) = match encrypt {
            "required" | "true" => (EncryptionLevel::Required, true),
            "off" | "false" => (EncryptionLevel::Off, false),
            "not_supported" => (EncryptionLevel::NotSupported, false),
            other => {
                return Err(Error::Configuration(format!(
                    "encrypt `{other}` is not one of required, off, not_supported"
                )));
            }
        };
        c.encryption(level);
        if config
            .bool_option("trust_server_certificate")?
            .unwrap_or(false)
        {
            c.trust_cert();
        } else if let Some(ca) = config.text_option("ca_file")? {
            c.trust_cert_ca(ca);
        }
        // Deadlines are Plugboard's, enforced with an attention signal: no driver timeout.
        c.command_timeout(None);
        let connect_timeout = Duration::from_millis(
            config
                .integer_option("connect_timeout_ms", 1..=600_000)?
                .unwrap_or(10_000),
        );
        Ok(Target {
            config: c,
            pool: config.pool_settings()?,
            connect_timeout,
            address: format!("{host}:{port}"),
            encrypted,
        })
    }

    /// A new connection, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<MssqlClient> {
        let what = format!("connecting to {}", self.address);
        let attempt = async {
            let tcp = TcpStream::connect(self.config.get_addr())
                .await
                .map_err(|e| Error::Connection(format!("{what}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            Client::connect(self.config.clone(), tcp.compat_write())
                .await
                .map_err(|e| error::map(e, &what))
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| {
                Error::Connection(format!(
                    "{what}: no answer within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })?
    }
}

/// At most `max_size` clients, idle ones kept for reuse.
pub(crate) struct Pool {
    target: Target,
    idle: Mutex<Vec<MssqlClient>>,
    permits: Arc<Semaphore>,
}

/// A client on loan from the pool, with the permit that counts it.
pub(crate) struct Lease {
    pub client: MssqlClient,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(crate) fn new(target: Target) -> Pool {
        let permits = Arc::new(Semaphore::new(target.pool.max_size as usize));
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            permits,
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Lease> {
        let wait = self.target.pool.acquire_timeout();
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                Error::Connection(format!(
                    "no pooled connection became available within {} ms (all {} are busy)",
                    wait.as_millis(),
                    self.target.pool.max_size
                ))
            })?
            .map_err(|_| Error::Connection("the pool was closed".into()))?;
        let idle = self.idle.lock().unwrap().pop();
        let client = match idle {
            Some(client) => client,
            None => self.target.connect().await?,
        };
        Ok(Lease {
            client,
            _permit: permit,
        })
    }

    /// Returns a client whose last use ended cleanly.
    pub(crate) fn release(&self, lease: Lease) {
        self.idle.lock().unwrap().push(lease.client);
    }

    /// Drops every idle client and refuses new loans.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().unwrap().clear();
    }
}

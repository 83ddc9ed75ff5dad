//! A throw-away MariaDB server for tests.
//!
//! `mariadb-install-db` in a temporary directory (owned by the `mysql` user when we are
//! root), `mariadbd` on 127.0.0.1 on a free port with its own socket and pid file, and a
//! test user with a password. Stopped by its pid: by [`MariaServer::stop`], at process exit
//! for the shared one, and by a watchdog should the test process die without exiting.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The test user and its password.
pub const TEST_USER: &str = "plugboard_test";
pub const TEST_PASSWORD: &str = "maria-pw-5e1d";

/// A running server.
#[derive(Debug)]
pub struct MariaServer {
    pub port: u16,
    dir: PathBuf,
    pid: i32,
    /// The server process, kept so it is reaped when it exits.
    child: Mutex<Option<Child>>,
}

fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} is not installed: run scripts/test.sh, which installs MariaDB")
}

impl MariaServer {
    /// Installs a data directory and starts a server on a free port.
    pub fn start() -> MariaServer {
        let dir = tempfile::Builder::new()
            .prefix("plugboard-maria-")
            .tempdir()
            .expect("creating a temporary directory")
            .keep();
        let data = dir.join("data");
        let mut install = Command::new(program("mariadb-install-db"));
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--skip-test-db", "--auth-root-authentication-method=socket"]);
        if crate::is_root() {
            let status = Command::new("chown")
                .arg("mysql")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown mysql");
            install.arg("--user=mysql");
        }
        let out = install
            .stdin(Stdio::null())
            .output()
            .expect("running mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let mut cmd = Command::new(program("mariadbd"));
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
                .arg(format!("--port={port}"))
                .arg(format!("--socket={}", dir.join("sock").display()))
                .arg(format!("--pid-file={}", dir.join("pid").display()))
                .arg(format!("--log-error={}", dir.join("err.log").display()))
                .args(["--innodb-buffer-pool-size=64M", "--max-connections=300"]);
            if crate::is_root() {
                cmd.arg("--user=mysql");
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting mariadbd");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut ready = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let ping = Command::new(program("mariadb-admin"))
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", dir.join("sock").display()))
                    .args(["-uroot", "ping"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if ping.is_ok_and(|s| s.success()) {
                    ready = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if ready {
                let server = MariaServer {
                    port,
                    pid: child.id() as i32,
                    dir,
                    child: Mutex::new(Some(child)),
                };
                server.spawn_watchdog();
                server.admin(&format!(
                    "CREATE USER '{TEST_USER}'@'%' IDENTIFIED BY '{TEST_PASSWORD}'; \
                     GRANT ALL PRIVILEGES ON *.* TO '{TEST_USER}'@'%'; FLUSH PRIVILEGES;"
                ));
                return server;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error = std::fs::read_to_string(dir.join("err.log")).unwrap_or_default();
        }
        panic!("MariaDB did not start:\n{last_error}");
    }

    /// One server shared by every test in the process, stopped when the process exits.
    pub fn shared() -> &'static MariaServer {
        shared_server!(MariaServer, MariaServer::start())
    }

    fn spawn_watchdog(&self) {
        crate::spawn_watchdog(self.pid as u32, "TERM", &self.dir);
    }

    /// Runs SQL as root over the socket; returns the client's tab-separated output.
    pub fn admin(&self, sql: &str) -> String {
        let out = Command::new(program("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .expect("running mariadb");
        assert!(
            out.status.success(),
            "mariadb `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a database and returns its name.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        self.admin(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"));
        name
    }

    /// The socket path, for client-based baselines.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Stops the server by pid (SIGTERM, a clean shutdown), waits, removes its directory.
    pub fn stop(&self) {
        crate::stop_server(self.pid, &self.child, &self.dir);
    }
}

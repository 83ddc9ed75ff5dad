//! A throw-away ClickHouse server for tests (Debian's `clickhouse-server`, 18.16).
//!
//! A minimal config in a temporary directory: HTTP and native ports picked at run time on
//! 127.0.0.1, data under the directory, the `default` user (no password, loopback only) for
//! set-up and a test user with a password. Stopped by its pid: by [`ClickHouseServer::stop`],
//! at process exit for the shared one, and by a watchdog should the test process die.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The test user and its password.
pub const TEST_USER: &str = "plugboard_test";
pub const TEST_PASSWORD: &str = "click-pw-7c2a";

/// A running server.
#[derive(Debug)]
pub struct ClickHouseServer {
    /// The HTTP port.
    pub port: u16,
    dir: PathBuf,
    pid: i32,
    child: Mutex<Option<Child>>,
}

fn config(dir: &std::path::Path, http_port: u16, tcp_port: u16) -> String {
    let d = dir.display();
    format!(
        "<yandex>\n\
         <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>\n\
         <listen_host>127.0.0.1</listen_host>\n\
         <http_port>{http_port}</http_port>\n<tcp_port>{tcp_port}</tcp_port>\n\
         <path>{d}/data/</path>\n<tmp_path>{d}/tmp/</tmp_path>\n<user_files_path>{d}/files/</user_files_path>\n\
         <users_config>{d}/users.xml</users_config>\n<mark_cache_size>5368709</mark_cache_size>\n\
         </yandex>\n"
    )
}

fn users() -> String {
    let user = |name: &str, password: &str| {
        format!(
            "<{name}><password>{password}</password><networks><ip>127.0.0.1</ip></networks>\
             <profile>default</profile><quota>default</quota></{name}>"
        )
    };
    format!(
        "<yandex><profiles><default/></profiles><quotas><default/></quotas><users>{}{}</users></yandex>\n",
        user("default", ""),
        user(TEST_USER, TEST_PASSWORD)
    )
}

impl ClickHouseServer {
    /// Starts a server on free ports.
    pub fn start() -> ClickHouseServer {
        let program = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("clickhouse-server is not installed: run scripts/test.sh, which installs it");
        let dir = tempfile::Builder::new()
            .prefix("plugboard-clickhouse-")
            .tempdir()
            .expect("creating a temporary directory")
            .keep();
        for sub in ["data", "tmp", "files"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("users.xml"), users()).unwrap();
        let mut last_error = String::new();
        for _ in 0..5 {
            let (http_port, tcp_port) = (crate::free_port(), crate::free_port());
            std::fs::write(dir.join("config.xml"), config(&dir, http_port, tcp_port)).unwrap();
            let mut child = Command::new(&program)
                .arg(format!(
                    "--config-file={}",
                    dir.join("config.xml").display()
                ))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting clickhouse-server");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http(http_port, "GET", "/ping", "").is_ok_and(|(status, _)| status == 200) {
                    let server = ClickHouseServer {
                        port: http_port,
                        pid: child.id() as i32,
                        dir,
                        child: Mutex::new(Some(child)),
                    };
                    crate::spawn_watchdog(server.pid as u32, "TERM", &server.dir);
                    return server;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        }
        panic!("ClickHouse did not start:\n{last_error}");
    }

    /// One server shared by every test in the process, stopped when the process exits.
    pub fn shared() -> &'static ClickHouseServer {
        shared_server!(ClickHouseServer, ClickHouseServer::start())
    }

    /// Runs SQL as `default` over HTTP; returns the body, panicking on an error answer.
    pub fn admin(&self, sql: &str) -> String {
        let (status, body) = http(self.port, "POST", "/", sql).expect("ClickHouse answers");
        assert_eq!(status, 200, "ClickHouse `{sql}` failed: {body}");
        body
    }

    /// Statements containing `marker` running on the server, seen from outside.
    pub fn running(&self, marker: &str) -> usize {
        self.admin(&format!(
            "SELECT count() FROM system.processes WHERE query LIKE '%{marker}%' \
             AND query NOT LIKE '%system.processes%'"
        ))
        .trim()
        .parse()
        .unwrap()
    }

    /// Creates a database and returns its name.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        self.admin(&format!("CREATE DATABASE {name}"));
        name
    }

    /// Stops the server by pid (SIGTERM), waits, removes its directory.
    pub fn stop(&self) {
        crate::stop_server(self.pid, &self.child, &self.dir);
    }
}

/// A bare HTTP/1.0 request to 127.0.0.1:`port` (no client library needed for set-up).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

//! A throw-away MongoDB-wire-compatible server for tests: `secantusd-py` (from PyPI's
//! `secantusdb`, which scripts/test.sh installs), in a temporary directory, on a free
//! loopback port, with a SCRAM user. It is not mongod: the plugin's inference logic is unit
//! tested on BSON documents as well. Stopped by its pid.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The test user and its password (in `admin`).
pub const TEST_USER: &str = "plugboard_test";
pub const TEST_PASSWORD: &str = "mongo-pw-77ab";

/// A running server.
#[derive(Debug)]
pub struct MongoServer {
    pub port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

fn spawn(dir: &Path, port: u16, auth: bool) -> Child {
    let mut cmd = Command::new("secantusd-py");
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--storage-path",
    ])
    .arg(dir.join("data"));
    if auth {
        cmd.arg("--auth");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .spawn()
        .expect("secantusd-py is not installed: run scripts/test.sh, which installs it")
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Runs a Python snippet with pymongo (a dependency of secantusdb) against `url`, with
/// `c` the client.
pub fn python(url: &str, script: &str) -> String {
    let program = format!(
        "from pymongo import MongoClient\nc = MongoClient({url:?}, serverSelectionTimeoutMS=10000)\n{script}"
    );
    let out = Command::new("python3")
        .args(["-c", &program])
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "pymongo script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl MongoServer {
    /// Starts a server, creates the test user, then restarts it with authentication on.
    pub fn start() -> MongoServer {
        let dir = tempfile::Builder::new()
            .prefix("plugboard-mongo-")
            .tempdir()
            .unwrap()
            .keep();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = crate::free_port();
        let mut child = spawn(&dir, port, false);
        assert!(wait_ready(&mut child, port), "secantusd-py did not start");
        python(
            &format!("mongodb://127.0.0.1:{port}"),
            &format!(
                "c.admin.command('createUser', '{TEST_USER}', pwd='{TEST_PASSWORD}', roles=['root'])"
            ),
        );
        let _ = child.kill();
        let _ = child.wait();
        let mut child = spawn(&dir, port, true);
        assert!(
            wait_ready(&mut child, port),
            "secantusd-py did not restart with --auth"
        );
        let server = MongoServer {
            port,
            dir,
            child: Mutex::new(Some(child)),
        };
        server.spawn_watchdog();
        server
    }

    /// Runs a pymongo snippet as the test user (with `c` the client).
    pub fn seed(&self, script: &str) -> String {
        python(
            &format!(
                "mongodb://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{}/?authSource=admin",
                self.port
            ),
            script,
        )
    }

    /// One server shared by the tests in this process, stopped at exit.
    pub fn shared() -> &'static MongoServer {
        shared_server!(MongoServer, MongoServer::start())
    }

    fn spawn_watchdog(&self) {
        let pid = self
            .child
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.id())
            .unwrap_or(0);
        crate::spawn_watchdog(pid, "TERM", &self.dir);
    }

    /// Stops the server by its pid and removes its directory.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

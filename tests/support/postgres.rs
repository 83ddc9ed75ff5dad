//! A throw-away PostgreSQL cluster for tests and benchmarks.
//!
//! `initdb` runs in a temporary directory (as the `postgres` user when we are root, since
//! PostgreSQL refuses to run as root), the server listens on 127.0.0.1 on a free port with
//! SCRAM password authentication for TCP, and a test role is created. The server is stopped
//! by its pid: by [`PgServer::stop`], at process exit for the shared one, and by a watchdog
//! process should the test process die without exiting cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The role tests connect as, and its password.
pub const TEST_USER: &str = "plugboard_test";
pub const TEST_PASSWORD: &str = "test-pw-9f2c";

/// A running cluster.
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    pid: i32,
}

/// The directory holding initdb, pg_ctl and postgres: `PLUGBOARD_TEST_PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin`, else wherever `initdb` is on the PATH.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PLUGBOARD_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("running sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "PostgreSQL is not installed: run scripts/test.sh, which installs it, or set PLUGBOARD_TEST_PG_BIN"
    );
    Path::new(&path).parent().unwrap().to_path_buf()
}

/// Starts the cluster in `dir` on `port` with `pg_ctl`, waiting until it accepts
/// connections; returns the postmaster's pid, or `None` when it did not start.
fn launch(bin: &Path, dir: &Path, port: u16) -> Option<i32> {
    let data = dir.join("data");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        dir.display()
    );
    let out = run_pg(
        bin,
        "pg_ctl",
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            dir.join("log").to_str().unwrap(),
            "-w",
            "-o",
            &options,
            "start",
        ],
    );
    if !out.status.success() {
        return None;
    }
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    Some(pid_file.lines().next().unwrap().trim().parse().unwrap())
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn run_pg(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(program);
    let mut cmd = if crate::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
}

fn check(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl PgServer {
    /// Initialises and starts a new cluster.
    pub fn start() -> PgServer {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("plugboard-pg-")
            .tempdir()
            .expect("creating a temporary directory")
            .keep();
        if crate::is_root() {
            check(
                Command::new("chown")
                    .arg("postgres")
                    .arg(&dir)
                    .output()
                    .unwrap(),
                "chown",
            );
        }
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "superuser-pw-not-used\n").unwrap();
        if crate::is_root() {
            check(
                Command::new("chown")
                    .arg("postgres")
                    .arg(&pwfile)
                    .output()
                    .unwrap(),
                "chown",
            );
        }
        check(
            run_pg(
                &bin,
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "-A",
                    "scram-sha-256",
                    "--auth-local=trust",
                    &format!("--pwfile={}", pwfile.display()),
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            if let Some(pid) = launch(&bin, &dir, port) {
                let server = PgServer {
                    port,
                    dir,
                    bin,
                    pid,
                };
                server.spawn_watchdog();
                server.admin(&format!(
                    "CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}'"
                ));
                return server;
            }
            last_error = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start:\n{last_error}");
    }

    /// One cluster shared by every test in the process, stopped when the process exits.
    pub fn shared() -> &'static PgServer {
        shared_server!(PgServer, PgServer::start())
    }

    /// If this process dies without running its exit handlers, a small shell process
    /// notices and stops the server by pid.
    fn spawn_watchdog(&self) {
        crate::spawn_watchdog(self.pid as u32, "INT", &self.dir);
    }

    /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
    pub fn admin(&self, sql: &str) -> String {
        self.admin_in("postgres", sql)
    }

    /// As [`PgServer::admin`], in database `db`.
    pub fn admin_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        check(out, &format!("psql `{sql}`"))
    }

    /// Creates a database owned by the test role and returns its name.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        self.admin(&format!("CREATE DATABASE {name} OWNER {TEST_USER}"));
        name
    }

    /// Runs SQL in `db` as the test role (so the objects it creates belong to that role).
    pub fn exec_as_test_user(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", TEST_USER, "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(sql.as_bytes())?;
                child.wait_with_output()
            })
            .expect("running psql");
        check(out, "psql script")
    }

    /// The socket directory, for psql-based baselines.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the PostgreSQL programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A `postgres://` URL for the test role.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Stops the server (fast shutdown: sessions are cut), keeping its data, as a restart
    /// or a crash of the target would.
    pub fn halt(&self) {
        self.signal_and_wait();
    }

    /// Starts a halted server again on the same port.
    pub fn resume(&mut self) {
        self.pid = launch(&self.bin, &self.dir, self.port).unwrap_or_else(|| {
            panic!(
                "PostgreSQL did not restart:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            )
        });
        self.spawn_watchdog();
    }

    /// Stops the server by pid (fast shutdown), waits for it, and removes its directory.
    pub fn stop(&self) {
        self.signal_and_wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn signal_and_wait(&self) {
        // SAFETY: kill(2) with a pid we started and a valid signal.
        #[allow(unsafe_code)]
        let signal = |sig| unsafe { libc::kill(self.pid, sig) == 0 };
        if signal(libc::SIGINT) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while signal(0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if signal(0) {
                signal(libc::SIGKILL);
            }
        }
    }
}

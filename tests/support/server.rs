//! A real Plugboard server for tests: the same `start` and `serve` the binary uses, on
//! `127.0.0.1:0`, with every log line of the process captured so tests can search it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use plugboard::Settings;
use serde_json::Value;
use tokio::sync::oneshot;

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CapturedLog;

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of this process, down to DEBUG (sqlx's included), to a buffer.
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,hyper_util=info,h2=info,reqwest=info")
            .with_ansi(false)
            .with_writer(|| CapturedLog)
            .try_init();
    });
}

/// Everything logged so far by this process.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// A running server and an HTTP client for it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Kept so the directory lives as long as the server (when the test owns it).
    _owned_dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub client: reqwest::Client,
}

/// A response: status and JSON body (or `Null` when empty), as text too.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl TestServer {
    /// A server on a new temporary data directory.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new(dir.path().join("data"));
        let mut server = TestServer::start_with(settings).await;
        server._owned_dir = Some(dir);
        server
    }

    /// A server with these settings.
    pub async fn start_with(settings: Settings) -> TestServer {
        capture_logs();
        let service = plugboard::start(&settings).await.expect("server starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(plugboard::serve(
            listener,
            service,
            settings.body_limit,
            async {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            data_dir: settings.data_dir.clone(),
            _owned_dir: None,
            shutdown: Some(tx),
            task: Some(task),
            client: reqwest::Client::new(),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        Reply::from(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// Registers a connection and returns its id, asserting 201.
    pub async fn create(&self, body: Value) -> String {
        let reply = self.post("/api/v1/connections", body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Every file under the data directory, read whole (for searching it).
    pub fn data_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir, &mut out);
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    /// Asserts the status and the error shape, and returns the error's code.
    pub fn expect_error(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.text);
        let error = &self.body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        error["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {}", self.text))
    }
}

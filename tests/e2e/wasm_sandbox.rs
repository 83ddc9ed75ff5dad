//! The WASM sandbox, proved with a plugin that misbehaves on request: each misdeed fails
//! its own request with an error naming the plugin and the cause, and the next request on
//! the same host succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plugboard::Settings;
use plugboard_tests::server::{TestServer, logs};
use plugboard_tests::wasm;
use serde_json::{Value, json};

const HOSTILE: &str = "plugboard-test-plugin-hostile";

/// A TCP server on loopback that counts connections and answers each after `delay`.
async fn http_server(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    (port, hits)
}

async fn server_with_hostile(dir: &tempfile::TempDir) -> TestServer {
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    wasm::install(HOSTILE, &plugins, "hostile.wasm");
    let mut settings = Settings::new(dir.path().join("data"));
    settings.plugins_dir = Some(plugins);
    settings.plugin_limits.memory_bytes = 64 << 20;
    settings.plugin_limits.cpu = Duration::from_secs(1);
    settings.plugin_limits.call_timeout = Duration::from_secs(3);
    TestServer::start_with(settings).await
}

async fn query(server: &TestServer, id: &str, sql: &str, timeout_ms: Option<u32>) -> (u16, Value) {
    let mut body = json!({ "sql": sql });
    if let Some(ms) = timeout_ms {
        body["timeout_ms"] = json!(ms);
    }
    let reply = server
        .post(&format!("/api/v1/connections/{id}/query"), body)
        .await;
    (reply.status, reply.body)
}

async fn assert_ok(server: &TestServer, id: &str) {
    let (status, body) = query(server, id, "ok", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["ok"]]));
}

#[tokio::test]
async fn each_misdeed_fails_its_own_request_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_hostile(&dir).await;
    let (slow_port, _) = http_server(Duration::from_secs(30)).await;
    let (quick_port, _) = http_server(Duration::ZERO).await;
    let (other_port, other_hits) = http_server(Duration::ZERO).await;
    let slow = server
        .create(
            json!({"name": "slow", "engine": "hostile", "host": "127.0.0.1", "port": slow_port}),
        )
        .await;
    let quick = server
        .create(
            json!({"name": "quick", "engine": "hostile", "host": "localhost", "port": quick_port}),
        )
        .await;
    assert_ok(&server, &slow).await;

    // The connection's own address is reachable (under another name for the same address).
    let (status, body) = query(&server, &quick, "target /", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["hello"]]));

    let cases: [(&str, &str, Option<u32>, u16, &str); 6] = [
        (
            "loop forever",
            "loop",
            None,
            502,
            "exceeded its CPU time limit",
        ),
        ("panic", "panic", None, 502, "panic"),
        (
            "allocate past the limit",
            "alloc",
            None,
            502,
            "exceeded its memory limit of 64 MiB",
        ),
        (
            "call a host that is not allowed",
            &format!("http http://127.0.0.1:{other_port}"),
            None,
            502,
            "denied",
        ),
        (
            "call a metadata address",
            "http http://169.254.169.254",
            None,
            502,
            "denied",
        ),
        (
            "sleep in a host call past the deadline",
            "target /",
            Some(500),
            504,
            "did not answer within 2.5 s",
        ),
    ];
    for (what, sql, timeout_ms, status, cause) in cases {
        let started = Instant::now();
        let (got, body) = query(&server, &slow, sql, timeout_ms).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{what}: {body}");
        assert!(message.contains(cause), "{what}: {message}");
        assert!(
            message.contains("hostile")
                || message.contains("127.0.0.1")
                || message.contains("169.254"),
            "{what}: the error names the plugin or the address: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{what} took {:?}",
            started.elapsed()
        );
        assert_ok(&server, &slow).await;
    }
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a denied request reached its server"
    );
    let log = logs();
    assert!(
        log.contains("outbound request denied"),
        "denials are logged"
    );

    // Nothing of the host's environment or files is visible.
    let (status, body) = query(&server, &slow, "env", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[""]]));
    let (status, body) = query(&server, &slow, "file /etc/passwd", None).await;
    assert_eq!(status, 422, "{body}");
    // Not even towards the connection's own address: sockets are not granted at all.
    let (status, body) = query(&server, &slow, &format!("tcp 127.0.0.1:{slow_port}"), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot open a socket"),
        "{body}"
    );

    // Output goes to the host's log under the plugin's name.
    let (status, _) = query(&server, &slow, "print", None).await;
    assert_eq!(status, 200);
    let log = logs();
    for line in [
        "hostile says hello on stdout",
        "hostile says hello on stderr",
        "hostile says hello through the host log",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(line) && l.contains("plugin=\"hostile\"")),
            "{line} is not in the log under the plugin's name"
        );
    }

    // Native plugins never noticed.
    let health = server.get("/health").await;
    assert_eq!(health.body["status"], "healthy", "{}", health.text);
    server.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_busy_limit_wait_then_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    wasm::install(HOSTILE, &plugins, "hostile.wasm");
    let mut settings = Settings::new(dir.path().join("data"));
    settings.plugins_dir = Some(plugins);
    settings.plugin_limits.busy_instances = 1;
    let server = TestServer::start_with(settings).await;
    let (slow_port, _) = http_server(Duration::from_secs(30)).await;
    let id = server
        .create(
            json!({"name": "slow", "engine": "hostile", "host": "127.0.0.1", "port": slow_port}),
        )
        .await;
    // The first call holds the only slot until its deadline (1 s + 2 s of grace); the
    // second gives up waiting after its own (0.2 s + 2 s).
    let (first, second) = tokio::join!(query(&server, &id, "target /", Some(1_000)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        query(&server, &id, "ok", Some(200)).await
    });
    assert_eq!(first.0, 504, "{}", first.1);
    assert_eq!(second.0, 504, "{}", second.1);
    assert!(
        second.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("calls running"),
        "{}",
        second.1
    );
    assert_ok(&server, &id).await;
    server.stop().await;
}

#[tokio::test]
async fn the_sdk_template_builds_into_a_plugin_that_loads() {
    let file = wasm::plugin("plugboard-plugin-template");
    let (report, passed) = plugboard::plugin_check::check(&file, &[], "SELECT 1")
        .await
        .unwrap();
    assert!(passed, "{report}");
    assert!(report.contains("plugin       template 0.1.0"), "{report}");
    assert!(report.contains("fields       secure"), "{report}");
}

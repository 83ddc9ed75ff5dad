//! The WASM plugins the tests load, built for wasm32-wasip2 on first use (the test script
//! builds them beforehand; building here too keeps `cargo test` alone working).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The workspace's WASM plugin crates and the file each produces.
const PLUGINS: &[(&str, &str)] = &[
    (
        "plugboard-plugin-clickhouse",
        "plugboard_plugin_clickhouse.wasm",
    ),
    (
        "plugboard-test-plugin-hostile",
        "plugboard_test_plugin_hostile.wasm",
    ),
    (
        "plugboard-plugin-template",
        "plugboard_plugin_template.wasm",
    ),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// Builds every WASM plugin once per process (cargo does nothing when they are fresh).
fn build_all() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace();
        let mut command = std::process::Command::new(env!("CARGO"));
        command.current_dir(&root).args([
            "build",
            "--locked",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
        ]);
        for (package, _) in PLUGINS {
            command.args(["-p", package]);
        }
        let status = command.status().expect("running cargo");
        assert!(
            status.success(),
            "building the WASM plugins failed (is the wasm32-wasip2 target installed? \
             `rustup target add wasm32-wasip2`)"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("wasm32-wasip2").join("plugin")
    })
}

/// The path of a built plugin, by crate name.
pub fn plugin(package: &str) -> PathBuf {
    let (_, file) = PLUGINS
        .iter()
        .find(|(p, _)| *p == package)
        .unwrap_or_else(|| panic!("{package} is not a WASM plugin of the workspace"));
    build_all().join(file)
}

/// Copies a plugin into `dir` under `name` the way an operator should: written beside,
/// then renamed into place, so the watcher never sees half a file.
pub fn install(package: &str, dir: &std::path::Path, name: &str) {
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::copy(plugin(package), &partial).unwrap();
    std::fs::rename(&partial, dir.join(name)).unwrap();
}

/// A WASM plugin loaded into a runtime of its own with the default limits, as the host
/// loads it. Each test has its own tokio runtime, and a plugin runtime keeps HTTP
/// connections whose tasks live on the tokio runtime that opened them: sharing one across
/// tests would hand a test connections whose runtime is gone. Compiled code is shared
/// through a compile cache instead, so only the first load compiles.
pub async fn load(package: &str) -> std::sync::Arc<dyn plugboard_connector::Plugin> {
    use plugboard::wasm::{EgressRules, Limits, Runtime, WasmPlugin};
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    let runtime = Runtime::new(
        Limits::default(),
        EgressRules::default(),
        Some(cache.path().to_path_buf()),
    )
    .unwrap();
    let bytes = std::fs::read(plugin(package)).unwrap();
    let component = runtime.compile(&bytes).unwrap().component;
    std::sync::Arc::new(
        WasmPlugin::load(runtime, &component)
            .await
            .unwrap_or_else(|e| panic!("{package} loads: {e:#}")),
    )
}

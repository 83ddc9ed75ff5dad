//! The plugins folder: every `*.wasm` file in it is loaded at start, and the folder is
//! polled so that a file added, replaced or removed is picked up within a second, without a
//! restart. A file that cannot be loaded is recorded as rejected, with the reason, and
//! affects no other plugin. Calls in flight keep the plugin they started on: sessions hold
//! the old build until they finish, and the catalogue hands out the new one from then on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CatalogEntry, PluginKind, Rejected};

use super::engine::{Runtime, hex};
use super::plugin::WasmPlugin;

/// How often the folder is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// What was seen of a file last time: enough to notice a change without reading it.
#[derive(Clone, PartialEq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
}

/// The loaded state of the plugins folder.
pub struct PluginFolder {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    catalog: Catalog,
    seen: BTreeMap<String, (Seen, String)>,
}

impl PluginFolder {
    /// A folder feeding `catalog`; nothing is loaded until [`PluginFolder::scan`].
    pub fn new(dir: PathBuf, runtime: Arc<Runtime>, catalog: Catalog) -> PluginFolder {
        PluginFolder {
            dir,
            runtime,
            catalog,
            seen: BTreeMap::new(),
        }
    }

    /// Loads what is new or changed and drops what is gone.
    pub async fn scan(&mut self) {
        let mut present = BTreeMap::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                        continue;
                    }
                    let Ok(meta) = entry.metadata() else { continue };
                    if !meta.is_file() {
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().into_owned();
                    present.insert(
                        name,
                        (
                            path,
                            Seen {
                                len: meta.len(),
                                modified: meta.modified().ok(),
                            },
                        ),
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the plugins folder");
                return;
            }
        }
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|name| !present.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.seen.remove(&name);
            self.catalog.remove_file(&name);
            tracing::info!(file = %name, "plugin file removed; its engines are gone");
        }
        for (name, (path, seen)) in present {
            if self.seen.get(&name).is_some_and(|(s, _)| *s == seen) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let sha256 = hex(&Sha256::digest(&bytes));
            let unchanged = self.seen.get(&name).is_some_and(|(_, h)| *h == sha256);
            self.seen.insert(name.clone(), (seen, sha256.clone()));
            if unchanged {
                continue;
            }
            self.load(&name, &path, &bytes, sha256).await;
        }
    }

    async fn load(&mut self, name: &str, path: &Path, bytes: &[u8], sha256: String) {
        let started = std::time::Instant::now();
        let loaded = async {
            let runtime = self.runtime.clone();
            let compiled = {
                let bytes = bytes.to_vec();
                tokio::task::spawn_blocking(move || runtime.compile(&bytes))
                    .await
                    .map_err(|e| anyhow::anyhow!("compiling panicked: {e}"))??
            };
            let plugin = WasmPlugin::load(self.runtime.clone(), &compiled.component).await?;
            let natives = self.catalog.native_engines();
            if let Some(taken) = plugboard_connector::Plugin::info(&plugin)
                .engines
                .iter()
                .find(|e| natives.contains(e))
            {
                anyhow::bail!("engine id `{taken}` belongs to a native plugin");
            }
            anyhow::Ok((plugin, compiled.cached))
        }
        .await;
        match loaded {
            Ok((plugin, cached)) => {
                let info = plugboard_connector::Plugin::info(&plugin).clone();
                tracing::info!(
                    file = %name,
                    plugin = %info.name,
                    version = %info.version,
                    engines = ?info.engines,
                    sha256 = %sha256,
                    compiled = if cached { "from cache" } else { "now" },
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "WASM plugin loaded"
                );
                self.catalog.register(CatalogEntry {
                    plugin: Arc::new(plugin),
                    kind: PluginKind::Wasm,
                    generation: sha256,
                    file: Some(name.to_owned()),
                });
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::error!(file = %path.display(), sha256 = %sha256, "WASM plugin rejected: {reason}");
                self.catalog.reject(Rejected {
                    file: name.to_owned(),
                    sha256,
                    reason,
                });
            }
        }
    }

    /// Scans now, then every [`POLL`] until the task is aborted.
    pub fn watch(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.scan().await;
            }
        })
    }
}

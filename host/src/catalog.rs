//! The plugin catalogue: which plugin serves which engine id.
//!
//! Native plugins are registered at start; WASM plugins come and go while the host runs
//! (the plugin folder is watched), so the catalogue is shared and changes under a lock.
//! Nothing above this module cares which kind serves an engine: both are a [`Plugin`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use plugboard_connector::Plugin;
use serde::Serialize;

/// How a plugin came to be in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Compiled into the host.
    Native,
    /// A WebAssembly component from the plugins folder.
    Wasm,
}

/// One catalogue entry.
#[derive(Clone)]
pub struct CatalogEntry {
    pub plugin: Arc<dyn Plugin>,
    pub kind: PluginKind,
    /// Which build of the plugin this is: `native`, or the WASM file's SHA-256. A session
    /// opened by one generation is never handed out once another serves the engine.
    pub generation: String,
    /// The file it was loaded from (WASM plugins).
    pub file: Option<String>,
}

/// A file in the plugins folder that could not be loaded, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub file: String,
    pub sha256: String,
    pub reason: String,
}

#[derive(Default)]
struct Inner {
    by_engine: BTreeMap<String, CatalogEntry>,
    rejected: BTreeMap<String, Rejected>,
}

impl Inner {
    /// Forgets every engine served from `file` and any rejection recorded for it.
    fn forget_file(&mut self, file: &str) {
        self.by_engine
            .retain(|_, e| e.file.as_deref() != Some(file));
        self.rejected.remove(file);
    }
}

/// Engine ids to plugins, shared by the service and the plugin-folder watcher.
#[derive(Clone, Default)]
pub struct Catalog {
    inner: Arc<RwLock<Inner>>,
}

impl Catalog {
    /// The catalogue with every native plugin; SQLite files may be opened only inside
    /// `sqlite_allowed_dirs`.
    pub fn with_native_plugins(sqlite_allowed_dirs: Vec<std::path::PathBuf>) -> Catalog {
        let catalog = Catalog::default();
        let natives: [Arc<dyn Plugin>; 5] = [
            Arc::new(plugboard_plugin_postgres::PostgresPlugin::default()),
            Arc::new(plugboard_plugin_mysql::MysqlPlugin::default()),
            Arc::new(plugboard_plugin_mongodb::MongoPlugin::default()),
            Arc::new(plugboard_plugin_mssql::MssqlPlugin::default()),
            Arc::new(plugboard_plugin_sqlite::SqlitePlugin::new(
                sqlite_allowed_dirs,
            )),
        ];
        for plugin in natives {
            catalog.register(CatalogEntry {
                plugin,
                kind: PluginKind::Native,
                generation: "native".into(),
                file: None,
            });
        }
        catalog
    }

    /// Adds a plugin under each engine id it serves, replacing whatever served them. A
    /// plugin from a file first takes the place of what that file served before, in the
    /// same step, so a request never finds a replaced engine missing.
    pub fn register(&self, entry: CatalogEntry) {
        let mut inner = self.inner.write().unwrap();
        if let Some(file) = &entry.file {
            inner.forget_file(file);
        }
        for engine in &entry.plugin.info().engines {
            inner.by_engine.insert(engine.clone(), entry.clone());
        }
    }

    /// The engine ids a native plugin serves, which a WASM plugin may not take over.
    pub fn native_engines(&self) -> Vec<String> {
        let inner = self.inner.read().unwrap();
        inner
            .by_engine
            .iter()
            .filter(|(_, e)| e.kind == PluginKind::Native)
            .map(|(engine, _)| engine.clone())
            .collect()
    }

    /// Removes every engine served from `file` and any rejection recorded for it.
    pub fn remove_file(&self, file: &str) {
        self.inner.write().unwrap().forget_file(file);
    }

    /// Records that `file` could not be loaded (and removes what it served before).
    pub fn reject(&self, rejected: Rejected) {
        let mut inner = self.inner.write().unwrap();
        inner.forget_file(&rejected.file);
        inner.rejected.insert(rejected.file.clone(), rejected);
    }

    /// The plugin serving `engine`.
    pub fn get(&self, engine: &str) -> Option<CatalogEntry> {
        self.inner.read().unwrap().by_engine.get(engine).cloned()
    }

    /// Every engine id, sorted.
    pub fn engines(&self) -> Vec<String> {
        self.inner
            .read()
            .unwrap()
            .by_engine
            .keys()
            .cloned()
            .collect()
    }

    /// Every plugin once, by name.
    pub fn plugins(&self) -> Vec<CatalogEntry> {
        let inner = self.inner.read().unwrap();
        let mut seen = BTreeMap::new();
        for entry in inner.by_engine.values() {
            seen.entry(entry.plugin.info().name.clone())
                .or_insert_with(|| entry.clone());
        }
        seen.into_values().collect()
    }

    /// Files that were not loaded, by file name.
    pub fn rejected(&self) -> Vec<Rejected> {
        self.inner
            .read()
            .unwrap()
            .rejected
            .values()
            .cloned()
            .collect()
    }
}

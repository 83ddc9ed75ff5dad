//! The plugin catalogue: which plugin serves which engine id.
//!
//! Native plugins are registered at start. WASM plugins (a later contract) register here
//! too, behind the same [`Plugin`] trait, so nothing above this module cares which kind
//! serves an engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use plugboard_connector::Plugin;
use serde::Serialize;

/// How a plugin came to be in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Compiled into the host.
    Native,
}

/// One catalogue entry.
#[derive(Clone)]
pub struct CatalogEntry {
    pub plugin: Arc<dyn Plugin>,
    pub kind: PluginKind,
}

/// Engine ids to plugins.
#[derive(Clone, Default)]
pub struct Catalog {
    by_engine: BTreeMap<String, CatalogEntry>,
}

impl Catalog {
    /// The catalogue with every native plugin; SQLite files may be opened only inside
    /// `sqlite_allowed_dirs`.
    pub fn with_native_plugins(sqlite_allowed_dirs: Vec<std::path::PathBuf>) -> Catalog {
        let mut catalog = Catalog::default();
        catalog.register(
            Arc::new(plugboard_plugin_postgres::PostgresPlugin::default()),
            PluginKind::Native,
        );
        catalog.register(
            Arc::new(plugboard_plugin_mysql::MysqlPlugin::default()),
            PluginKind::Native,
        );
        catalog.register(
            Arc::new(plugboard_plugin_mongodb::MongoPlugin::default()),
            PluginKind::Native,
        );
        catalog.register(
            Arc::new(plugboard_plugin_mssql::MssqlPlugin::default()),
            PluginKind::Native,
        );
        catalog.register(
            Arc::new(plugboard_plugin_sqlite::SqlitePlugin::new(
                sqlite_allowed_dirs,
            )),
            PluginKind::Native,
        );
        catalog
    }

    /// Adds a plugin under each engine id it serves.
    pub fn register(&mut self, plugin: Arc<dyn Plugin>, kind: PluginKind) {
        for engine in &plugin.info().engines {
            self.by_engine.insert(
                engine.clone(),
                CatalogEntry {
                    plugin: plugin.clone(),
                    kind,
                },
            );
        }
    }

    /// The plugin serving `engine`.
    pub fn get(&self, engine: &str) -> Option<&CatalogEntry> {
        self.by_engine.get(engine)
    }

    /// Every engine id, sorted.
    pub fn engines(&self) -> Vec<&str> {
        self.by_engine.keys().map(String::as_str).collect()
    }

    /// Every plugin once, by name.
    pub fn plugins(&self) -> Vec<&CatalogEntry> {
        let mut seen = BTreeMap::new();
        for entry in self.by_engine.values() {
            seen.entry(entry.plugin.info().name.clone())
                .or_insert(entry);
        }
        seen.into_values().collect()
    }
}

//! Write a Plugboard connector plugin in plain Rust and build it as a WebAssembly component.
//!
//! A plugin implements [`Connector`] (one value per session: where a login token lives) and
//! registers it with [`export_connector!`]; `cargo build --release --target wasm32-wasip2`
//! then produces a `.wasm` component that an operator drops into Plugboard's plugins folder.
//!
//! ```ignore
//! use plugboard_sdk::prelude::*;
//!
//! struct Echo { config: Config }
//!
//! impl Connector for Echo {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("echo", env!("CARGO_PKG_VERSION"), "Answers every query with its text", &["echo"])
//!     }
//!     fn open(config: Config) -> Result<Self> { Ok(Echo { config }) }
//!     fn test(&self) -> Result<ServerInfo> { Ok(ServerInfo::new("echo 1", 0.01, false)) }
//!     fn query(&self, request: QueryRequest) -> Result<Box<dyn Rows>> {
//!         let columns = vec![ColumnMeta::new("sql", "text", CommonType::Text)];
//!         Ok(Box::new(RowSet::new(columns, vec![vec![Value::Text(request.sql)]])))
//!     }
//! }
//!
//! export_connector!(Echo);
//! ```
//!
//! The sandbox a plugin runs in grants no files, environment variables or sockets: outbound
//! HTTP through [`http`] is the only way out, and only to the connection's own host and
//! port. Each call has memory, CPU and wall-clock limits; a panic fails that call only.
//! See the README for the full walkthrough, and `examples/template` to start from.

#![warn(missing_docs)]

/// The generated bindings of `wit/connector@0.1.0`. Plugin authors need not touch these:
/// the types they use are re-exported at the crate root.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs)] // FFI to the component model, generated
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/connector@0.1.0",
        world: "plugboard:connector/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "plugboard_sdk::bindings",
        generate_all,
    });
}

mod adapter;
pub mod config;
pub mod http;
pub mod log;
mod types;

#[doc(hidden)]
pub use adapter::{SessionAdapter, StreamAdapter};
pub use config::Config;
pub use types::*;

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::config::Config;
    pub use crate::http::{Client, Method, Request, Response};
    pub use crate::types::*;
    pub use crate::{Connector, Result, Rows, export_connector};
}

/// `Result` with the plugin [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connector: one value per session with a connection's target.
///
/// The host opens a session per connection (and a few more when calls run at once) and
/// keeps it across calls, so state such as a login token belongs in `Self`. Every method
/// runs to completion within the host's limits; return an [`Error`] rather than panic.
pub trait Connector: Sized + 'static {
    /// Static facts about the plugin: its name, version, engine ids, configuration fields.
    fn info() -> PluginInfo;

    /// Opens a session. Cheap: check the configuration here and report a bad one as
    /// [`Error::Configuration`]; network work can wait for the first call.
    fn open(config: Config) -> Result<Self>;

    /// Checks the target answers and reports its version, latency and whether TLS is used.
    fn test(&self) -> Result<ServerInfo>;

    /// The databases on the target server.
    fn list_databases(&self) -> Result<Vec<String>> {
        Err(Error::Unsupported("listing databases".into()))
    }

    /// Schemas, tables, columns, keys and indexes, as the options ask.
    fn introspect(&self, options: IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let _ = options;
        Err(Error::Unsupported("introspection".into()))
    }

    /// Starts a query. Its rows are pulled batch by batch from the returned [`Rows`];
    /// dropping it before the end must stop the query on the server.
    fn query(&self, request: QueryRequest) -> Result<Box<dyn Rows>>;
}

/// A running query's result, pulled batch by batch.
pub trait Rows: 'static {
    /// The result's columns; known before the first row.
    fn columns(&self) -> Vec<ColumnMeta>;

    /// Up to `max_rows` more rows; `None` once the result is exhausted.
    fn next_batch(&mut self, max_rows: u32) -> Result<Option<Vec<Row>>>;

    /// Rows affected by a statement that changes data; asked once the result is exhausted.
    fn rows_affected(&self) -> Option<u64> {
        None
    }
}

/// Registers a [`Connector`] as the component's export. Use it once, at the crate root.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[doc(hidden)]
        struct __PlugboardExport;

        impl $crate::bindings::exports::plugboard::connector::connector::Guest
            for __PlugboardExport
        {
            type Session = $crate::SessionAdapter<$connector>;
            type ResultStream = $crate::StreamAdapter;

            fn describe() -> $crate::PluginInfo {
                <$connector as $crate::Connector>::info()
            }
        }

        // Only a component exports anything: on the host (unit tests of a plugin's own
        // code) there is no component model to export to.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_plugin!(__PlugboardExport with_types_in $crate::bindings);

        // On the host nothing calls the connector, which would leave it "never used".
        #[cfg(not(target_arch = "wasm32"))]
        #[allow(dead_code)]
        fn __plugboard_connector_is_exported_on_wasm32() {
            let _ = <__PlugboardExport as $crate::bindings::exports::plugboard::connector::connector::Guest>::describe;
            let _ = <$connector as $crate::Connector>::open;
            let _ = <$connector as $crate::Connector>::query;
        }
    };
}

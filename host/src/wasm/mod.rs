//! The WebAssembly plugin runtime: components from the plugins folder, run in wasmtime
//! sandboxes behind the same [`plugboard_connector::Plugin`] trait as native plugins.
//!
//! - [`bindings`]: the WIT contract's generated host bindings and type conversions;
//! - [`engine`]: the engine, the per-call limits, the epoch ticker, the compiled-code cache;
//! - [`sandbox`]: what an instance may touch (no files, environment or sockets; outbound
//!   HTTP only to its connection), and where its output goes;
//! - [`http_pool`]: kept-alive connections for plugins' outbound HTTP;
//! - [`plugin`]: a component as a `Plugin`, its sessions and result streams;
//! - [`folder`]: loading and watching the plugins folder.

pub mod bindings;
pub mod engine;
pub mod folder;
pub mod http_pool;
pub mod plugin;
pub mod sandbox;

pub use engine::{Limits, Runtime};
pub use folder::PluginFolder;
pub use plugin::WasmPlugin;
pub use sandbox::EgressRules;

//! The wasmtime engine every WASM plugin runs on: its configuration, the limits each call
//! gets, the epoch ticker behind the CPU limit, and the compiled-code cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::bindings;
use super::sandbox::{EgressRules, StoreState};

/// How often the epoch advances; the CPU limit counts these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What each plugin call may use. Operators set these with `plugboard serve` flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_bytes: usize,
    /// Guest CPU time per call (counted in epoch ticks, so time waiting on the network
    /// does not count).
    pub cpu: Duration,
    /// Wall-clock time per call, including time spent in host calls such as outbound HTTP.
    /// A query's own `timeout_ms` (plus a grace period) replaces it for that query.
    pub call_timeout: Duration,
    /// Instances of one plugin running a call at once; further calls wait (up to their
    /// deadline) for one to finish.
    pub busy_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(10),
            call_timeout: Duration::from_secs(60),
            busy_instances: 32,
        }
    }
}

/// The shared engine, linker and settings.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<StoreState>,
    pub limits: Limits,
    pub egress: Arc<EgressRules>,
    /// Kept-alive connections for every plugin's plain-HTTP requests.
    pub http: Arc<super::http_pool::ConnectionPool>,
    cache_dir: Option<PathBuf>,
    /// Set to stop the epoch ticker thread.
    stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled component and what identifies it.
pub struct Compiled {
    pub component: Component,
    pub sha256: String,
    /// Whether it came from the compiled-code cache.
    pub cached: bool,
}

impl Runtime {
    /// An engine with epoch interruption and async support, a linker granting WASI (denied
    /// through each store's context), `wasi:http` and the `host` interface, and a task that
    /// advances the epoch. Compiled code is cached under `cache_dir` when given.
    pub fn new(
        limits: Limits,
        egress: EgressRules,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Arc<Runtime>> {
        let engine = match Engine::new(&engine_config(&limits, true)) {
            Ok(engine) => engine,
            Err(e) => {
                // The pooling allocator reserves address space up front; where that is
                // refused (a ulimit), instances are allocated on demand instead.
                tracing::warn!(error = %format!("{e:#}"), "the pooling instance allocator is unavailable; allocating plugin instances on demand");
                Engine::new(&engine_config(&limits, false))
                    .map_err(|e| anyhow::anyhow!("configuring the WebAssembly engine: {e:#}"))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI into the plugin linker: {e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking wasi:http into the plugin linker: {e:#}"))?;
        bindings::plugboard::connector::host::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| anyhow::anyhow!("linking the host interface: {e:#}"))?;
        bindings::plugboard::connector::types::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| anyhow::anyhow!("linking the types interface: {e:#}"))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the compiled-code cache {}", dir.display()))?;
        }
        // A thread of its own, not a task: a guest spinning on a runtime thread must not be
        // able to starve the clock that stops it.
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("plugboard-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .context("starting the epoch ticker")?;
        }
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            egress: Arc::new(egress),
            http: Arc::default(),
            cache_dir,
            stop,
        }))
    }

    /// Epoch ticks a call may run before the CPU limit stops it.
    pub fn cpu_ticks(&self) -> u64 {
        (self.limits.cpu.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }

    /// Compiles `bytes` (the file's contents), or loads the compiled code cached for the
    /// same bytes and engine configuration.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Compiled> {
        let sha256 = hex(&Sha256::digest(bytes));
        let cached_path = self.cache_dir.as_ref().map(|dir| {
            let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(
                &self.engine.precompile_compatibility_hash(),
                &mut engine_hash,
            );
            let engine_hash = std::hash::Hasher::finish(&engine_hash);
            dir.join(format!("{sha256}-{engine_hash:016x}.cwasm"))
        });
        if let Some(path) = &cached_path
            && path.exists()
        {
            match load_cached(&self.engine, path) {
                Ok(component) => {
                    return Ok(Compiled {
                        component,
                        sha256,
                        cached: true,
                    });
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable compiled-code cache entry");
                }
            }
        }
        if !wasmparser_is_component(bytes) {
            anyhow::bail!(
                "not a WebAssembly component (a core module or another file): build it for \
                 wasm32-wasip2, which produces a component"
            );
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        if let Some(path) = &cached_path
            && let Err(e) = store_cached(&component, path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-code cache");
        }
        Ok(Compiled {
            component,
            sha256,
            cached: false,
        })
    }
}

/// Instance slots of the pooling allocator: live instances (busy and idle) of every plugin.
const POOLED_INSTANCES: u32 = 1_000;

/// The engine's configuration: epoch interruption for the CPU limit, and (when `pooled`)
/// the pooling allocator, which makes a fresh instance several times cheaper than
/// allocating it on demand; each memory slot reserves only the memory limit.
fn engine_config(limits: &Limits, pooled: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    if pooled {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 4)
            .total_stacks(POOLED_INSTANCES)
            .max_memory_size(limits.memory_bytes)
            // Reset a freed slot's first pages by writing zeros rather than giving them back
            // to the kernel, so a new instance does not fault them in again.
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        config.memory_reservation(limits.memory_bytes as u64);
    }
    config
}

/// A component's preamble: `\0asm`, then a version word whose layer half is 1 (a core
/// module's is 0).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..4] == b"\0asm" && bytes[6..8] == [1, 0]
}

#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be code wasmtime compiled: the cache
    // lives in the host's own data directory (mode 0700), is written only by
    // `store_cached` below through a rename, and is keyed by the engine's compatibility
    // hash, so wasmtime also refuses an artifact from another version or configuration.
    unsafe { Component::deserialize_file(engine, path) }.map_err(|e| anyhow::anyhow!("{e:#}"))
}

fn store_cached(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

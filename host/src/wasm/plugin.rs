//! A WASM component behind the connector traits: [`WasmPlugin`] is a [`Plugin`],
//! [`WasmSession`] a [`Session`], so nothing above the catalogue can tell it from a native
//! plugin.
//!
//! Each instance lives in its own store with its own limits, and holds one opened
//! `session` resource (where a plugin keeps its login token). A session keeps a few idle
//! instances and takes one per call; calls on one connection can therefore run at once.
//! Every call runs under three limits: memory (the store's limiter), CPU (epoch ticks) and
//! wall-clock time (a timeout around the whole call, host calls included). An instance that
//! traps, hits a limit or misses its deadline is discarded, never reused: the next call
//! gets a fresh one, and nothing else is affected.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use plugboard_connector::{
    ColumnMeta, ConnectionConfig, Error, IntrospectOptions, Plugin, PluginInfo, QueryRequest,
    Result, ResultStream, Row, SchemaInfo, ServerInfo, Session,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::ResourceAny;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{self, Plugin as World, PluginPre, wit};
use super::engine::Runtime;
use super::sandbox::{Egress, StoreState};

/// Added to a query's own `timeout_ms` before the host gives up on the plugin: the plugin
/// is expected to stop the query on the server itself, and needs a moment to say so.
const QUERY_GRACE: Duration = Duration::from_secs(2);

/// Idle instances a session keeps for its next calls.
const IDLE_INSTANCES: usize = 2;

/// What every session of one loaded component shares.
struct Shared {
    name: Arc<str>,
    info: PluginInfo,
    pre: PluginPre<StoreState>,
    runtime: Arc<Runtime>,
    busy: Arc<Semaphore>,
}

/// A loaded WASM plugin.
pub struct WasmPlugin {
    shared: Arc<Shared>,
}

impl WasmPlugin {
    /// Links `component` and asks it to describe itself, in a fresh sandboxed instance.
    pub async fn load(
        runtime: Arc<Runtime>,
        component: &wasmtime::component::Component,
    ) -> anyhow::Result<WasmPlugin> {
        check_exports(&runtime, component)?;
        let pre = runtime
            .linker
            .instantiate_pre(component)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let pre = PluginPre::new(pre).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let busy = Arc::new(Semaphore::new(runtime.limits.busy_instances));
        let mut shared = Shared {
            name: Arc::from("(loading)"),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                engines: Vec::new(),
                config_fields: Vec::new(),
                capabilities: Default::default(),
            },
            pre,
            runtime,
            busy,
        };
        let mut store = shared.new_store(None);
        let deadline = shared.runtime.limits.call_timeout;
        let info = tokio::time::timeout(deadline, async {
            let world = shared.pre.instantiate_async(&mut store).await?;
            world
                .plugboard_connector_connector()
                .call_describe(&mut store)
                .await
        })
        .await
        .map_err(|_| anyhow::anyhow!("describe() did not return within {deadline:?}"))?
        .map_err(|e| anyhow::anyhow!("describe() failed: {}", trap_cause(&e, &store)))?;
        let info = bindings::plugin_info(info);
        if info.name.trim().is_empty() || info.engines.is_empty() {
            anyhow::bail!("describe() gave no name or no engine id");
        }
        if let Some(bad) = info.engines.iter().find(|e| !valid_engine_id(e)) {
            anyhow::bail!("engine id `{bad}` is not lowercase letters, digits, `_` or `-`");
        }
        shared.name = Arc::from(info.name.as_str());
        shared.info = info;
        Ok(WasmPlugin {
            shared: Arc::new(shared),
        })
    }
}

fn valid_engine_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A clear reason when the component speaks another contract, before linking says it in
/// its own words.
fn check_exports(
    runtime: &Runtime,
    component: &wasmtime::component::Component,
) -> anyhow::Result<()> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(&runtime.engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.iter().any(|e| e == bindings::CONNECTOR_EXPORT) {
        return Ok(());
    }
    if let Some(other) = exports
        .iter()
        .find(|e| e.starts_with("plugboard:connector/connector@"))
    {
        let version = other.rsplit('@').next().unwrap_or_default();
        anyhow::bail!(
            "built for contract plugboard:connector@{version}; this host speaks {}",
            bindings::CONNECTOR_EXPORT
                .rsplit('@')
                .next()
                .unwrap_or_default()
        );
    }
    anyhow::bail!(
        "does not export {} (its exports: {})",
        bindings::CONNECTOR_EXPORT,
        if exports.is_empty() {
            "none".to_owned()
        } else {
            exports.join(", ")
        }
    )
}

impl Shared {
    fn new_store(&self, config: Option<&ConnectionConfig>) -> Store<StoreState> {
        let limits = &self.runtime.limits;
        let target = config.and_then(|c| {
            let host = c.host.clone()?;
            Some((host, c.port?))
        });
        let egress = Egress::new(
            self.name.clone(),
            target,
            self.runtime.egress.clone(),
            limits.call_timeout,
            self.runtime.http.clone(),
        );
        let mut store = Store::new(
            &self.runtime.engine,
            StoreState::new(self.name.clone(), egress, limits.memory_bytes),
        );
        store.limiter(|state| &mut state.memory);
        let budget = self.runtime.cpu_ticks();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > budget {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yielding lets the wall-clock timeout around the call fire.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Names what stopped a failed call.
    fn failure(&self, error: &wasmtime::Error, store: &Store<StoreState>) -> Error {
        let cause = trap_cause(error, store);
        tracing::warn!(
            plugin = &*self.name,
            cause,
            "plugin call failed; its instance is discarded"
        );
        Error::Plugin(format!("plugin `{}` {cause}", self.name))
    }

    fn timeout(&self, deadline: Duration) -> Error {
        tracing::warn!(
            plugin = &*self.name,
            ?deadline,
            "plugin call missed its deadline; its instance is discarded"
        );
        Error::Timeout(format!(
            "plugin `{}` did not answer within {:.1} s",
            self.name,
            deadline.as_secs_f64()
        ))
    }
}

fn trap_cause(error: &wasmtime::Error, store: &Store<StoreState>) -> String {
    if store.data().memory.exceeded {
        return format!(
            "exceeded its memory limit of {} MiB",
            store.data().memory.max_bytes >> 20
        );
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "exceeded its CPU time limit".to_owned(),
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "trapped (a panic or an abort: unreachable code reached)".to_owned()
        }
        Some(trap) => format!("trapped: {trap}"),
        None => format!("failed: {error:#}"),
    }
}

#[async_trait]
impl Plugin for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.shared.info
    }

    async fn open(&self, config: ConnectionConfig) -> Result<Box<dyn Session>> {
        let session = WasmSession {
            inner: Arc::new(SessionInner {
                shared: self.shared.clone(),
                config,
                idle: Mutex::new(Vec::new()),
            }),
        };
        // Opening an instance now reports configuration errors at once, as native plugins
        // do, and leaves it ready for the first call.
        let instance = session
            .inner
            .checkout(session.inner.shared.runtime.limits.call_timeout)
            .await?;
        session.inner.checkin(instance);
        Ok(Box::new(session))
    }
}

/// An instance with its `session` resource opened.
struct Instance {
    store: Store<StoreState>,
    world: World,
    session: ResourceAny,
    /// Held while the instance runs a call; idle instances hold none.
    busy: Option<OwnedSemaphorePermit>,
}

struct SessionInner {
    shared: Arc<Shared>,
    config: ConnectionConfig,
    idle: Mutex<Vec<Instance>>,
}

/// A session of a WASM plugin for one connection.
pub struct WasmSession {
    inner: Arc<SessionInner>,
}

impl SessionInner {
    /// An idle instance, or a new one with its session opened; waits for a busy slot of the
    /// plugin up to `deadline`.
    async fn checkout(&self, deadline: Duration) -> Result<Instance> {
        let shared = &self.shared;
        let permit = tokio::time::timeout(deadline, shared.busy.clone().acquire_owned())
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "plugin `{}` has {} calls running; none finished within {:.1} s",
                    shared.name,
                    shared.runtime.limits.busy_instances,
                    deadline.as_secs_f64()
                ))
            })?
            .expect("the semaphore is never closed");
        if let Some(mut instance) = self.idle.lock().unwrap().pop() {
            instance.busy = Some(permit);
            return Ok(instance);
        }
        let mut store = shared.new_store(Some(&self.config));
        let config = bindings::connection_config(&self.config);
        let opened = tokio::time::timeout(deadline, async {
            let world = shared.pre.instantiate_async(&mut store).await?;
            let session = world
                .plugboard_connector_connector()
                .session()
                .call_open(&mut store, &config)
                .await?;
            wasmtime::Result::Ok((world, session))
        })
        .await;
        match opened {
            Err(_) => Err(shared.timeout(deadline)),
            Ok(Err(e)) => Err(shared.failure(&e, &store)),
            Ok(Ok((_, Err(e)))) => Err(bindings::error_from_guest(e)),
            Ok(Ok((world, Ok(session)))) => Ok(Instance {
                store,
                world,
                session,
                busy: Some(permit),
            }),
        }
    }

    /// Returns a healthy instance for the next call (or lets it go when enough are idle).
    fn checkin(&self, mut instance: Instance) {
        instance.busy = None;
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < IDLE_INSTANCES {
            idle.push(instance);
        }
    }

    fn deadline(&self) -> Duration {
        self.shared.runtime.limits.call_timeout
    }
}

/// Runs one guest call on a checked-out instance under the wall-clock deadline, then
/// returns the instance (the call answered, even with an error) or discards it (it trapped
/// or missed the deadline).
macro_rules! guest_call {
    ($inner:expr, $instance:ident, $deadline:expr, |$store:ident, $api:ident, $session:ident| $call:expr) => {{
        let deadline = $deadline;
        $instance.store.data_mut().cpu_ticks = 0;
        let outcome = {
            let $store = &mut $instance.store;
            let $api = $instance.world.plugboard_connector_connector();
            let $session = $instance.session;
            tokio::time::timeout(deadline, $call).await
        };
        let result = match outcome {
            Err(_) => Err($inner.shared.timeout(deadline)),
            Ok(Err(e)) => Err($inner.shared.failure(&e, &$instance.store)),
            Ok(Ok(answer)) => Ok(($instance, answer)),
        };
        let result_label = match &result {
            Ok(_) => "ok",
            Err(Error::Timeout(_)) => "timeout",
            Err(_) => "trap",
        };
        metrics::counter!(
            "plugboard_plugin_calls_total",
            "plugin" => $inner.shared.name.to_string(),
            "result" => result_label,
        )
        .increment(1);
        result
    }};
}

impl SessionInner {
    /// Runs a call that answers `result<T, error>` on a fresh or idle instance.
    async fn answer<T>(
        &self,
        result: std::result::Result<(Instance, std::result::Result<T, wit::Error>), Error>,
    ) -> Result<T> {
        let (instance, answer) = result?;
        self.checkin(instance);
        answer.map_err(bindings::error_from_guest)
    }
}

#[async_trait]
impl Session for WasmSession {
    async fn test(&self) -> Result<ServerInfo> {
        let inner = &self.inner;
        let mut instance = inner.checkout(inner.deadline()).await?;
        let result = guest_call!(inner, instance, inner.deadline(), |store, api, session| api
            .session()
            .call_test(store, session));
        inner.answer(result).await.map(bindings::server_info)
    }

    async fn list_databases(&self) -> Result<Vec<String>> {
        let inner = &self.inner;
        let mut instance = inner.checkout(inner.deadline()).await?;
        let result = guest_call!(inner, instance, inner.deadline(), |store, api, session| api
            .session()
            .call_list_databases(store, session));
        inner.answer(result).await
    }

    async fn introspect(&self, options: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        let inner = &self.inner;
        let options = bindings::introspect_options(options);
        let mut instance = inner.checkout(inner.deadline()).await?;
        let result = guest_call!(inner, instance, inner.deadline(), |store, api, session| api
            .session()
            .call_introspect(store, session, &options));
        inner.answer(result).await.map(bindings::schemas)
    }

    async fn query(&self, request: QueryRequest) -> Result<Box<dyn ResultStream>> {
        let inner = &self.inner;
        let deadline = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()) + QUERY_GRACE)
            .unwrap_or_else(|| inner.deadline());
        let wit_request = wit::QueryRequest {
            sql: request.sql,
            params: request
                .params
                .iter()
                .map(bindings::value_to_guest)
                .collect(),
            timeout_ms: request.timeout_ms,
        };
        let mut instance = inner.checkout(deadline).await?;
        let (mut instance, answer) =
            guest_call!(inner, instance, deadline, |store, api, session| api
                .session()
                .call_query(store, session, &wit_request))?;
        let stream = match answer {
            Ok(stream) => stream,
            Err(e) => {
                inner.checkin(instance);
                return Err(bindings::error_from_guest(e));
            }
        };
        let (instance, columns) =
            guest_call!(inner, instance, deadline, |store, api, _session| api
                .result_stream()
                .call_columns(store, stream))?;
        Ok(Box::new(WasmResultStream {
            session: inner.clone(),
            instance: Some(instance),
            stream,
            columns: columns.into_iter().map(bindings::column).collect(),
            deadline,
            rows_affected: None,
        }))
    }

    async fn close(&self) {
        let idle: Vec<Instance> = std::mem::take(&mut *self.inner.idle.lock().unwrap());
        for mut instance in idle {
            // Dropping the resource runs the plugin's own clean-up (a logout, say).
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                instance.session.resource_drop_async(&mut instance.store),
            )
            .await;
        }
    }
}

/// A query's rows, pulled from the instance that runs it. The instance goes back to its
/// session once the stream is exhausted or dropped (after the guest's stream is dropped,
/// which stops the query).
struct WasmResultStream {
    session: Arc<SessionInner>,
    /// `None` once handed back or discarded.
    instance: Option<Instance>,
    stream: ResourceAny,
    columns: Vec<ColumnMeta>,
    deadline: Duration,
    rows_affected: Option<u64>,
}

impl WasmResultStream {
    /// Drops the guest's stream and returns the instance to the session.
    async fn release(mut instance: Instance, stream: ResourceAny, session: Arc<SessionInner>) {
        let dropped = tokio::time::timeout(
            Duration::from_secs(10),
            stream.resource_drop_async(&mut instance.store),
        )
        .await;
        if matches!(dropped, Ok(Ok(()))) {
            session.checkin(instance);
        }
    }
}

#[async_trait]
impl ResultStream for WasmResultStream {
    fn columns(&self) -> &[ColumnMeta] {
        &self.columns
    }

    async fn next_batch(&mut self, max_rows: usize) -> Result<Option<Vec<Row>>> {
        let Some(mut instance) = self.instance.take() else {
            return Ok(None);
        };
        let inner = self.session.clone();
        let stream = self.stream;
        let max = u32::try_from(max_rows.max(1)).unwrap_or(u32::MAX);
        let (mut instance, answer) =
            guest_call!(inner, instance, self.deadline, |store, api, _session| api
                .result_stream()
                .call_next_batch(store, stream, max))?;
        match answer {
            Ok(Some(rows)) => {
                self.instance = Some(instance);
                Ok(Some(
                    rows.into_iter()
                        .map(|row| row.into_iter().map(bindings::value_from_guest).collect())
                        .collect(),
                ))
            }
            Ok(None) => {
                let affected = guest_call!(inner, instance, self.deadline, |store, api, _s| api
                    .result_stream()
                    .call_rows_affected(store, stream))?;
                let (instance, affected) = affected;
                self.rows_affected = affected;
                Self::release(instance, stream, inner).await;
                Ok(None)
            }
            Err(e) => {
                Self::release(instance, stream, inner).await;
                Err(bindings::error_from_guest(e))
            }
        }
    }

    fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }
}

impl Drop for WasmResultStream {
    fn drop(&mut self) {
        // Abandoned mid-way: the guest's stream must be dropped so the plugin stops the
        // query, which needs the async runtime.
        if let Some(instance) = self.instance.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(Self::release(instance, self.stream, self.session.clone()));
        }
    }
}

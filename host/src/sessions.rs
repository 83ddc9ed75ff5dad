//! One live session per stored connection: opened on first use, shared by every request for
//! that connection (so they share its pool), closed when the connection changes or after it
//! has been idle for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugboard_connector::Session;

struct Entry {
    session: Arc<dyn Session>,
    /// The connection's `updated_at` when the session was opened: a session opened from an
    /// older version of the connection is never handed out.
    version: String,
    /// The connection's engine, and the generation of the plugin that served it.
    engine: String,
    generation: String,
    last_used: Instant,
    /// When the version was last checked against the store.
    validated: Instant,
}

/// The live sessions, by connection id.
#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl SessionCache {
    /// The live session for `id` at `version`, if there is one.
    pub fn get(&self, id: &str, version: &str) -> Option<Arc<dyn Session>> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries.get_mut(id).filter(|e| e.version == version)?;
        entry.last_used = Instant::now();
        entry.validated = entry.last_used;
        Some(entry.session.clone())
    }

    /// The live session for `id`, if its version was checked against the store within
    /// `fresh` and `current` (given the engine) names the generation of plugin that opened
    /// it: a busy connection is then served without reading the store on every request.
    /// This replica's own changes evict at once; another replica's are seen within `fresh`.
    pub fn get_recent(
        &self,
        id: &str,
        fresh: Duration,
        current: impl FnOnce(&str) -> Option<String>,
    ) -> Option<(Arc<dyn Session>, String)> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries
            .get_mut(id)
            .filter(|e| e.validated.elapsed() < fresh)?;
        if current(&entry.engine).as_ref() != Some(&entry.generation) {
            return None;
        }
        entry.last_used = Instant::now();
        Some((entry.session.clone(), entry.engine.clone()))
    }

    /// The open session for `id`, whatever its version, without counting as a use (for
    /// reports such as the pool's).
    pub fn peek(&self, id: &str) -> Option<Arc<dyn Session>> {
        let entries = self.entries.lock().unwrap();
        entries.get(id).map(|e| e.session.clone())
    }

    /// Every open session with its connection id (for the pool gauges).
    pub fn all(&self) -> Vec<(String, Arc<dyn Session>)> {
        let entries = self.entries.lock().unwrap();
        entries
            .iter()
            .map(|(id, e)| (id.clone(), e.session.clone()))
            .collect()
    }

    /// Keeps `session` for `id` at `version` and returns the session to use: `session`
    /// itself, or the one a concurrent request kept first (then `session` is closed).
    /// A session for an older version is replaced and closed.
    pub async fn insert(
        &self,
        id: &str,
        version: &str,
        (engine, generation): (&str, &str),
        session: Arc<dyn Session>,
    ) -> Arc<dyn Session> {
        let (kept, to_close) = {
            let mut entries = self.entries.lock().unwrap();
            match entries.get_mut(id) {
                Some(existing) if existing.version == version => {
                    existing.last_used = Instant::now();
                    existing.validated = existing.last_used;
                    (existing.session.clone(), Some(session))
                }
                _ => {
                    let old = entries.insert(
                        id.to_owned(),
                        Entry {
                            session: session.clone(),
                            version: version.to_owned(),
                            engine: engine.to_owned(),
                            generation: generation.to_owned(),
                            last_used: Instant::now(),
                            validated: Instant::now(),
                        },
                    );
                    (session, old.map(|e| e.session))
                }
            }
        };
        if let Some(s) = to_close {
            s.close().await;
        }
        kept
    }

    /// Closes and forgets the session for `id` (its connection changed or was deleted).
    pub async fn evict(&self, id: &str) {
        let removed = self.entries.lock().unwrap().remove(id);
        if let Some(entry) = removed {
            entry.session.close().await;
        }
    }

    /// Closes sessions idle for longer than `idle`; returns how many.
    pub async fn close_idle(&self, idle: Duration) -> usize {
        let stale: Vec<Arc<dyn Session>> = {
            let mut entries = self.entries.lock().unwrap();
            let ids: Vec<String> = entries
                .iter()
                .filter(|(_, e)| e.last_used.elapsed() > idle && Arc::strong_count(&e.session) == 1)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| entries.remove(id))
                .map(|e| e.session)
                .collect()
        };
        let count = stale.len();
        for session in stale {
            session.close().await;
        }
        count
    }

    /// Closes every session (at shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Entry> = self
            .entries
            .lock()
            .unwrap()
            .drain()
            .map(|(_, e)| e)
            .collect();
        for entry in all {
            entry.session.close().await;
        }
    }

    /// How many sessions are open.
    pub fn open_count(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use plugboard_connector::{
        IntrospectOptions, QueryRequest, Result, ResultStream, SchemaInfo, ServerInfo,
    };

    /// A session that only counts how often it was closed.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    #[async_trait]
    impl Session for Counted {
        async fn test(&self) -> Result<ServerInfo> {
            unreachable!("not called by the cache")
        }
        async fn list_databases(&self) -> Result<Vec<String>> {
            unreachable!("not called by the cache")
        }
        async fn introspect(&self, _: &IntrospectOptions) -> Result<Vec<SchemaInfo>> {
            unreachable!("not called by the cache")
        }
        async fn query(&self, _: QueryRequest) -> Result<Box<dyn ResultStream>> {
            unreachable!("not called by the cache")
        }
        async fn close(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn closes(session: &Arc<Counted>) -> usize {
        session.0.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_session_serves_one_version_of_its_connection() {
        let cache = SessionCache::default();
        let v1 = Arc::new(Counted::default());
        let kept = cache.insert("c", "v1", ("x", "g"), v1.clone()).await;
        assert!(Arc::ptr_eq(&kept, &(v1.clone() as Arc<dyn Session>)));
        assert!(cache.get("c", "v1").is_some());
        assert!(
            cache.get("c", "v2").is_none(),
            "an older version is never handed out"
        );

        // A concurrent opener of the same version gets the kept one; its own is closed.
        let racer = Arc::new(Counted::default());
        let kept = cache.insert("c", "v1", ("x", "g"), racer.clone()).await;
        assert!(Arc::ptr_eq(&kept, &(v1.clone() as Arc<dyn Session>)));
        assert_eq!(closes(&racer), 1);

        // A new version replaces and closes the old session.
        let v2 = Arc::new(Counted::default());
        cache.insert("c", "v2", ("x", "g"), v2.clone()).await;
        assert_eq!(closes(&v1), 1);
        assert_eq!(cache.open_count(), 1);

        cache.evict("c").await;
        assert_eq!(closes(&v2), 1);
        assert_eq!(cache.open_count(), 0);
    }

    #[tokio::test]
    async fn a_recent_session_is_served_only_by_the_plugin_that_opened_it() {
        let cache = SessionCache::default();
        cache
            .insert("c", "v1", ("pg", "g1"), Arc::new(Counted::default()))
            .await;
        let fresh = Duration::from_millis(50);
        let same = |_: &str| Some("g1".to_owned());
        let (_, engine) = cache.get_recent("c", fresh, same).unwrap();
        assert_eq!(engine, "pg");
        assert!(
            cache
                .get_recent("c", fresh, |_| Some("g2".into()))
                .is_none()
        );
        assert!(cache.get_recent("c", fresh, |_| None).is_none());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            cache.get_recent("c", fresh, same).is_none(),
            "past `fresh`, the store decides again"
        );
        assert!(cache.get("c", "v1").is_some());
        assert!(cache.get_recent("c", fresh, same).is_some(), "revalidated");
    }

    #[tokio::test]
    async fn idle_sessions_close_unless_in_use() {
        let cache = SessionCache::default();
        let idle = Arc::new(Counted::default());
        let busy = Arc::new(Counted::default());
        let (idle_probe, busy_probe) = (Arc::downgrade(&idle), Arc::downgrade(&busy));
        // The cache holds the only reference to each, once ours are gone...
        cache.insert("idle", "v", ("x", "g"), idle).await;
        cache.insert("busy", "v", ("x", "g"), busy).await;
        // ...except that a request is using `busy`.
        let in_use = cache.get("busy", "v").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(cache.close_idle(Duration::from_millis(10)).await, 1);
        assert!(
            idle_probe.upgrade().is_none(),
            "the idle session was closed and dropped"
        );
        assert!(
            busy_probe.upgrade().is_some(),
            "a session in use stays open"
        );
        assert_eq!(cache.open_count(), 1);
        drop(in_use);
        cache.close_all().await;
        assert_eq!(cache.open_count(), 0);
    }
}

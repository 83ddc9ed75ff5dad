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
    last_used: Instant,
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
        Some(entry.session.clone())
    }

    /// Keeps `session` for `id` at `version` and returns the session to use: `session`
    /// itself, or the one a concurrent request kept first (then `session` is closed).
    /// A session for an older version is replaced and closed.
    pub async fn insert(
        &self,
        id: &str,
        version: &str,
        session: Arc<dyn Session>,
    ) -> Arc<dyn Session> {
        let (kept, to_close) = {
            let mut entries = self.entries.lock().unwrap();
            match entries.get_mut(id) {
                Some(existing) if existing.version == version => {
                    existing.last_used = Instant::now();
                    (existing.session.clone(), Some(session))
                }
                _ => {
                    let old = entries.insert(
                        id.to_owned(),
                        Entry {
                            session: session.clone(),
                            version: version.to_owned(),
                            last_used: Instant::now(),
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

//! The session proxy's cache of sessions: what it needs to know of each (state and endpoint),
//! kept briefly so the hot path rarely touches the store, and the traffic it counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use streamspace_proto::SessionState;
use uuid::Uuid;

use super::streamer::Credentials;
use crate::clock::Clock;
use crate::recent::Ticket;

/// Entries older than this are read again from the store.
const FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct CachedSession {
    /// The org of the session and of its owner, whose IP allow-list holds for it.
    pub org_id: Uuid,
    pub state: SessionState,
    pub endpoint: Option<Arc<str>>,
    pub traffic: Arc<Traffic>,
    /// The streamer credentials, derived on first use and kept for the session's life.
    pub credentials: Arc<OnceLock<Credentials>>,
    /// When this is read again from the store.
    pub fresh_until: Instant,
}

/// Bytes through the proxy and the last time any moved, per session.
pub struct Traffic {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Unix milliseconds of the last proxied byte or request.
    pub last_activity_ms: AtomicI64,
    /// `last_activity_ms` as last written to the store.
    pub flushed_ms: AtomicI64,
    /// The control plane's clock: the idle timeout compares this activity with its time.
    clock: Arc<dyn Clock>,
}

impl Traffic {
    fn new(clock: Arc<dyn Clock>) -> Traffic {
        Traffic {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_activity_ms: AtomicI64::new(0),
            flushed_ms: AtomicI64::new(0),
            clock,
        }
    }

    pub fn touch(&self) {
        self.touch_at(self.clock.now());
    }

    /// A request at `now`, read from this clock by the caller, who needed the time already.
    pub fn touch_at(&self, now: DateTime<Utc>) {
        self.last_activity_ms.store(now.timestamp_millis(), Ordering::Relaxed);
    }
}

pub struct SessionCache {
    entries: RwLock<HashMap<Uuid, CachedSession>>,
    /// Counts invalidations: what was read before one may be what it invalidated.
    forgotten: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl SessionCache {
    pub fn new(clock: Arc<dyn Clock>) -> SessionCache {
        SessionCache { entries: Default::default(), forgotten: AtomicU64::new(0), clock }
    }

    /// The cached session if it is fresh.
    pub fn fresh(&self, id: Uuid) -> Option<CachedSession> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(&id).filter(|session| Instant::now() < session.fresh_until).cloned()
    }

    /// Taken before reading: a [`CachedSession`] read after it is still true while the ticket is the
    /// current one and the session is fresh.
    pub fn ticket(&self) -> Ticket {
        Ticket::of(&self.forgotten)
    }

    /// Records what the store says, keeping the session's traffic counters.
    pub fn store(&self, id: Uuid, org_id: Uuid, state: SessionState, endpoint: Option<String>) -> CachedSession {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let (traffic, credentials) = match entries.get(&id) {
            Some(session) => (session.traffic.clone(), session.credentials.clone()),
            None => (Arc::new(Traffic::new(self.clock.clone())), Arc::default()),
        };
        let fresh_until = Instant::now() + FRESH_FOR;
        let cached =
            CachedSession { org_id, state, endpoint: endpoint.map(Arc::from), traffic, credentials, fresh_until };
        entries.insert(id, cached.clone());
        cached
    }

    /// Forgets a session's cached state (it changed), keeping its counters.
    pub fn invalidate(&self, id: Uuid) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        if let Some(session) = entries.get_mut(&id) {
            session.fresh_until = Instant::now();
        }
    }

    /// Sessions with traffic not yet written to the store, with its time; marks them written.
    pub fn take_activity(&self) -> Vec<(Uuid, i64)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter_map(|(id, session)| {
                let traffic = &session.traffic;
                let last = traffic.last_activity_ms.load(Ordering::Relaxed);
                (last > traffic.flushed_ms.swap(last, Ordering::Relaxed)).then_some((*id, last))
            })
            .collect()
    }

    /// Drops ended sessions from the cache.
    pub fn forget(&self, id: Uuid) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        entries.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::{TimeZone, Utc};

    use crate::clock::ManualClock;

    fn manual_clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()))
    }

    #[test]
    fn counters_survive_refreshes_and_activity_is_taken_once() {
        let cache = SessionCache::new(manual_clock());
        let id = Uuid::now_v7();
        let cached = cache.store(id, Uuid::nil(), SessionState::Running, Some("http://x".into()));
        cached.traffic.touch();
        let again = cache.store(id, Uuid::nil(), SessionState::Running, Some("http://x".into()));
        assert!(Arc::ptr_eq(&cached.traffic, &again.traffic));
        assert_eq!(cache.take_activity().len(), 1);
        assert!(cache.take_activity().is_empty());
        assert!(cache.fresh(id).is_some());
        let ticket = cache.ticket();
        cache.invalidate(id);
        assert!(cache.fresh(id).is_none());
        assert_ne!(cache.ticket(), ticket, "what was read before is no longer sure");
    }

    #[test]
    fn activity_is_stamped_by_the_control_plane_clock() {
        let clock = manual_clock();
        let cache = SessionCache::new(clock.clone());
        let id = Uuid::now_v7();
        let route = cache.store(id, Uuid::nil(), SessionState::Running, Some("http://x".into()));
        route.traffic.touch();
        assert_eq!(cache.take_activity(), vec![(id, clock.now().timestamp_millis())]);
        clock.advance(chrono::Duration::seconds(90));
        route.traffic.touch();
        assert_eq!(cache.take_activity(), vec![(id, clock.now().timestamp_millis())]);
    }
}

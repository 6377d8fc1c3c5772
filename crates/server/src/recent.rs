//! Answers read from the store recently, reused for a short while (ADR 0035): who a caller is, what
//! the proxy may let a session cookie do, templates' names.
//!
//! A change made on this replica forgets what it changes at once. One made on another replica
//! arrives as a signal within milliseconds, and should the signal be lost, answers are read again
//! once they are older than their freshness.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Stale entries are swept when an insertion finds the map at least this big.
const SWEEP_FROM: usize = 64;

/// Answers by key, each good for `fresh_for` after it was read.
pub struct Recent<K, V> {
    fresh_for: Duration,
    entries: RwLock<Entries<K, V>>,
    /// Counts forgetting: an answer read before something was forgotten may be the forgotten one.
    forgotten: AtomicU64,
}

struct Entries<K, V> {
    map: HashMap<K, (V, Instant)>,
    /// The size at which the next insertion sweeps; twice what a sweep leaves, so that sweeping
    /// costs each insertion a constant amount however many keys are in use.
    sweep_at: usize,
}

/// Taken before reading an answer from the store, so that [`Recent::keep`] can tell whether it
/// may already be out of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket of a cache whose forgetting `forgotten` counts.
    pub fn of(forgotten: &AtomicU64) -> Ticket {
        Ticket(forgotten.load(Ordering::Acquire))
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    pub fn new(fresh_for: Duration) -> Self {
        Recent {
            fresh_for,
            entries: RwLock::new(Entries { map: HashMap::new(), sweep_at: SWEEP_FROM }),
            forgotten: AtomicU64::new(0),
        }
    }

    /// The answer for `key`, if it was read less than `fresh_for` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_fresh(key).map(|(value, _)| value)
    }

    /// The answer for `key` if it is fresh, and until when it is.
    pub fn get_fresh(&self, key: &K) -> Option<(V, Instant)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (value, read) = entries.map.get(key)?;
        let fresh_until = *read + self.fresh_for;
        (Instant::now() < fresh_until).then(|| (value.clone(), fresh_until))
    }

    pub fn ticket(&self) -> Ticket {
        Ticket::of(&self.forgotten)
    }

    /// Keeps an answer read after `ticket` was taken, unless something was forgotten meanwhile:
    /// the store may have answered before that change.
    pub fn keep(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.write();
        if self.forgotten.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.map.len() >= entries.sweep_at {
            let fresh_for = self.fresh_for;
            entries.map.retain(|_, (_, read)| read.elapsed() < fresh_for);
            entries.sweep_at = SWEEP_FROM.max(2 * entries.map.len());
        }
        entries.map.insert(key, (value, Instant::now()));
    }

    pub fn forget(&self, key: &K) {
        self.forgetting().map.remove(key);
    }

    pub fn forget_where(&self, mut doomed: impl FnMut(&K, &V) -> bool) {
        self.forgetting().map.retain(|key, (value, _)| !doomed(key, value));
    }

    /// The entries, locked, with every ticket taken so far made stale: under the lock, so that no
    /// answer read before this change is kept after it.
    fn forgetting(&self) -> RwLockWriteGuard<'_, Entries<K, V>> {
        let entries = self.write();
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        entries
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries<K, V>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Duration = Duration::from_secs(60);

    #[test]
    fn an_answer_is_reused_until_forgotten() {
        let recent = Recent::new(FRESH);
        recent.keep(recent.ticket(), 1, "one");
        recent.keep(recent.ticket(), 2, "two");
        assert_eq!(recent.get(&1), Some("one"));
        recent.forget(&1);
        assert_eq!((recent.get(&1), recent.get(&2)), (None, Some("two")));
        recent.forget_where(|_, value| value.starts_with('t'));
        assert_eq!(recent.get(&2), None);
    }

    #[test]
    fn an_answer_read_before_a_change_is_not_kept() {
        let recent = Recent::new(FRESH);
        let before_the_change = recent.ticket();
        recent.forget(&1);
        recent.keep(before_the_change, 1, "read before the change");
        assert_eq!(recent.get(&1), None);
        recent.keep(recent.ticket(), 1, "read after it");
        assert_eq!(recent.get(&1), Some("read after it"));
    }

    #[test]
    fn an_old_answer_is_read_again() {
        let recent = Recent::new(Duration::from_millis(20));
        recent.keep(recent.ticket(), 1, "one");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(recent.get(&1), None);
    }

    #[test]
    fn old_answers_are_swept_as_new_ones_arrive() {
        let recent = Recent::new(Duration::from_millis(20));
        for key in 0..SWEEP_FROM {
            recent.keep(recent.ticket(), key, ());
        }
        std::thread::sleep(Duration::from_millis(40));
        for key in SWEEP_FROM..SWEEP_FROM + 10 {
            recent.keep(recent.ticket(), key, ());
        }
        assert_eq!(recent.len(), 10);
    }

    #[test]
    fn many_fresh_answers_are_all_kept() {
        let recent = Recent::new(FRESH);
        for key in 0..10 * SWEEP_FROM {
            recent.keep(recent.ticket(), key, ());
        }
        assert_eq!(recent.len(), 10 * SWEEP_FROM);
    }
}

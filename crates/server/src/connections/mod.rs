//! The long-lived connections users hold on this replica (event streams and session tunnels):
//! counted against per-user caps, and cut when the access they were opened with ends.
//!
//! Every connection registers here before it starts and stays registered until it closes. Cutting
//! one drops its entry, which resolves the connection's [`Registration`]; the connection's task
//! selects on it and closes its socket.

pub mod access;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use streamspace_store::Role;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::auth::policy::SessionRole;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A live-update stream; what it shows was decided by the role it was opened with. Streams
    /// opened with an API key end with the key.
    Events { role: Role, api_key: Option<Uuid> },
    /// An upgraded (WebSocket) connection through the session proxy, opened with a session cookie
    /// issued at `granted_at` (Unix seconds), taking part in the session as `role`.
    Tunnel { session_id: Uuid, granted_at: i64, role: SessionRole },
}

impl Kind {
    fn same_kind(self, other: Kind) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// A connection as the sweep sees it. Ids grow with each registration, so an id says whether the
/// connection opened before or after some point in time (see [`Registry::watermark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub id: u64,
    pub user_id: Uuid,
    pub kind: Kind,
}

struct Entry {
    user_id: Uuid,
    kind: Kind,
    /// Dropping it resolves the connection's registration.
    _cut: oneshot::Sender<()>,
}

#[derive(Default)]
struct Table {
    last_id: u64,
    entries: HashMap<u64, Entry>,
}

/// The user already holds as many connections of this kind as allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached;

#[derive(Clone, Default)]
pub struct Registry {
    table: Arc<Mutex<Table>>,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic elsewhere while holding the lock leaves the table consistent (every change is one
    // map operation), so a poisoned lock is still usable.
    table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Registers a connection of `user_id`, unless they already hold `cap` of this kind.
    pub fn open(&self, user_id: Uuid, kind: Kind, cap: usize) -> Result<Registration, CapReached> {
        let mut table = lock(&self.table);
        let held = table.entries.values().filter(|e| e.user_id == user_id && e.kind.same_kind(kind)).count();
        if held >= cap {
            return Err(CapReached);
        }
        table.last_id += 1;
        let id = table.last_id;
        let (cut, cut_signal) = oneshot::channel();
        table.entries.insert(id, Entry { user_id, kind, _cut: cut });
        Ok(Registration { table: self.table.clone(), id, cut_signal, cut: false, on_close: None })
    }

    /// The id of the latest registration: connections with a higher id opened after this call.
    pub fn watermark(&self) -> u64 {
        lock(&self.table).last_id
    }

    pub fn snapshot(&self) -> Vec<Open> {
        let table = lock(&self.table);
        table.entries.iter().map(|(id, e)| Open { id: *id, user_id: e.user_id, kind: e.kind }).collect()
    }

    /// Cuts every connection `doomed` picks; returns how many.
    pub fn cut(&self, doomed: impl Fn(&Open) -> bool) -> usize {
        let mut table = lock(&self.table);
        let before = table.entries.len();
        table.entries.retain(|id, e| !doomed(&Open { id: *id, user_id: e.user_id, kind: e.kind }));
        let cut = before - table.entries.len();
        if cut > 0 {
            metrics::counter!("streamspace_connections_cut_total").increment(cut as u64);
        }
        cut
    }

    /// Cuts everything the user holds.
    pub fn cut_user(&self, user_id: Uuid) -> usize {
        self.cut(|open| open.user_id == user_id)
    }

    /// Cuts the user's event streams (what they may see changed).
    pub fn cut_user_events(&self, user_id: Uuid) -> usize {
        self.cut(|open| open.user_id == user_id && matches!(open.kind, Kind::Events { .. }))
    }

    /// Cuts the user's tunnels (their session cookies were revoked).
    pub fn cut_user_tunnels(&self, user_id: Uuid) -> usize {
        self.cut(|open| open.user_id == user_id && matches!(open.kind, Kind::Tunnel { .. }))
    }

    /// Cuts every tunnel into the session.
    pub fn cut_session(&self, session_id: Uuid) -> usize {
        self.cut(|open| matches!(open.kind, Kind::Tunnel { session_id: id, .. } if id == session_id))
    }
}

/// One open connection, registered until dropped. As a future, it completes when the connection
/// is cut: the connection selects on it and closes.
pub struct Registration {
    table: Arc<Mutex<Table>>,
    id: u64,
    cut_signal: oneshot::Receiver<()>,
    cut: bool,
    on_close: Option<Box<dyn FnOnce() + Send>>,
}

impl Registration {
    /// Runs `hook` once the connection has ended, however it ended (e.g. to audit its close).
    pub fn on_close(mut self, hook: impl FnOnce() + Send + 'static) -> Registration {
        self.on_close = Some(Box::new(hook));
        self
    }
}

impl Future for Registration {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.cut {
            return Poll::Ready(());
        }
        // The sender is never used to send: it resolves the receiver only by being dropped.
        let poll = Pin::new(&mut self.cut_signal).poll(cx).map(drop);
        self.cut = poll.is_ready();
        poll
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.table).entries.remove(&self.id);
        if let Some(hook) = self.on_close.take() {
            hook();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn caps_count_per_user_and_kind_and_free_up_on_close() {
        let registry = Registry::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let events = Kind::Events { role: Role::Member, api_key: None };
        let first = registry.open(alice, events, 2).unwrap();
        let _second = registry.open(alice, Kind::Events { role: Role::OrgAdmin, api_key: None }, 2).unwrap();
        assert_eq!(registry.open(alice, events, 2).err(), Some(CapReached));
        assert!(registry.open(bob, events, 2).is_ok(), "caps are per user");
        let _tunnel = registry
            .open(alice, Kind::Tunnel { session_id: Uuid::now_v7(), granted_at: 0, role: SessionRole::Owner }, 2)
            .unwrap();
        drop(first);
        assert!(registry.open(alice, events, 2).is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn cutting_resolves_exactly_the_chosen_registrations() {
        let registry = Registry::default();
        let (alice, bob, session) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut alice_tunnel = registry
            .open(alice, Kind::Tunnel { session_id: session, granted_at: 0, role: SessionRole::Owner }, 8)
            .unwrap();
        let mut alice_events = registry.open(alice, Kind::Events { role: Role::OrgAdmin, api_key: None }, 8).unwrap();
        let mut bob_tunnel = registry
            .open(bob, Kind::Tunnel { session_id: Uuid::now_v7(), granted_at: 0, role: SessionRole::Owner }, 8)
            .unwrap();

        assert_eq!(registry.cut_user_events(alice), 1);
        assert_eq!((&mut alice_events).now_or_never(), Some(()));
        assert_eq!((&mut alice_events).now_or_never(), Some(()), "stays cut");
        assert_eq!((&mut alice_tunnel).now_or_never(), None);

        assert_eq!(registry.cut_session(session), 1);
        assert_eq!((&mut alice_tunnel).now_or_never(), Some(()));
        assert_eq!((&mut bob_tunnel).now_or_never(), None);
        assert_eq!(registry.snapshot().len(), 1);
        assert_eq!(registry.cut_user(bob), 1);
        assert_eq!(bob_tunnel.now_or_never(), Some(()));
    }

    #[test]
    fn the_watermark_tells_older_connections_from_newer() {
        let registry = Registry::default();
        let user = Uuid::now_v7();
        let _old = registry.open(user, Kind::Events { role: Role::Member, api_key: None }, 8).unwrap();
        let mark = registry.watermark();
        let _new = registry.open(user, Kind::Events { role: Role::Member, api_key: None }, 8).unwrap();
        assert_eq!(registry.cut(|open| open.id <= mark), 1);
        assert_eq!(registry.snapshot().len(), 1);
    }
}

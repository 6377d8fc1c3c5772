//! Session networks left without their container. An agent that stopped between creating a session's
//! network and its container, or a start that failed in between, leaves one behind, and nothing else would
//! remove it: the control plane knows sessions by their containers. Each holds a Linux bridge, a subnet of
//! Docker's address pools and the session's egress rules.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// The sessions whose network was last seen without a container, and since when.
#[derive(Default)]
pub(crate) struct Orphans(Mutex<HashMap<Uuid, Instant>>);

impl Orphans {
    /// Of `orphans`, the sessions whose network has now been without its container for `grace` (a start in
    /// progress has made its network but not yet its container). Sessions not among `orphans` are forgotten:
    /// their container came, or their network went.
    pub(crate) fn due(&self, orphans: impl IntoIterator<Item = Uuid>, now: Instant, grace: Duration) -> Vec<Uuid> {
        let mut seen = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = std::mem::take(&mut *seen);
        let mut due = Vec::new();
        for session_id in orphans {
            let since = before.get(&session_id).copied().unwrap_or(now);
            if now.saturating_duration_since(since) >= grace {
                due.push(session_id);
            } else {
                seen.insert(session_id, since);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);
    const NONE: [Uuid; 0] = [];

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_network_is_due_once_it_has_been_without_its_container_for_the_grace_period() {
        let (orphans, start) = (Orphans::default(), Instant::now());
        assert_eq!(orphans.due([id(1)], start, GRACE), NONE);
        assert_eq!(orphans.due([id(1)], start + GRACE / 2, GRACE), NONE);
        assert_eq!(orphans.due([id(1), id(2)], start + GRACE, GRACE), [id(1)]);
        assert_eq!(orphans.due([id(2)], start + GRACE * 2, GRACE), [id(2)]);
    }

    #[test]
    fn a_network_that_got_its_container_meanwhile_starts_over() {
        let (orphans, start) = (Orphans::default(), Instant::now());
        assert_eq!(orphans.due([id(1)], start, GRACE), NONE);
        assert_eq!(orphans.due(NONE, start + GRACE / 2, GRACE), NONE);
        assert_eq!(orphans.due([id(1)], start + GRACE, GRACE), NONE);
        assert_eq!(orphans.due([id(1)], start + GRACE * 2, GRACE), [id(1)]);
    }

    #[test]
    fn without_a_grace_period_an_orphan_is_due_at_once() {
        assert_eq!(Orphans::default().due([id(1)], Instant::now(), Duration::ZERO), [id(1)]);
    }
}

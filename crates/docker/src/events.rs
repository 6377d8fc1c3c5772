//! Noticing sessions that die without being asked to.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerStateStatusEnum, EventMessage};
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use streamspace_proto::hub::ActualState;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::container::{LABEL_SESSION, MANAGED_FILTER, Owner, exit_reason};

/// How long to wait before following Docker's events again after the stream broke (daemon restart).
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// What the runtime itself did to its sessions, to tell a requested exit from a crash.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    state: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    /// Sessions being hibernated or stopped: their containers' exits were asked for.
    expected_exits: HashSet<Uuid>,
    /// Why sessions died on their own, so the inventory reports them failed rather than hibernated.
    failures: HashMap<Uuid, String>,
}

impl Tracker {
    fn state(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called before the runtime stops a session's container.
    pub(crate) fn expect_exit(&self, session_id: Uuid) {
        let mut state = self.state();
        state.expected_exits.insert(session_id);
        state.failures.remove(&session_id);
    }

    /// Called when a session (re)starts or is gone: its history no longer matters.
    pub(crate) fn forget(&self, session_id: Uuid) {
        let mut state = self.state();
        state.expected_exits.remove(&session_id);
        state.failures.remove(&session_id);
    }

    pub(crate) fn exit_expected(&self, session_id: Uuid) -> bool {
        self.state().expected_exits.contains(&session_id)
    }

    pub(crate) fn record_failure(&self, session_id: Uuid, reason: String) {
        self.state().failures.insert(session_id, reason);
    }

    pub(crate) fn failure(&self, session_id: Uuid) -> Option<String> {
        self.state().failures.get(&session_id).cloned()
    }
}

/// Follows Docker's `die` events for managed containers until `tx` is closed, sending `Failed` for every death
/// the runtime did not cause. Reconnects (resuming where it left off) when the event stream breaks.
///
/// Only `die` matters: an `oom` event without a `die` is a process inside the container being killed while the
/// session lives on; a session killed for memory shows in the container state (`OOMKilled`) at its `die`.
pub(crate) async fn follow(
    docker: Docker,
    tracker: Arc<Tracker>,
    owner: Owner,
    tx: mpsc::UnboundedSender<(Uuid, ActualState)>,
) {
    let mut since = unix_now();
    loop {
        let mut events = docker.events(Some(die_events_since(since)));
        loop {
            let event = tokio::select! {
                () = tx.closed() => return,
                event = events.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    since = event.time.unwrap_or(since);
                    if let Some(failure) = judge(&docker, &tracker, &owner, &event).await
                        && tx.send(failure).is_err()
                    {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "lost Docker's event stream; following it again");
                    break;
                }
                None => {
                    tracing::warn!("Docker's event stream ended; following it again");
                    break;
                }
            }
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
        }
    }
}

fn die_events_since(since: i64) -> EventsOptions {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["die".to_string()]),
        ("label".to_string(), vec![MANAGED_FILTER.to_string()]),
    ]);
    EventsOptions { since: Some(since.to_string()), until: None, filters: Some(filters) }
}

/// Decides whether a container's death is a session failure: not if the runtime caused it, not if the container is
/// already gone (stopped) or running again (woken), which also covers events that arrive late.
async fn judge(docker: &Docker, tracker: &Tracker, owner: &Owner, event: &EventMessage) -> Option<(Uuid, ActualState)> {
    let actor = event.actor.as_ref()?;
    if !owner.owns(actor.attributes.as_ref()?) {
        return None;
    }
    let session_id: Uuid = actor.attributes.as_ref()?.get(LABEL_SESSION)?.parse().ok()?;
    if tracker.exit_expected(session_id) {
        return None;
    }
    let container = match docker.inspect_container(actor.id.as_deref()?, None).await {
        Ok(container) => container,
        Err(error) => {
            tracing::debug!(%session_id, %error, "a session container died and cannot be inspected; assuming it was removed");
            return None;
        }
    };
    let state = container.state?;
    if matches!(state.status, Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING)) {
        return None;
    }
    let reason = exit_reason(&state);
    tracing::warn!(%session_id, %reason, "a session died");
    tracker.record_failure(session_id, reason.clone());
    Some((session_id, ActualState::Failed { reason }))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_tells_requested_exits_from_failures() {
        let tracker = Tracker::default();
        let id = Uuid::new_v4();
        assert!(!tracker.exit_expected(id));
        tracker.record_failure(id, "exited with code 1".into());
        assert_eq!(tracker.failure(id).as_deref(), Some("exited with code 1"));
        tracker.expect_exit(id);
        assert!(tracker.exit_expected(id));
        assert_eq!(tracker.failure(id), None, "hibernating clears an old failure");
        tracker.forget(id);
        assert!(!tracker.exit_expected(id));
    }

    #[test]
    fn only_managed_container_deaths_are_followed() {
        let options = die_events_since(1234);
        assert_eq!(options.since.as_deref(), Some("1234"));
        let filters = options.filters.unwrap();
        assert_eq!(filters["event"], ["die"]);
        assert_eq!(filters["label"], ["streamspace.managed=true"]);
    }
}

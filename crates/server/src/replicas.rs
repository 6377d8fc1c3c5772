//! What this replica tells the other replicas on the same database, and what it does when told
//! (ADR 0030). A message only says "look now": what must survive is in the store, so a message
//! lost (a replica restarting, the notification connection dropping) delays, never loses.

use std::time::Duration;

use streamspace_store::Scope;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::hub::socket::RESEND_AFTER_SECS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The agent has new commands in the store: whoever holds its connection sends them.
    Commands(Uuid),
    /// The session changed: forget cached routes and access answers, tell watchers.
    Session(Uuid),
    /// The agent changed (connected, disconnected): tell watchers.
    Agent(Uuid),
    /// The agent was deleted or its token rotated: whoever holds its connection closes it.
    Kick(Uuid),
    /// The user was changed or deleted: forget who they were and what they could open.
    User(Uuid),
    /// The org's MFA requirement changed: forget who its members were.
    Org(Uuid),
}

impl Signal {
    fn encode(self) -> String {
        let (kind, id) = match self {
            Signal::Commands(id) => ("commands", id),
            Signal::Session(id) => ("session", id),
            Signal::Agent(id) => ("agent", id),
            Signal::Kick(id) => ("kick", id),
            Signal::User(id) => ("user", id),
            Signal::Org(id) => ("org", id),
        };
        format!("{kind} {id}")
    }

    fn decode(message: &str) -> Option<Signal> {
        let (kind, id) = message.split_once(' ')?;
        let id = id.parse().ok()?;
        match kind {
            "commands" => Some(Signal::Commands(id)),
            "session" => Some(Signal::Session(id)),
            "agent" => Some(Signal::Agent(id)),
            "kick" => Some(Signal::Kick(id)),
            "user" => Some(Signal::User(id)),
            "org" => Some(Signal::Org(id)),
            _ => None,
        }
    }
}

/// Work one replica at a time does, and how long its holder keeps it without renewing.
#[derive(Debug, Clone, Copy)]
pub enum Duty {
    /// The background round's once-only work, renewed every second: session timers (start
    /// timeout, idle, lifetime, hibernated expiry), home deletions and warm-pool refills.
    SessionTimers,
    /// Audit retention and report deliveries, renewed every minute.
    Compliance,
}

impl Duty {
    fn name(self) -> &'static str {
        match self {
            Duty::SessionTimers => "session-timers",
            Duty::Compliance => "compliance",
        }
    }

    /// A few of the holder's rounds: a holder that dies is replaced that much later.
    fn lease(self) -> Duration {
        match self {
            Duty::SessionTimers => Duration::from_secs(5),
            Duty::Compliance => Duration::from_secs(150),
        }
    }
}

impl App {
    /// Tells the other replicas; a failure is logged (the store still has the truth).
    pub async fn tell_replicas(&self, signal: Signal) {
        if let Err(err) = self.cluster.announce(&signal.encode()).await {
            tracing::warn!(?signal, error = %err, "cannot tell the other replicas");
        }
    }

    /// Whether this replica does `duty` now (taking it when free, keeping it while it renews).
    pub async fn holds(&self, duty: Duty) -> bool {
        match self.cluster.hold(duty.name(), duty.lease()).await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(duty = duty.name(), error = %err, "cannot renew a duty; leaving it to another replica");
                false
            }
        }
    }

    /// Closes the agent's connection wherever it is held, and records at once that nobody holds it:
    /// the agent shows offline from now on, not once the connection's task has noticed.
    pub async fn kick_agent(&self, agent_id: Uuid) {
        self.hub.kick(agent_id);
        self.tell_replicas(Signal::Kick(agent_id)).await;
        let holder = match self.store.get_agent(agent_id).await {
            Ok(agent) => agent.and_then(|agent| agent.connected_replica),
            Err(err) => {
                tracing::warn!(agent = %agent_id, error = %err, "cannot read who holds a kicked agent");
                None
            }
        };
        if let Some(holder) = holder
            && let Err(err) = self.store.release_agent_connection(agent_id, holder).await
        {
            tracing::warn!(agent = %agent_id, error = %err, "cannot record that a kicked agent is gone");
        }
    }

    async fn on_signal(&self, signal: Signal) {
        match signal {
            Signal::Commands(agent_id) if self.hub.is_connected(agent_id) => {
                let resend_after = chrono::Duration::seconds(RESEND_AFTER_SECS);
                if let Err(err) = self.flush_commands(agent_id, resend_after).await {
                    tracing::warn!(%agent_id, error = err.message, "cannot send another replica's commands");
                }
            }
            Signal::Commands(_) => {}
            Signal::Session(session_id) => match self.store.get_session(Scope::Platform, session_id).await {
                Ok(Some(session)) => self.publish_session_here(&session).await,
                Ok(None) => self.session_cache.invalidate(session_id),
                Err(err) => tracing::warn!(%session_id, error = %err, "cannot read a session another replica changed"),
            },
            Signal::Agent(agent_id) => self.publish_agent_here(agent_id).await,
            Signal::Kick(agent_id) => self.hub.kick(agent_id),
            Signal::User(user_id) => {
                self.callers.forget(&user_id);
                self.session_access.forget_user(user_id);
            }
            Signal::Org(org_id) => self.forget_org_callers_here(org_id),
        }
    }
}

/// Acts on what the other replicas say until the task is aborted.
pub async fn follow(app: AppState) {
    let mut messages = app.cluster.messages();
    loop {
        match messages.recv().await {
            Ok(message) => match Signal::decode(&message) {
                Some(signal) => app.on_signal(signal).await,
                None => tracing::debug!(%message, "ignored an unknown message from another replica"),
            },
            // Changes were missed: the periodic rounds (heartbeats, the access sweep) catch up.
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "fell behind the other replicas' messages"),
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_back_as_sent() {
        let id = Uuid::now_v7();
        let all = [
            Signal::Commands(id),
            Signal::Session(id),
            Signal::Agent(id),
            Signal::Kick(id),
            Signal::User(id),
            Signal::Org(id),
        ];
        for signal in all {
            assert_eq!(Signal::decode(&signal.encode()), Some(signal));
        }
        assert_eq!(Signal::decode("session not-a-uuid"), None);
        assert_eq!(Signal::decode(&format!("reboot {id}")), None);
    }
}

//! The change bus: changes to sessions and agents, published for the live-update stream (which
//! shows each to whoever may see it) and for the connections that end with a session.

use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::replicas::Signal;
use crate::views::{AgentView, SessionView};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Change {
    Session(SessionView),
    Agent(AgentView),
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Session(_) => "session",
            Change::Agent(_) => "agent",
        }
    }

    /// Whether `principal` may see this change: the same rules as the GET routes.
    pub fn visible_to(&self, principal: &Principal) -> bool {
        match self {
            Change::Session(session) => principal.may_see_session(session.org_id, session.owner_id),
            Change::Agent(_) => principal.may_see_agents(),
        }
    }
}

/// A broadcast bus. Slow subscribers lose old changes (they are told, and reload).
#[derive(Clone)]
pub struct Bus(broadcast::Sender<Change>);

impl Default for Bus {
    fn default() -> Self {
        Bus(broadcast::channel(1024).0)
    }
}

impl Bus {
    pub fn publish(&self, change: Change) {
        // No subscribers is fine: nobody is watching.
        let _ = self.0.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }
}

impl App {
    /// Tells watchers, on every replica, how an agent stands now.
    pub async fn publish_agent(&self, agent_id: Uuid) {
        self.publish_agent_here(agent_id).await;
        self.tell_replicas(Signal::Agent(agent_id)).await;
    }

    /// Tells this replica's watchers how an agent stands now.
    pub async fn publish_agent_here(&self, agent_id: Uuid) {
        let view = match self.store.get_agent(agent_id).await {
            Ok(Some(agent)) => AgentView::load(self, agent).await,
            _ => return,
        };
        match view {
            Ok(view) => self.bus.publish(Change::Agent(view)),
            Err(err) => tracing::warn!(%agent_id, error = err.message, "cannot publish an agent change"),
        }
    }
}

//! Live updates: changes to sessions and agents, published to whoever may see them.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::api::agents::AgentView;
use crate::api::sessions::SessionView;
use crate::auth::Principal;

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
            Change::Session(session) => {
                principal.scope().allows(session.org_id)
                    && (principal.is_admin() || session.owner_id == principal.user_id)
            }
            Change::Agent(_) => principal.role == streamspace_store::Role::PlatformAdmin,
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

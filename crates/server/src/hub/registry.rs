//! The agents connected to this control plane, and the way to reach each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use streamspace_proto::hub::ServerMessage;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Messages for one connection; dropping the sender closes the socket.
pub type Outbox = mpsc::UnboundedSender<ServerMessage>;

struct Connection {
    serial: u64,
    outbox: Outbox,
}

#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<Uuid, Connection>>,
    next_serial: AtomicU64,
}

impl Registry {
    /// Registers a new connection of `agent_id`, replacing (and so closing) an older one.
    /// Returns the connection's serial, needed to unregister exactly this connection.
    pub fn connect(&self, agent_id: Uuid, outbox: Outbox) -> u64 {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(agent_id, Connection { serial, outbox });
        serial
    }

    /// Forgets the connection if it is still the current one for the agent.
    pub fn disconnect(&self, agent_id: Uuid, serial: u64) {
        let mut connections = self.lock();
        if connections.get(&agent_id).is_some_and(|c| c.serial == serial) {
            connections.remove(&agent_id);
        }
    }

    /// Closes the agent's connection at once (the agent was deleted or its token rotated).
    pub fn kick(&self, agent_id: Uuid) {
        self.lock().remove(&agent_id);
    }

    pub fn is_connected(&self, agent_id: Uuid) -> bool {
        self.lock().contains_key(&agent_id)
    }

    pub fn connected_count(&self) -> usize {
        self.lock().len()
    }

    /// Queues a message for the agent; `false` when it is not connected here.
    pub fn send(&self, agent_id: Uuid, message: ServerMessage) -> bool {
        self.lock().get(&agent_id).is_some_and(|c| c.outbox.send(message).is_ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Connection>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome() -> ServerMessage {
        ServerMessage::Welcome { agent_id: Uuid::nil(), heartbeat_interval_secs: 10 }
    }

    #[test]
    fn a_new_connection_replaces_the_old_and_the_old_cannot_unregister_it() {
        let registry = Registry::default();
        let agent = Uuid::now_v7();
        let (old_tx, mut old_rx) = mpsc::unbounded_channel();
        let (new_tx, mut new_rx) = mpsc::unbounded_channel();
        let old = registry.connect(agent, old_tx);
        let _new = registry.connect(agent, new_tx);
        assert!(old_rx.try_recv().is_err());
        assert!(registry.send(agent, welcome()));
        assert!(new_rx.try_recv().is_ok());
        registry.disconnect(agent, old);
        assert!(registry.is_connected(agent));
        registry.kick(agent);
        assert!(!registry.send(agent, welcome()));
    }
}

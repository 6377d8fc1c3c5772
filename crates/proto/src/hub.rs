//! The agent protocol: JSON messages over one WebSocket at `/api/v1/agents/connect`.
//!
//! Every message carries the protocol version `v`. Agents dial out (they work behind NAT) and
//! authenticate with `Authorization: Bearer <agent token>`; the control plane answers with
//! [`ServerMessage::Welcome`] naming the agent, so a runtime shared by several agents can tell its
//! own sessions apart; the agent then sends [`AgentMessage::Hello`] with its full inventory, then
//! heartbeats and status changes. The control plane sends
//! [`ServerMessage::Command`]s, which are stored before they are sent and re-sent until the
//! agent answers with a [`AgentMessage::CommandResult`]; agents apply them idempotently.

use std::collections::BTreeMap;

use crate::SessionPhase;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u32,
    #[serde(flatten)]
    pub message: T,
}

impl<T> Envelope<T> {
    pub fn new(message: T) -> Envelope<T> {
        Envelope { v: PROTOCOL_VERSION, message }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Docker,
    Kubernetes,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Docker => "docker",
            Platform::Kubernetes => "kubernetes",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        [Platform::Docker, Platform::Kubernetes].into_iter().find(|p| p.as_str() == s)
    }
}

/// What an agent can hold at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Capacity {
    pub max_sessions: i64,
    pub cpu_millis: i64,
    pub memory_mb: i64,
}

/// What a session is actually doing on an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActualState {
    /// Being prepared: `progress` is a percentage within the phase, where known.
    Starting { phase: SessionPhase, progress: Option<i32> },
    /// The streamer answers its health check at `endpoint`.
    Running { endpoint: String },
    /// The container exists but is stopped, ready to wake.
    Hibernated,
    /// Nothing of the session is left on the agent.
    Stopped,
    /// It ended without being asked to (crash, failed pull, failed health check).
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryItem {
    pub session_id: Uuid,
    #[serde(flatten)]
    pub state: ActualState,
}

/// Everything an agent needs to run a session: the resolved template and the session's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub session_id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub shm_mb: i64,
    /// The streamer's port inside the container.
    pub port: i32,
    /// Networks the session may reach although [`crate::security::EGRESS_DENY`] covers them: the template's and
    /// the org policy's allow-lists, merged by the control plane.
    #[serde(default)]
    pub egress_allow: Vec<IpNet>,
    /// The owner's persistent home, mounted at the image's home directory; `None`: the session's home lives and
    /// dies with the session.
    #[serde(default)]
    pub home: Option<HomeVolume>,
}

/// A persistent home: a volume that outlives the sessions mounting it, created empty by the runtime the first time
/// a session needs it and removed only by [`CommandKind::RemoveHome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeVolume {
    pub id: Uuid,
    /// The most the home may hold, where the runtime's storage can enforce it.
    pub size_mb: Option<i64>,
}

impl HomeVolume {
    /// The runtime object (volume, claim) that holds home `id`.
    pub fn volume_name(id: Uuid) -> String {
        format!("ss-home-{id}")
    }
}

/// One persistent home's used space, as the runtime's storage accounts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeUsage {
    pub home_id: Uuid,
    pub used_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Create and start the session (nothing to do if it already runs).
    Start,
    /// Stop the container and keep it, for a later wake.
    Hibernate,
    /// Start a hibernated container again.
    Wake,
    /// Stop and remove everything of the session.
    Stop,
    /// Remove whatever is left of an ended session.
    Remove,
    /// Delete a persistent home and everything in it; the command's `session_id` is the home's id.
    RemoveHome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: Uuid,
    pub kind: CommandKind,
    pub session_id: Uuid,
    /// Present for `start` and `wake`.
    pub spec: Option<SessionSpec>,
    /// W3C trace context of the request that caused the command.
    pub traceparent: Option<String>,
}

/// Agent -> control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello {
        agent_version: String,
        platform: Platform,
        capacity: Capacity,
        labels: BTreeMap<String, String>,
        inventory: Vec<InventoryItem>,
        /// The fencing epoch of the agent's term as leader of its HA group (it grows with every new leader);
        /// the control plane refuses an epoch older than one it has seen, and drops a connection whose epoch
        /// was overtaken. Absent from an agent that runs alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
    },
    Heartbeat {
        inventory: Vec<InventoryItem>,
        /// The used space of the persistent homes the runtime holds, when it measured them since the last
        /// heartbeat; absent from agents that do not measure (and ignored by control planes that do not store it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        homes: Vec<HomeUsage>,
    },
    SessionStatus {
        session_id: Uuid,
        #[serde(flatten)]
        state: ActualState,
        /// W3C trace context of the agent's work on a command that led to this status, if any; absent from
        /// agents that do not trace (and ignored by control planes that do not).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    CommandResult {
        command_id: Uuid,
        ok: bool,
        error: Option<String>,
        /// W3C trace context of the agent's work on the command, as for `SessionStatus`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
}

/// Control plane -> agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome { agent_id: Uuid, heartbeat_interval_secs: u64 },
    Command(Command),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_flat_versioned_json_shape() {
        let status = Envelope::new(AgentMessage::SessionStatus {
            session_id: Uuid::nil(),
            state: ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(40) },
            traceparent: None,
        });
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "type": "session_status", "session_id": Uuid::nil(), "state": "starting", "phase": "pulling", "progress": 40})
        );
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(json).unwrap(), status);
    }

    #[test]
    fn reports_carry_trace_context_only_when_there_is_one() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let result = |traceparent: Option<&str>| {
            Envelope::new(AgentMessage::CommandResult {
                command_id: Uuid::nil(),
                ok: true,
                error: None,
                traceparent: traceparent.map(str::to_owned),
            })
        };
        let traced = serde_json::to_value(result(Some(traceparent))).unwrap();
        assert_eq!(traced["traceparent"], traceparent);
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(traced).unwrap(), result(Some(traceparent)));
        // An agent built before trace context: the same message without the field.
        let untraced =
            serde_json::json!({"v": 1, "type": "command_result", "command_id": Uuid::nil(), "ok": true, "error": null});
        assert_eq!(serde_json::to_value(result(None)).unwrap(), untraced);
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(untraced).unwrap(), result(None));
    }

    #[test]
    fn heartbeats_carry_home_usage_only_when_measured() {
        let heartbeat = |homes: Vec<HomeUsage>| Envelope::new(AgentMessage::Heartbeat { inventory: Vec::new(), homes });
        let measured = heartbeat(vec![HomeUsage { home_id: Uuid::nil(), used_bytes: 4096 }]);
        let json = serde_json::to_value(&measured).unwrap();
        assert_eq!(json["homes"], serde_json::json!([{"home_id": Uuid::nil(), "used_bytes": 4096}]));
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(json).unwrap(), measured);
        // An agent built before home usage: the same message without the field.
        let unmeasured = serde_json::json!({"v": 1, "type": "heartbeat", "inventory": []});
        assert_eq!(serde_json::to_value(heartbeat(Vec::new())).unwrap(), unmeasured);
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(unmeasured).unwrap(), heartbeat(Vec::new()));
    }

    #[test]
    fn hello_carries_an_epoch_only_from_an_agent_in_an_ha_group() {
        let hello = |epoch| {
            Envelope::new(AgentMessage::Hello {
                agent_version: "1".into(),
                platform: Platform::Docker,
                capacity: Capacity::default(),
                labels: BTreeMap::new(),
                inventory: Vec::new(),
                epoch,
            })
        };
        let fenced = serde_json::to_value(hello(Some(7))).unwrap();
        assert_eq!(fenced["epoch"], 7);
        let alone = serde_json::to_value(hello(None)).unwrap();
        assert!(alone.get("epoch").is_none(), "{alone}");
        assert_eq!(serde_json::from_value::<Envelope<AgentMessage>>(alone).unwrap(), hello(None));
    }

    #[test]
    fn commands_round_trip() {
        let command = Envelope::new(ServerMessage::Command(Command {
            id: Uuid::nil(),
            kind: CommandKind::Stop,
            session_id: Uuid::nil(),
            spec: None,
            traceparent: None,
        }));
        let text = serde_json::to_string(&command).unwrap();
        assert!(text.contains(r#""type":"command""#) && text.contains(r#""kind":"stop""#), "{text}");
        assert_eq!(serde_json::from_str::<Envelope<ServerMessage>>(&text).unwrap(), command);
    }
}

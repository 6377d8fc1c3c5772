//! Wire types shared by the control plane and its agents.

pub mod hub;
pub mod security;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a session is in its life. The transitions between these states live in one place:
/// the control plane's lifecycle module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Pending,
    Scheduled,
    Starting,
    Running,
    Hibernating,
    Hibernated,
    Stopping,
    Stopped,
    Failed,
}

impl SessionState {
    pub const ALL: [SessionState; 9] = [
        SessionState::Pending,
        SessionState::Scheduled,
        SessionState::Starting,
        SessionState::Running,
        SessionState::Hibernating,
        SessionState::Hibernated,
        SessionState::Stopping,
        SessionState::Stopped,
        SessionState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Scheduled => "scheduled",
            SessionState::Starting => "starting",
            SessionState::Running => "running",
            SessionState::Hibernating => "hibernating",
            SessionState::Hibernated => "hibernated",
            SessionState::Stopping => "stopping",
            SessionState::Stopped => "stopped",
            SessionState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<SessionState> {
        SessionState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Terminal states hold no resources on any agent.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Stopped | SessionState::Failed)
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far the start of a session has come, while it is `scheduled` or `starting`: the control plane
/// says `scheduling` until the agent reports the phase it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    Scheduling,
    Pulling,
    Creating,
    Starting,
}

impl SessionPhase {
    pub const ALL: [SessionPhase; 4] =
        [SessionPhase::Scheduling, SessionPhase::Pulling, SessionPhase::Creating, SessionPhase::Starting];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionPhase::Scheduling => "scheduling",
            SessionPhase::Pulling => "pulling",
            SessionPhase::Creating => "creating",
            SessionPhase::Starting => "starting",
        }
    }

    pub fn parse(s: &str) -> Option<SessionPhase> {
        SessionPhase::ALL.into_iter().find(|phase| phase.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_round_trip_through_parse_and_serde() {
        for phase in SessionPhase::ALL {
            assert_eq!(SessionPhase::parse(phase.as_str()), Some(phase));
            assert_eq!(serde_json::to_value(phase).unwrap(), serde_json::json!(phase.as_str()));
        }
        assert_eq!(SessionPhase::parse("pull"), None);
    }

    #[test]
    fn state_names_round_trip_through_parse_and_serde() {
        for state in SessionState::ALL {
            assert_eq!(SessionState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(serde_json::from_str::<SessionState>(&json).unwrap(), state);
        }
        assert_eq!(SessionState::parse("bogus"), None);
    }
}

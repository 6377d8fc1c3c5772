//! The agent hub: agents dial in over a WebSocket and speak `streamspace_proto::hub`.

pub mod registry;
pub mod socket;
pub mod trust;

/// Agent tokens carry this prefix.
pub const AGENT_TOKEN_PREFIX: &str = "ssa_";
/// The label that marks the agent inside `streamspace up`, whose token lives in the data directory.
pub const BUILTIN_LABEL: &str = "streamspace.builtin";

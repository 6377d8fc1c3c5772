//! The agent hub: agents dial in over a WebSocket and speak `streamspace_proto::hub`.

pub mod registry;
pub mod socket;
pub mod trust;

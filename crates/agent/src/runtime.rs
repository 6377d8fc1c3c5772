//! The narrow interface between the agent's protocol loop and whatever actually runs sessions.

use async_trait::async_trait;
use futures::stream::BoxStream;
use streamspace_proto::hub::{ActualState, Capacity, HomeUsage, InventoryItem, Platform, SessionSpec};
use uuid::Uuid;

/// Receives the states a session passes through while a runtime brings it up
/// (`Starting` with phases `pulling`, `creating`, `starting`).
pub type Progress<'a> = dyn Fn(ActualState) + Send + Sync + 'a;

/// Runs sessions on one platform (Docker host, Kubernetes cluster, or a fake in tests).
///
/// Every operation must be idempotent: the control plane re-sends a command until it is acknowledged, and the
/// agent keeps no durable record of what it already did.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The platform this runtime runs sessions on, announced in `hello`.
    fn platform(&self) -> Platform;

    /// What this runtime can hold, announced in `hello`.
    async fn capacity(&self) -> anyhow::Result<Capacity>;

    /// The actual state of every session this runtime manages.
    async fn inventory(&self) -> anyhow::Result<Vec<InventoryItem>>;

    /// Creates and starts a session and waits until its streamer answers; returns the endpoint the control plane
    /// dials. A session that already runs is not touched: its endpoint is returned.
    async fn start(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String>;

    /// Stops a session but keeps it (filesystem, network) for a later [`Runtime::wake`].
    async fn hibernate(&self, session_id: Uuid) -> anyhow::Result<()>;

    /// Starts a hibernated session again and waits until its streamer answers; returns its endpoint.
    async fn wake(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String>;

    /// Stops a session and removes everything of it. A session that does not exist is already stopped.
    async fn stop(&self, session_id: Uuid) -> anyhow::Result<()>;

    /// Removes whatever is left of an ended session. Most runtimes have nothing to do beyond [`Runtime::stop`].
    async fn remove(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.stop(session_id).await
    }

    /// Deletes persistent home `home_id` ([`streamspace_proto::hub::HomeVolume`]) and everything in it; one that
    /// does not exist is already deleted. Refused while a session still mounts it.
    async fn remove_home(&self, home_id: Uuid) -> anyhow::Result<()>;

    /// The used space of every persistent home this runtime holds, as its storage accounts it. A runtime whose
    /// storage cannot tell (a Kubernetes claim) reports nothing, and the control plane shows the home unmeasured.
    async fn home_usage(&self) -> anyhow::Result<Vec<HomeUsage>> {
        Ok(Vec::new())
    }

    /// State changes the runtime notices by itself, chiefly sessions that die without being asked to
    /// (`Failed { reason }`). The agent subscribes once and subscribes again if the stream ends.
    fn events(&self) -> BoxStream<'static, (Uuid, ActualState)>;

    /// Called with the agent's id from the control plane's welcome, before the inventory is read: a
    /// runtime shared with other agents uses it to list, report and touch only its own sessions.
    fn bind(&self, _agent_id: Uuid) {}
}

//! A runtime that acts only while its leader term stands.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use streamspace_proto::hub::{ActualState, Capacity, HomeUsage, InventoryItem, Platform, SessionSpec};
use uuid::Uuid;

use super::Term;
use crate::runtime::{Progress, Runtime};

/// Checks the term before every change to sessions (start, wake, hibernate, stop, remove) and homes (deletion),
/// so a former leader that still has commands queued, or wakes up from a pause, changes nothing. Reading
/// (inventory, capacity, home usage, events) is left alone: it changes nothing, and the control plane drops a former leader's reports anyway.
pub struct FencedRuntime {
    inner: Arc<dyn Runtime>,
    term: Arc<Term>,
}

impl FencedRuntime {
    pub fn new(inner: Arc<dyn Runtime>, term: Arc<Term>) -> FencedRuntime {
        FencedRuntime { inner, term }
    }
}

#[async_trait]
impl Runtime for FencedRuntime {
    fn platform(&self) -> Platform {
        self.inner.platform()
    }

    async fn capacity(&self) -> anyhow::Result<Capacity> {
        self.inner.capacity().await
    }

    async fn inventory(&self) -> anyhow::Result<Vec<InventoryItem>> {
        self.inner.inventory().await
    }

    async fn start(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.term.check().await?;
        self.inner.start(spec, progress).await
    }

    async fn hibernate(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.term.check().await?;
        self.inner.hibernate(session_id).await
    }

    async fn wake(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.term.check().await?;
        self.inner.wake(spec, progress).await
    }

    async fn stop(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.term.check().await?;
        self.inner.stop(session_id).await
    }

    async fn remove(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.term.check().await?;
        self.inner.remove(session_id).await
    }

    async fn remove_home(&self, home_id: Uuid) -> anyhow::Result<()> {
        self.term.check().await?;
        self.inner.remove_home(home_id).await
    }

    async fn home_usage(&self) -> anyhow::Result<Vec<HomeUsage>> {
        self.inner.home_usage().await
    }

    fn events(&self) -> BoxStream<'static, (Uuid, ActualState)> {
        self.inner.events()
    }

    fn bind(&self, agent_id: Uuid) {
        self.inner.bind(agent_id)
    }
}

//! The `swarm` lease: kept in the Swarm managers' replicated store as the labels of a Swarm config named after
//! the HA group. A config's labels are the one part of it that can be updated, and every update names the
//! version it read, so of two agents writing at once the second is refused (`update out of sequence`): the
//! Raft log decides races. The agents reach a manager's Docker API (the local engine on a manager node).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{Config, ConfigSpec};
use bollard::query_parameters::UpdateConfigOptions;
use streamspace_agent::ha::{Holding, Lease, unix_millis};

const LABEL_EPOCH: &str = "streamspace.lease.epoch";
const LABEL_HOLDER: &str = "streamspace.lease.holder";
const LABEL_EXPIRES_MS: &str = "streamspace.lease.expires-ms";
/// A config must hold some data; this names what the object is to whoever lists configs (base64 of
/// "streamspace agent lease").
const DATA: &str = "c3RyZWFtc3BhY2UgYWdlbnQgbGVhc2U=";

/// A lease in a Swarm config.
pub struct SwarmLease {
    docker: Docker,
    name: String,
}

/// The holding the config's labels state; missing or unreadable labels are a lease never taken.
fn holding_from(labels: &HashMap<String, String>) -> Holding {
    let number = |key: &str| labels.get(key).and_then(|value| value.parse().ok()).unwrap_or(0);
    Holding {
        epoch: number(LABEL_EPOCH),
        holder: labels.get(LABEL_HOLDER).cloned().unwrap_or_default(),
        expires_ms: number(LABEL_EXPIRES_MS),
    }
}

fn labels_of(holding: &Holding) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_EPOCH.to_owned(), holding.epoch.to_string()),
        (LABEL_HOLDER.to_owned(), holding.holder.clone()),
        (LABEL_EXPIRES_MS.to_owned(), holding.expires_ms.to_string()),
    ])
}

impl SwarmLease {
    /// The lease of `group` on the Swarm whose manager's Docker API `host` names (`unix:///...`,
    /// `tcp://...`), or the local engine's (`DOCKER_HOST`, else the default socket).
    pub fn connect(host: Option<&str>, group: &str) -> anyhow::Result<SwarmLease> {
        let docker = match host {
            Some(host) => Docker::connect_with_host(host),
            None => Docker::connect_with_local_defaults(),
        };
        let docker = docker.context("cannot set up a Docker client for the Swarm lease")?;
        Ok(SwarmLease { docker, name: format!("streamspace-agent-lease-{group}") })
    }

    /// Writes what `change` makes of the current holding, if anything, as one compare-and-swap; the holding
    /// written, or `None` (nothing to write, or another agent wrote first).
    async fn update(&self, change: impl FnOnce(&Holding, u64) -> Option<Holding>) -> anyhow::Result<Option<Holding>> {
        let (current, version) = match self.read().await? {
            Some((current, version)) => (current, Some(version)),
            None => (Holding::default(), None),
        };
        let Some(next) = change(&current, unix_millis()) else { return Ok(None) };
        Ok(self.write(&next, version).await?.then_some(next))
    }

    /// The config and its version; `None` before the group's first term.
    async fn read(&self) -> anyhow::Result<Option<(Holding, i64)>> {
        match self.docker.inspect_config(&self.name).await {
            Ok(config) => Ok(Some(holding_of(&config)?)),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading the Swarm config {}", self.name)),
        }
    }

    /// Writes `holding` if the config is still at `version`; `false` when another agent wrote first.
    async fn write(&self, holding: &Holding, version: Option<i64>) -> anyhow::Result<bool> {
        let spec = ConfigSpec {
            name: Some(self.name.clone()),
            labels: Some(labels_of(holding)),
            data: Some(DATA.to_owned()),
            templating: None,
        };
        let written = match version {
            None => self.docker.create_config(spec).await.map(drop),
            Some(version) => self.docker.update_config(&self.name, spec, UpdateConfigOptions { version }).await,
        };
        match written {
            Ok(()) => Ok(true),
            Err(error) if lost_race(&error) => Ok(false),
            Err(error) => Err(error).with_context(|| format!("writing the Swarm config {}", self.name)),
        }
    }
}

fn holding_of(config: &Config) -> anyhow::Result<(Holding, i64)> {
    let version = config.version.as_ref().and_then(|version| version.index).context("a config without a version")?;
    let labels = config.spec.as_ref().and_then(|spec| spec.labels.clone()).unwrap_or_default();
    Ok((holding_from(&labels), i64::try_from(version).context("a config version out of range")?))
}

/// Another agent created the config first (409) or updated it since it was read (out of sequence).
fn lost_race(error: &DockerError) -> bool {
    match error {
        DockerError::DockerResponseServerError { status_code: 409, .. } => true,
        DockerError::DockerResponseServerError { message, .. } => message.contains("out of sequence"),
        _ => false,
    }
}

#[async_trait]
impl Lease for SwarmLease {
    async fn acquire(&self, holder: &str, ttl: Duration) -> anyhow::Result<Option<u64>> {
        let taken = self.update(|current, now| current.acquired(holder, ttl, now)).await?;
        Ok(taken.map(|taken| taken.epoch))
    }

    async fn renew(&self, holder: &str, epoch: u64, ttl: Duration) -> anyhow::Result<bool> {
        Ok(self.update(|current, now| current.renewed(holder, epoch, ttl, now)).await?.is_some())
    }

    async fn release(&self, holder: &str, epoch: u64) -> anyhow::Result<()> {
        self.update(|current, _| current.released(holder, epoch)).await?;
        Ok(())
    }

    async fn latest_epoch(&self) -> anyhow::Result<u64> {
        Ok(self.read().await?.map_or(0, |(holding, _)| holding.epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_back_and_missing_ones_mean_a_lease_never_taken() {
        let holding = Holding { epoch: 4, holder: "node-1-77".into(), expires_ms: 1_800_000_000_000 };
        assert_eq!(holding_from(&labels_of(&holding)), holding);
        assert_eq!(holding_from(&HashMap::new()), Holding::default());
    }
}

//! The Docker agent's HA settings (ADR 0031): which lease store a group of agents shares, and how long a term
//! lasts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use streamspace_agent::ha::file::FileLease;
use streamspace_agent::ha::redis::RedisLease;
use streamspace_agent::ha::{Elector, Lease, LeaseTimings, default_identity};
use streamspace_docker::SwarmLease;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HaBackend {
    /// A lease file on storage every agent of the group reaches (two agents on one host, or a shared mount).
    File,
    /// A lease in Redis.
    Redis,
    /// A lease in the Docker Swarm the engine manages (the agents run on manager nodes, e.g. as a service).
    Swarm,
}

#[derive(Debug, Args)]
pub struct HaArgs {
    /// Run as one agent of an HA group that shares this agent's token: the one holding the lease works, the
    /// others wait and take over within about 1.3 lease terms of its death. Unset: run alone.
    #[arg(long, env = "STREAMSPACE_HA", value_enum)]
    pub ha: Option<HaBackend>,
    /// The lease file (`--ha file`).
    #[arg(long, env = "STREAMSPACE_HA_LEASE_FILE", required_if_eq("ha", "file"))]
    pub ha_lease_file: Option<PathBuf>,
    /// Redis's URL (`--ha redis`): `redis://[:password@]host:6379/0`, `rediss://...` or `unix:///path`.
    #[arg(long, env = "STREAMSPACE_HA_REDIS_URL", required_if_eq("ha", "redis"), hide_env_values = true)]
    pub ha_redis_url: Option<String>,
    /// A Swarm manager's Docker API for the lease (`--ha swarm`), such as `unix:///var/run/docker.sock`;
    /// default: the engine the agent runs sessions on.
    #[arg(long, env = "STREAMSPACE_HA_SWARM_HOST")]
    pub ha_swarm_host: Option<String>,
    /// The group's name in Redis or the Swarm (groups may share one).
    #[arg(long, env = "STREAMSPACE_HA_GROUP", default_value = "streamspace-agent")]
    pub ha_group: String,
    /// This agent's name in the group; default: the host name and process id.
    #[arg(long, env = "STREAMSPACE_HA_IDENTITY")]
    pub ha_identity: Option<String>,
    /// Seconds a term lasts after the leader's last renewal; the leader renews at 30 % and stops acting at
    /// 70 % of it without a renewal.
    #[arg(long, env = "STREAMSPACE_HA_LEASE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub ha_lease_secs: u64,
}

impl HaArgs {
    /// The elector for the configured group, or `None` for an agent that runs alone.
    pub fn elector(&self) -> anyhow::Result<Option<Elector>> {
        let Some(backend) = self.ha else { return Ok(None) };
        let lease: Arc<dyn Lease> = match backend {
            HaBackend::File => {
                Arc::new(FileLease::new(self.ha_lease_file.clone().context("--ha-lease-file is unset")?))
            }
            HaBackend::Redis => {
                let url = self.ha_redis_url.as_deref().context("--ha-redis-url is unset")?;
                Arc::new(RedisLease::new(url, &self.ha_group)?)
            }
            HaBackend::Swarm => Arc::new(SwarmLease::connect(self.ha_swarm_host.as_deref(), &self.ha_group)?),
        };
        let identity = self.ha_identity.clone().unwrap_or_else(default_identity);
        let timings = LeaseTimings::for_ttl(Duration::from_secs(self.ha_lease_secs));
        Ok(Some(Elector::new(lease, identity, timings)))
    }
}

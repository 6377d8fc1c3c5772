//! The Docker runtime for the StreamSpace agent: one container and one bridge network per session on the local
//! Docker engine, driven through bollard.
//!
//! - Containers are named `ss-<session id>` and labelled `streamspace.session`, `streamspace.org`,
//!   `streamspace.owner`, `streamspace.port` and `streamspace.managed=true`; each sits alone on its network
//!   `ss-net-<session id>`, so sessions cannot reach each other. Docker never restarts them itself.
//! - The endpoint reported for a session is `http://<container IP on its network>:<port>` (the control plane runs
//!   on the same host), or with [`DockerOptions::publish_host`] the address of an ephemeral host port.
//! - Containers run hardened as [`streamspace_proto::security`] prescribes: no capabilities, `no-new-privileges`,
//!   a pids limit, the image's numeric non-root user (images that would run as root are refused), a read-only root
//!   filesystem with a tmpfs `/tmp`, rotated logs and Docker's default seccomp profile.
//! - Each session network's bridge is `ss-<tag>` (the end of the session id), and its egress rules (iptables
//!   chains of its own, see `firewall`) are installed before the container starts and removed with the session;
//!   without them a session does not start.
//! - A network and its rules that stay without their container (an agent stopped, or a start failed, between the
//!   two) are removed by the agent that made it, [`DockerOptions::orphan_network_grace`] after it first saw so.
//! - A session is `Running` once its streamer answers `GET /api/health` with 200.
//! - Containers that die without being stopped by the runtime are reported `Failed` with the exit code or OOM.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use streamspace_agent::AgentConfig;
//! use streamspace_docker::{DockerOptions, DockerRuntime};
//!
//! let runtime = DockerRuntime::connect_local(DockerOptions::default()).await?;
//! let config = AgentConfig::new("http://localhost:8000", "agent-token");
//! streamspace_agent::run(config, Arc::new(runtime), std::future::pending()).await
//! # }
//! ```

mod container;
mod events;
mod firewall;
mod home;
mod orphans;
mod pull;
mod swarm_lease;
mod usage;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, ImageInspect,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use ipnet::IpNet;
use streamspace_agent::{Progress, Runtime};
use streamspace_proto::hub::{ActualState, Capacity, HomeUsage, InventoryItem, Platform, SessionSpec};
use streamspace_proto::{SessionPhase, security};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use uuid::Uuid;

use crate::container::{
    BRIDGE_NAME_OPTION, LABEL_EGRESS_ALLOW, LABEL_PORT, MANAGED_FILTER, MIB, Owner, bridge_name, container_body,
    container_name, endpoint, exit_reason, image_reference, network_body, network_name, network_tag, parse_allow_label,
    port_key, session_label, streamer_port,
};
use crate::events::Tracker;
use crate::firewall::{Firewall, Iptables, SessionRules, nameservers};
use crate::orphans::Orphans;
use crate::pull::PullProgress;
pub use crate::swarm_lease::SwarmLease;

/// The streamer's readiness route (Selkies and the test fixture both serve it).
const HEALTH_PATH: &str = "/api/health";
/// One health check may take this long; a streamer slower than that is not ready.
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a starting session's health is checked.
const HEALTH_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How the Docker runtime runs sessions.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Publish each session's streamer port on this host address (an ephemeral port) and report that as the
    /// endpoint, for a Docker host whose container IPs the control plane cannot route to. `None`: report the
    /// container's IP on its session network.
    pub publish_host: Option<IpAddr>,
    /// How long a started session's streamer has to pass its health check (image pull time not included).
    pub start_timeout: Duration,
    /// How long hibernating gives a session to exit cleanly before Docker kills it.
    pub stop_grace: Duration,
    /// How many sessions this host announces it can hold; CPU and memory capacity are read from the engine. The
    /// default is high enough that CPU and memory, not this count, limit a typical host.
    pub max_sessions: i64,
    /// Templates state CPU limits, and desktop sessions idle most of the time, so the CPU this host
    /// announces is its cores times this factor. Memory is announced as it is.
    pub cpu_overcommit: i64,
    /// Install egress rules for every session (needs root or `CAP_NET_ADMIN`); a session whose rules cannot be
    /// installed does not start. `false` runs sessions with no egress rules at all, for hosts where another
    /// firewall does the job: the agent warns about it at start.
    pub egress_rules: bool,
    /// Networks sessions must not reach beyond [`security::EGRESS_DENY`], such as the control plane's public
    /// address.
    pub egress_deny: Vec<IpNet>,
    /// How long one of this agent's session networks may stay without its container (a start in progress
    /// makes the network first) before the agent removes it, with its egress rules.
    pub orphan_network_grace: Duration,
}

impl Default for DockerOptions {
    fn default() -> DockerOptions {
        DockerOptions {
            publish_host: None,
            start_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
            max_sessions: 50,
            cpu_overcommit: 8,
            egress_rules: true,
            egress_deny: Vec::new(),
            orphan_network_grace: Duration::from_secs(60),
        }
    }
}

/// Runs sessions as containers on one Docker engine. Implements [`Runtime`].
pub struct DockerRuntime {
    docker: Docker,
    options: DockerOptions,
    http: reqwest::Client,
    tracker: Arc<Tracker>,
    owner: Owner,
    /// `None` when [`DockerOptions::egress_rules`] is off.
    firewall: Option<Arc<dyn Firewall>>,
    /// The resolvers sessions may send DNS queries to (the host's, which Docker's embedded DNS forwards to).
    dns: Vec<IpAddr>,
    /// Docker's accounting of volume sizes, for the homes' usage.
    volume_sizes: Arc<dyn usage::VolumeSizes>,
    orphans: Orphans,
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST`, else the default socket) and checks that it answers.
    pub async fn connect_local(options: DockerOptions) -> anyhow::Result<DockerRuntime> {
        let docker = Docker::connect_with_local_defaults().context("cannot set up a Docker client")?;
        DockerRuntime::new(docker, options).await
    }

    /// Uses an already configured client (for example one for a remote engine), agreeing on an API version the
    /// engine speaks. The homes' usage is read from the engine `DOCKER_HOST` names (`unix://` or `tcp://`), the
    /// local socket by default.
    pub async fn new(docker: Docker, options: DockerOptions) -> anyhow::Result<DockerRuntime> {
        let docker = docker
            .negotiate_version()
            .await
            .context("the Docker engine does not answer (is dockerd running and its socket readable?)")?;
        // Health checks go straight to containers: an HTTP(S)_PROXY from the environment must not apply.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(HEALTH_REQUEST_TIMEOUT)
            .build()
            .context("cannot build the health-check HTTP client")?;
        let firewall: Option<Arc<dyn Firewall>> = options.egress_rules.then(|| Arc::new(Iptables) as _);
        if firewall.is_none() {
            tracing::warn!("egress rules are off: sessions can reach the host, other networks and cloud metadata");
        }
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let runtime = DockerRuntime {
            docker,
            options,
            http,
            tracker: Arc::default(),
            owner: Owner::default(),
            firewall,
            dns: nameservers(&resolv_conf),
            volume_sizes: Arc::new(usage::Engine::from_env()),
            orphans: Orphans::default(),
        };
        if let Err(error) = runtime.reconcile_egress_rules().await {
            tracing::error!("cannot reconcile session egress rules; sessions will not start: {error:#}");
        }
        Ok(runtime)
    }

    /// Removes the rules of sessions whose container is gone and installs what running containers lack of
    /// theirs (after a firewall reload, say). Rules are listed before containers: a session's rules are installed
    /// only after its container exists, so a session starting meanwhile is never taken for a stale one.
    async fn reconcile_egress_rules(&self) -> anyhow::Result<()> {
        let Some(firewall) = &self.firewall else { return Ok(()) };
        let installed = firewall.installed().await?;
        // Every managed container counts, also other agents': their rules are not this agent's to remove.
        let filters = HashMap::from([("label".to_string(), vec![MANAGED_FILTER.to_string()])]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..ListContainersOptions::default() };
        let containers = self.docker.list_containers(Some(options)).await.context("listing session containers")?;
        let mut live = BTreeSet::new();
        for container in &containers {
            let Some(session_id) = session_label(container.labels.as_ref()) else { continue };
            let labels = container.labels.clone().unwrap_or_default();
            let tag = network_tag(session_id);
            let running = container.state == Some(ContainerSummaryStateEnum::RUNNING);
            if running {
                if !installed.contains(&tag) {
                    tracing::warn!(%session_id, "a running session had no egress rules; installing them");
                }
                // Installing adds only what is missing (a jump an older agent did not make, say).
                firewall
                    .install(&self.egress_rules(session_id, parse_allow_label(labels.get(LABEL_EGRESS_ALLOW))?))
                    .await?;
            }
            live.insert(tag);
        }
        for stale in installed.difference(&live) {
            tracing::info!(tag = %stale, "removing the egress rules of a session that no longer exists");
            firewall.remove(stale).await?;
        }
        Ok(())
    }

    fn egress_rules(&self, session_id: Uuid, allow: Vec<IpNet>) -> SessionRules {
        let mut deny = security::egress_deny();
        deny.extend(&self.options.egress_deny);
        SessionRules { tag: network_tag(session_id), allow, deny, dns: self.dns.clone() }
    }

    /// Installs the session's egress rules; called before its container starts, every time it starts.
    async fn protect(&self, spec: &SessionSpec) -> anyhow::Result<()> {
        let Some(firewall) = &self.firewall else { return Ok(()) };
        firewall
            .install(&self.egress_rules(spec.session_id, spec.egress_allow.clone()))
            .await
            .context("installing the session's egress rules failed")
    }

    async fn inspect(&self, name: &str) -> anyhow::Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(name, None).await {
            Ok(container) => Ok(Some(container)),
            Err(error) if not_found(&error) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("inspecting container {name}")),
        }
    }

    /// Start and wake alike: create what is missing, start what is stopped, then wait for the streamer.
    async fn bring_up(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        let name = container_name(spec.session_id);
        self.tracker.forget(spec.session_id);
        let existing = self.inspect(&name).await?;
        if existing.is_none() {
            // Built first so a bad spec fails before anything is pulled or created.
            let mut body = container_body(spec, self.owner.get(), self.options.publish_host)?;
            let image = self.ensure_image(&spec.image, progress).await?;
            body.user = Some(image_user(&spec.image, &image)?);
            progress(starting(SessionPhase::Creating, None));
            if let Some(home) = &spec.home {
                let target = home::image_home(&spec.image, &image)?;
                home::ensure_home(&self.docker, home, spec.owner_id, self.owner.get()).await?;
                body.host_config.get_or_insert_default().mounts = Some(vec![home::home_mount(home, target)]);
            }
            self.ensure_network(spec).await?;
            let options = CreateContainerOptions { name: Some(name.clone()), platform: String::new() };
            self.docker
                .create_container(Some(options), body)
                .await
                .with_context(|| format!("creating container {name}"))?;
        }
        if !existing.as_ref().is_some_and(is_running) {
            // A kept container (hibernated) is started on the network it was created with.
            self.session_network_exists(spec.session_id).await?;
            self.protect(spec).await?;
            progress(starting(SessionPhase::Starting, None));
            self.docker.start_container(&name, None).await.with_context(|| format!("starting container {name}"))?;
        }
        self.wait_until_ready(spec).await
    }

    /// Pulls the image unless the engine has it, reporting download progress; returns what the engine says of it.
    async fn ensure_image(&self, image: &str, progress: &Progress<'_>) -> anyhow::Result<ImageInspect> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => return Ok(inspect),
            Err(error) if not_found(&error) => {}
            Err(error) => return Err(error).with_context(|| format!("inspecting image {image}")),
        }
        progress(starting(SessionPhase::Pulling, Some(0)));
        let options = CreateImageOptions { from_image: Some(image_reference(image)), ..CreateImageOptions::default() };
        let mut pull = self.docker.create_image(Some(options), None, None);
        let mut percent = PullProgress::default();
        while let Some(message) = pull.next().await {
            let message = message.with_context(|| format!("pulling image {image} failed"))?;
            if let Some(percent) = percent.update(&message) {
                progress(starting(SessionPhase::Pulling, Some(percent)));
            }
        }
        self.docker.inspect_image(image).await.with_context(|| format!("inspecting image {image}"))
    }

    /// Creates the session's network unless it exists. Checked first because older engines accept a second
    /// network with the same name, which would make the name ambiguous.
    async fn ensure_network(&self, spec: &SessionSpec) -> anyhow::Result<()> {
        if !self.session_network_exists(spec.session_id).await? {
            let name = network_name(spec.session_id);
            self.docker
                .create_network(network_body(spec, self.owner.get()))
                .await
                .with_context(|| format!("creating network {name}"))?;
        }
        Ok(())
    }

    /// Whether the session's network exists. One must have the bridge name the egress rules match, or they would
    /// protect nothing (networks made before the rules existed do not).
    async fn session_network_exists(&self, session_id: Uuid) -> anyhow::Result<bool> {
        let name = network_name(session_id);
        match self.docker.inspect_network(&name, None).await {
            Ok(network) => {
                let bridge = network.options.as_ref().and_then(|options| options.get(BRIDGE_NAME_OPTION));
                let want = bridge_name(session_id);
                ensure!(
                    bridge == Some(&want),
                    "network {name} has no bridge named {want}, so egress rules cannot apply to it: stop the session"
                );
                Ok(true)
            }
            Err(error) if not_found(&error) => Ok(false),
            Err(error) => Err(error).with_context(|| format!("inspecting network {name}")),
        }
    }

    /// Polls until the streamer answers its health check; fails early if the container stops meanwhile.
    async fn wait_until_ready(&self, spec: &SessionSpec) -> anyhow::Result<String> {
        let name = container_name(spec.session_id);
        let port = streamer_port(spec.port)?;
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            let container =
                self.inspect(&name).await?.with_context(|| format!("container {name} vanished while starting"))?;
            if !is_running(&container) {
                let reason = container.state.as_ref().map_or_else(|| "the container stopped".to_string(), exit_reason);
                bail!("{reason} while starting");
            }
            if let Some(endpoint) = self.inspected_endpoint(&container, spec.session_id, port)
                && self.healthy(&endpoint).await
            {
                return Ok(endpoint);
            }
            if Instant::now() >= deadline {
                bail!("the streamer did not answer GET {HEALTH_PATH} within {}s", self.options.start_timeout.as_secs());
            }
            tokio::time::sleep(HEALTH_POLL_INTERVAL).await;
        }
    }

    async fn healthy(&self, endpoint: &str) -> bool {
        let response = self.http.get(format!("{endpoint}{HEALTH_PATH}")).send().await;
        response.is_ok_and(|response| response.status() == reqwest::StatusCode::OK)
    }

    fn inspected_endpoint(&self, container: &ContainerInspectResponse, session_id: Uuid, port: u16) -> Option<String> {
        let settings = container.network_settings.as_ref()?;
        let network = network_name(session_id);
        let session_ip = settings.networks.as_ref()?.get(&network)?.ip_address.as_deref();
        let published_port =
            settings.ports.as_ref().and_then(|ports| ports.get(&port_key(port))).and_then(|bindings| {
                bindings.as_ref()?.iter().find_map(|binding| binding.host_port.as_deref()?.parse().ok())
            });
        endpoint(self.options.publish_host, session_ip, published_port, port)
    }

    fn listed_endpoint(&self, container: &ContainerSummary, session_id: Uuid, port: u16) -> Option<String> {
        let network = network_name(session_id);
        let networks = container.network_settings.as_ref()?.networks.as_ref()?;
        let session_ip = networks.get(&network)?.ip_address.as_deref();
        let published_port = container
            .ports
            .iter()
            .flatten()
            .find(|summary| summary.private_port == port && summary.public_port.is_some())
            .and_then(|summary| summary.public_port);
        endpoint(self.options.publish_host, session_ip, published_port, port)
    }

    /// Removes a session's container (killing it if needed), its network and its egress rules; what is already
    /// gone is fine.
    async fn remove_session(&self, session_id: Uuid) -> anyhow::Result<()> {
        let name = container_name(session_id);
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        absent_is_ok(self.docker.remove_container(&name, Some(options)).await)
            .with_context(|| format!("removing container {name}"))?;
        self.remove_network(session_id).await
    }

    /// Removes a session's network and its egress rules; what is already gone is fine.
    async fn remove_network(&self, session_id: Uuid) -> anyhow::Result<()> {
        let network = network_name(session_id);
        absent_is_ok(self.docker.remove_network(&network).await)
            .with_context(|| format!("removing network {network}"))?;
        match &self.firewall {
            Some(firewall) => {
                firewall.remove(&network_tag(session_id)).await.context("removing the session's egress rules")
            }
            None => Ok(()),
        }
    }

    /// Removes this agent's session networks that have stayed without a container (of `containers`, this
    /// agent's) for the grace period. Networks made before they were labelled with their agent are left alone:
    /// whose they are cannot be told.
    async fn remove_orphan_networks(&self, containers: &[ContainerSummary]) -> anyhow::Result<()> {
        let filters = HashMap::from([("label".to_string(), self.owner.label_filters())]);
        let options = ListNetworksOptions { filters: Some(filters) };
        let networks = self.docker.list_networks(Some(options)).await.context("listing session networks")?;
        let housed: HashSet<Uuid> = containers.iter().filter_map(|c| session_label(c.labels.as_ref())).collect();
        let orphans =
            networks.iter().filter_map(|n| session_label(n.labels.as_ref())).filter(|id| !housed.contains(id));
        for session_id in self.orphans.due(orphans, Instant::now(), self.options.orphan_network_grace) {
            tracing::info!(%session_id, "removing a session network whose container is gone");
            if let Err(error) = self.remove_network(session_id).await {
                tracing::warn!(%session_id, "cannot remove the session's network: {error:#}");
            }
        }
        Ok(())
    }

    /// One listed container as an inventory item; `None` for containers on their way out or not ours to read.
    async fn observe(&self, container: &ContainerSummary) -> Option<InventoryItem> {
        let labels = container.labels.as_ref()?;
        let Some(session_id) = session_label(Some(labels)) else {
            tracing::warn!(names = ?container.names, "a managed container has no valid session label");
            return None;
        };
        let state = match container.state? {
            ContainerSummaryStateEnum::RUNNING => {
                let port = labels.get(LABEL_PORT).and_then(|port| port.parse().ok())?;
                match self.listed_endpoint(container, session_id, port) {
                    Some(endpoint) if self.healthy(&endpoint).await => ActualState::Running { endpoint },
                    _ => starting(SessionPhase::Starting, None),
                }
            }
            ContainerSummaryStateEnum::RESTARTING => starting(SessionPhase::Starting, None),
            ContainerSummaryStateEnum::CREATED
            | ContainerSummaryStateEnum::EXITED
            | ContainerSummaryStateEnum::PAUSED
            | ContainerSummaryStateEnum::STOPPING => self
                .tracker
                .failure(session_id)
                .map_or(ActualState::Hibernated, |reason| ActualState::Failed { reason }),
            ContainerSummaryStateEnum::DEAD => {
                ActualState::Failed { reason: "the container is dead (Docker could not stop it cleanly)".to_string() }
            }
            ContainerSummaryStateEnum::REMOVING | ContainerSummaryStateEnum::EMPTY => return None,
        };
        Some(InventoryItem { session_id, state })
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn platform(&self) -> Platform {
        Platform::Docker
    }

    async fn capacity(&self) -> anyhow::Result<Capacity> {
        let info = self.docker.info().await.context("reading the Docker engine's resources")?;
        Ok(Capacity {
            max_sessions: self.options.max_sessions,
            cpu_millis: info.ncpu.unwrap_or(0).saturating_mul(1000).saturating_mul(self.options.cpu_overcommit.max(1)),
            memory_mb: info.mem_total.unwrap_or(0) / MIB,
        })
    }

    async fn inventory(&self) -> anyhow::Result<Vec<InventoryItem>> {
        let filters = HashMap::from([("label".to_string(), self.owner.label_filters())]);
        let options = ListContainersOptions { all: true, filters: Some(filters), ..ListContainersOptions::default() };
        let containers = self.docker.list_containers(Some(options)).await.context("listing session containers")?;
        let items = futures::future::join_all(containers.iter().map(|container| self.observe(container))).await;
        // Housekeeping on the way: a failure here must not cost the control plane its view of the sessions.
        if let Err(error) = self.remove_orphan_networks(&containers).await {
            tracing::warn!("cannot remove session networks left without their container: {error:#}");
        }
        Ok(items.into_iter().flatten().collect())
    }

    async fn start(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.bring_up(spec, progress).await
    }

    async fn hibernate(&self, session_id: Uuid) -> anyhow::Result<()> {
        let name = container_name(session_id);
        self.tracker.expect_exit(session_id);
        let grace = i32::try_from(self.options.stop_grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptions { t: Some(grace), signal: None };
        match self.docker.stop_container(&name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if not_found(&error) => {
                self.tracker.forget(session_id);
                bail!("session {session_id} has no container to hibernate")
            }
            Err(error) => Err(error).with_context(|| format!("stopping container {name}")),
        }
    }

    /// Also recreates the container from the spec if it is gone, so a wake never fails for want of one.
    async fn wake(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.bring_up(spec, progress).await
    }

    async fn stop(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.tracker.expect_exit(session_id);
        let removed = self.remove_session(session_id).await;
        // Late `die` events are ignored anyway: the container no longer exists to be judged.
        self.tracker.forget(session_id);
        removed
    }

    async fn remove_home(&self, home_id: Uuid) -> anyhow::Result<()> {
        home::remove_home(&self.docker, home_id).await
    }

    async fn home_usage(&self) -> anyhow::Result<Vec<HomeUsage>> {
        home::home_usage(&self.docker, self.volume_sizes.as_ref()).await
    }

    fn bind(&self, agent_id: Uuid) {
        self.owner.set(agent_id);
    }

    fn events(&self) -> BoxStream<'static, (Uuid, ActualState)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(events::follow(self.docker.clone(), Arc::clone(&self.tracker), self.owner.clone(), tx));
        UnboundedReceiverStream::new(rx).boxed()
    }
}

/// The user a session runs as: the image's own, if [`security::session_user`] accepts it.
fn image_user(image: &str, inspect: &ImageInspect) -> anyhow::Result<String> {
    let user = inspect.config.as_ref().and_then(|config| config.user.clone()).unwrap_or_default();
    security::session_user(&user).map_err(|error| {
        anyhow!("refusing to run image {image}: {error}; session images must set USER to a numeric uid other than 0")
    })?;
    Ok(user.trim().to_string())
}

fn starting(phase: SessionPhase, progress: Option<i32>) -> ActualState {
    ActualState::Starting { phase, progress }
}

fn is_running(container: &ContainerInspectResponse) -> bool {
    container.state.as_ref().and_then(|state| state.status) == Some(ContainerStateStatusEnum::RUNNING)
}

/// Removing what is already gone is done.
fn absent_is_ok(result: Result<(), DockerError>) -> Result<(), DockerError> {
    match result {
        Err(error) if not_found(&error) => Ok(()),
        other => other,
    }
}

fn not_found(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code: 404, .. })
}

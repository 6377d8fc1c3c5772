//! Pure translations between StreamSpace sessions and Docker objects: names, labels, create bodies,
//! endpoints and exit reasons.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail, ensure};
use bollard::models::{
    ContainerCreateBody, ContainerState, EndpointSettings, HostConfig, HostConfigLogConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use ipnet::IpNet;
use streamspace_proto::hub::SessionSpec;
use streamspace_proto::security;
use uuid::Uuid;

pub(crate) const LABEL_SESSION: &str = "streamspace.session";
pub(crate) const LABEL_ORG: &str = "streamspace.org";
pub(crate) const LABEL_OWNER: &str = "streamspace.owner";
pub(crate) const LABEL_MANAGED: &str = "streamspace.managed";
/// The streamer's port inside the container, so the inventory can rebuild the endpoint from a container listing.
pub(crate) const LABEL_PORT: &str = "streamspace.port";
/// The filter that selects everything this runtime manages.
pub(crate) const MANAGED_FILTER: &str = "streamspace.managed=true";
/// The agent a container belongs to: several agents, or several control planes, can share one engine
/// without one listing, stopping or judging another's sessions.
pub(crate) const LABEL_AGENT: &str = "streamspace.agent";
/// The session's egress allow-list (comma-separated CIDRs), so rules can be rebuilt from the container alone.
pub(crate) const LABEL_EGRESS_ALLOW: &str = "streamspace.egress-allow";

/// The agent this runtime works for, learnt from the control plane's welcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owner(Arc<RwLock<Option<Uuid>>>);

impl Owner {
    pub(crate) fn set(&self, agent_id: Uuid) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(agent_id);
    }

    pub(crate) fn get(&self) -> Option<Uuid> {
        *self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Label filters selecting this agent's containers; before the welcome names the agent, a label
    /// no container carries, so none is selected.
    pub(crate) fn label_filters(&self) -> Vec<String> {
        let agent = self.get().map_or_else(|| "unbound".to_string(), |id| id.to_string());
        vec![MANAGED_FILTER.to_string(), format!("{LABEL_AGENT}={agent}")]
    }

    /// Whether a container with these labels belongs to this agent. Before the welcome none does: an
    /// agent starting beside others on one engine must not report (and so have stopped) their sessions.
    pub(crate) fn owns(&self, labels: &HashMap<String, String>) -> bool {
        self.get().is_some_and(|id| labels.get(LABEL_AGENT).is_some_and(|owner| *owner == id.to_string()))
    }
}

pub(crate) const MIB: i64 = 1024 * 1024;

pub(crate) fn container_name(session_id: Uuid) -> String {
    format!("ss-{session_id}")
}

pub(crate) fn network_name(session_id: Uuid) -> String {
    format!("ss-net-{session_id}")
}

/// A short name for the session's network objects that still fits the kernel's 15-byte interface names. Taken
/// from the end of the id, the random part of both v4 and v7 UUIDs (a v7's start is a timestamp).
pub(crate) fn network_tag(session_id: Uuid) -> String {
    let hex = session_id.simple().to_string();
    hex[hex.len() - 12..].to_string()
}

/// The Linux bridge of the session's network, named so firewall rules can match it (`-i ss-<tag>`).
pub(crate) fn bridge_name(session_id: Uuid) -> String {
    format!("{BRIDGE_PREFIX}{}", network_tag(session_id))
}

/// The network driver option that names a bridge network's Linux interface.
pub(crate) const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// Every session bridge's name starts with this (`-o ss-+` matches them all).
pub(crate) const BRIDGE_PREFIX: &str = "ss-";

/// The key Docker uses for a container port in exposed ports and port bindings.
pub(crate) fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

/// Pulling a bare name makes Docker fetch every tag of the repository; `docker pull` means `:latest` then.
pub(crate) fn image_reference(image: &str) -> String {
    let last_component = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last_component.contains(':') { image.to_string() } else { format!("{image}:latest") }
}

/// The container for a session: its resources, environment and labels, attached to its own network only, with
/// the hardening of [`hardened`]. Its user is set once the image is known ([`security::session_user`]).
pub(crate) fn container_body(
    spec: &SessionSpec,
    owner: Option<Uuid>,
    publish_host: Option<IpAddr>,
) -> anyhow::Result<ContainerCreateBody> {
    ensure!(!spec.image.trim().is_empty(), "the session spec has no image");
    let port = streamer_port(spec.port)?;
    let network = network_name(spec.session_id);
    let memory = megabytes(spec.memory_mb, "memory_mb")?;
    let host_config = HostConfig {
        nano_cpus: limit(spec.cpu_millis, 1_000_000, "cpu_millis")?,
        memory,
        // Equal to the memory limit: no swap on top, so a session's memory limit is what it can really use.
        memory_swap: memory,
        shm_size: megabytes(spec.shm_mb, "shm_mb")?,
        // The control plane decides what happens after a crash, so Docker must not restart anything itself.
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        network_mode: Some(network.clone()),
        port_bindings: publish_host.map(|host| {
            let binding = PortBinding { host_ip: Some(host.to_string()), host_port: Some(String::new()) };
            HashMap::from([(port_key(port), Some(vec![binding]))])
        }),
        ..hardened()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(environment(spec)?),
        labels: Some(container_labels(spec, owner)),
        exposed_ports: Some(vec![port_key(port)]),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
        }),
        ..ContainerCreateBody::default()
    })
}

/// The host config part that [`security`] prescribes for every session.
fn hardened() -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(security::KEPT_CAPABILITIES.iter().map(|cap| cap.to_string()).collect()),
        // Docker's default seccomp profile applies because nothing here turns it off.
        security_opt: Some(vec!["no-new-privileges:true".to_string()]),
        pids_limit: Some(security::PIDS_LIMIT),
        readonly_rootfs: Some(security::READ_ONLY_ROOT_FILESYSTEM),
        tmpfs: Some(security::TMPFS.iter().map(|fs| (fs.path.to_string(), fs.options.to_string())).collect()),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_string()),
            config: Some(HashMap::from([
                ("max-size".to_string(), security::LOG_MAX_BYTES.to_string()),
                ("max-file".to_string(), security::LOG_MAX_FILES.to_string()),
            ])),
        }),
        ..HostConfig::default()
    }
}

/// The allow-list as stored in [`LABEL_EGRESS_ALLOW`].
pub(crate) fn allow_label(allow: &[IpNet]) -> String {
    allow.iter().map(IpNet::to_string).collect::<Vec<_>>().join(",")
}

/// Reads [`LABEL_EGRESS_ALLOW`] back; a container without the label allows nothing extra.
pub(crate) fn parse_allow_label(label: Option<&String>) -> anyhow::Result<Vec<IpNet>> {
    let label = label.map_or("", String::as_str);
    label
        .split(',')
        .filter(|cidr| !cidr.is_empty())
        .map(|cidr| cidr.parse().with_context(|| format!("invalid CIDR {cidr:?} in label {LABEL_EGRESS_ALLOW}")))
        .collect()
}

/// The session's own bridge network. Docker isolates bridge networks from each other, so session containers
/// cannot reach one another while the host (the control plane) can reach them all.
/// Labelled with the agent that made it, like the container, so that this agent alone may remove it once its
/// container is gone.
pub(crate) fn network_body(spec: &SessionSpec, owner: Option<Uuid>) -> NetworkCreateRequest {
    let mut labels = HashMap::from([
        (LABEL_SESSION.to_string(), spec.session_id.to_string()),
        (LABEL_MANAGED.to_string(), "true".to_string()),
    ]);
    labels.extend(owner.map(|id| (LABEL_AGENT.to_string(), id.to_string())));
    NetworkCreateRequest {
        name: network_name(spec.session_id),
        driver: Some("bridge".to_string()),
        options: Some(HashMap::from([(BRIDGE_NAME_OPTION.to_string(), bridge_name(spec.session_id))])),
        labels: Some(labels),
        ..NetworkCreateRequest::default()
    }
}

/// The session a container or network is labelled with.
pub(crate) fn session_label(labels: Option<&HashMap<String, String>>) -> Option<Uuid> {
    labels?.get(LABEL_SESSION)?.parse().ok()
}

fn container_labels(spec: &SessionSpec, owner: Option<Uuid>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_SESSION.to_string(), spec.session_id.to_string()),
        (LABEL_ORG.to_string(), spec.org_id.to_string()),
        (LABEL_OWNER.to_string(), spec.owner_id.to_string()),
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_PORT.to_string(), spec.port.to_string()),
        (LABEL_EGRESS_ALLOW.to_string(), allow_label(&spec.egress_allow)),
    ]);
    labels.extend(owner.map(|id| (LABEL_AGENT.to_string(), id.to_string())));
    labels
}

/// `KEY=value` pairs; a key with `=` would silently become a different variable, so it is refused.
fn environment(spec: &SessionSpec) -> anyhow::Result<Vec<String>> {
    spec.env
        .iter()
        .map(|(key, value)| {
            ensure!(!key.is_empty() && !key.contains(['=', '\0']), "invalid environment variable name {key:?}");
            ensure!(!value.contains('\0'), "environment variable {key} contains a NUL byte");
            Ok(format!("{key}={value}"))
        })
        .collect()
}

pub(crate) fn streamer_port(port: i32) -> anyhow::Result<u16> {
    u16::try_from(port).ok().filter(|port| *port != 0).with_context(|| format!("invalid streamer port {port}"))
}

/// A resource amount times `unit`; zero means "no limit" (Docker's own default).
fn limit(amount: i64, unit: i64, field: &str) -> anyhow::Result<Option<i64>> {
    if amount < 0 {
        bail!("{field} must not be negative (got {amount})");
    }
    if amount == 0 {
        return Ok(None);
    }
    amount.checked_mul(unit).map(Some).with_context(|| format!("{field} is too large (got {amount})"))
}

fn megabytes(amount: i64, field: &str) -> anyhow::Result<Option<i64>> {
    limit(amount, MIB, field)
}

/// The URL the control plane dials: the published host port when `publish_host` is set (remote Docker hosts),
/// otherwise the container's address on its session network (the control plane runs on this host).
pub(crate) fn endpoint(
    publish_host: Option<IpAddr>,
    session_ip: Option<&str>,
    published_port: Option<u16>,
    port: u16,
) -> Option<String> {
    let address = match publish_host {
        Some(host) => SocketAddr::new(host, published_port?),
        None => SocketAddr::new(session_ip.filter(|ip| !ip.is_empty())?.parse().ok()?, port),
    };
    Some(format!("http://{address}"))
}

/// Why a container that ended on its own ended, in words for the session's failure reason.
pub(crate) fn exit_reason(state: &ContainerState) -> String {
    if state.oom_killed == Some(true) {
        return "the session ran out of memory and was killed".to_string();
    }
    if let Some(error) = state.error.as_deref().filter(|error| !error.is_empty()) {
        return format!("the container failed: {error}");
    }
    match state.exit_code {
        // 128 + n: the main process was killed by signal n (137 = SIGKILL, e.g. `docker kill`).
        Some(code) if code > 128 && code < 160 => {
            format!("the container exited unexpectedly with code {code} (killed by signal {})", code - 128)
        }
        Some(code) => format!("the container exited unexpectedly with code {code}"),
        None => "the container exited unexpectedly".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec() -> SessionSpec {
        SessionSpec {
            session_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            owner_id: Uuid::from_u128(3),
            image: "streamspace/chromium:latest".into(),
            env: BTreeMap::from([("TZ".into(), "UTC".into()), ("A".into(), "b=c".into())]),
            cpu_millis: 1500,
            memory_mb: 2048,
            shm_mb: 256,
            port: 8080,
            egress_allow: vec!["203.0.113.0/24".parse().unwrap(), "10.9.0.0/16".parse().unwrap()],
            home: None,
        }
    }

    #[test]
    fn names_follow_the_session_id() {
        let id = Uuid::from_u128(1);
        assert_eq!(container_name(id), "ss-00000000-0000-0000-0000-000000000001");
        assert_eq!(network_name(id), "ss-net-00000000-0000-0000-0000-000000000001");
    }

    #[test]
    fn bare_image_names_pull_latest_only() {
        let cases = [
            ("debian", "debian:latest"),
            ("debian:bookworm", "debian:bookworm"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost:5000/app:1.2", "localhost:5000/app:1.2"),
            ("ghcr.io/org/app@sha256:abc", "ghcr.io/org/app@sha256:abc"),
        ];
        for (image, want) in cases {
            assert_eq!(image_reference(image), want);
        }
    }

    #[test]
    fn an_owned_runtime_labels_its_containers_and_sees_only_them() {
        let owner = Owner::default();
        let agent = Uuid::from_u128(7);
        let other = HashMap::from([(LABEL_AGENT.to_string(), Uuid::from_u128(8).to_string())]);
        assert!(!owner.owns(&other), "before the welcome no container is this agent's");
        assert_eq!(owner.label_filters(), [MANAGED_FILTER.to_string(), format!("{LABEL_AGENT}=unbound")]);
        owner.set(agent);
        assert!(!owner.owns(&other));
        assert!(!owner.owns(&HashMap::new()));
        assert_eq!(owner.label_filters(), [MANAGED_FILTER.to_string(), format!("{LABEL_AGENT}={agent}")]);
        let labels = container_body(&spec(), owner.get(), None).unwrap().labels.unwrap();
        assert!(owner.owns(&labels));
    }

    #[test]
    fn the_container_gets_the_specs_resources_env_labels_and_network() {
        let body = container_body(&spec(), None, None).unwrap();
        let host = body.host_config.clone().unwrap();
        assert_eq!(
            (host.nano_cpus, host.memory, host.memory_swap),
            (Some(1_500_000_000), Some(2048 * MIB), Some(2048 * MIB))
        );
        assert_eq!(host.shm_size, Some(256 * MIB));
        assert_eq!(host.restart_policy.and_then(|policy| policy.name), Some(RestartPolicyNameEnum::NO));
        assert_eq!(host.network_mode.as_deref(), Some(network_name(Uuid::from_u128(1)).as_str()));
        assert_eq!(host.port_bindings, None, "nothing is published by default");
        assert_eq!(body.env, Some(vec!["A=b=c".to_string(), "TZ=UTC".to_string()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_SESSION], Uuid::from_u128(1).to_string());
        assert_eq!(labels[LABEL_ORG], Uuid::from_u128(2).to_string());
        assert_eq!(labels[LABEL_OWNER], Uuid::from_u128(3).to_string());
        assert_eq!((labels[LABEL_MANAGED].as_str(), labels[LABEL_PORT].as_str()), ("true", "8080"));
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_string()]));
    }

    #[test]
    fn the_container_is_hardened() {
        let host = container_body(&spec(), None, None).unwrap().host_config.unwrap();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, Some(vec![]), "the images need no capability");
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_string()]));
        assert_eq!(host.pids_limit, Some(security::PIDS_LIMIT));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(
            host.tmpfs,
            Some(HashMap::from([("/tmp".to_string(), "rw,noexec,nosuid,nodev,mode=1777".to_string())]))
        );
        let log = host.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        let config = log.config.unwrap();
        assert_eq!((config["max-size"].as_str(), config["max-file"].as_str()), ("10485760", "3"));
    }

    #[test]
    fn the_allow_list_round_trips_through_its_label() {
        let labels = container_body(&spec(), None, None).unwrap().labels.unwrap();
        assert_eq!(labels[LABEL_EGRESS_ALLOW], "203.0.113.0/24,10.9.0.0/16");
        assert_eq!(parse_allow_label(labels.get(LABEL_EGRESS_ALLOW)).unwrap(), spec().egress_allow);
        assert_eq!(parse_allow_label(None).unwrap(), Vec::<IpNet>::new());
        assert_eq!(parse_allow_label(Some(&String::new())).unwrap(), Vec::<IpNet>::new());
        assert!(parse_allow_label(Some(&"10.0.0.0/33".to_string())).is_err());
    }

    #[test]
    fn the_network_names_its_bridge_after_the_random_end_of_the_session_id() {
        let id: Uuid = "01890a5d-ac96-774b-bcce-b302099a8057".parse().unwrap();
        assert_eq!(bridge_name(id), "ss-b302099a8057");
        assert!(bridge_name(id).len() <= 15, "Linux interface names have at most 15 bytes");
        let options = network_body(&SessionSpec { session_id: id, ..spec() }, None).options.unwrap();
        assert_eq!(options["com.docker.network.bridge.name"], "ss-b302099a8057");
    }

    #[test]
    fn publishing_binds_an_ephemeral_port_on_the_host_address() {
        let body = container_body(&spec(), None, Some("10.1.2.3".parse().unwrap())).unwrap();
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let binding = PortBinding { host_ip: Some("10.1.2.3".into()), host_port: Some(String::new()) };
        assert_eq!(bindings["8080/tcp"], Some(vec![binding]));
    }

    #[test]
    fn zero_limits_mean_unlimited_and_bad_specs_are_refused() {
        let unlimited = SessionSpec { cpu_millis: 0, memory_mb: 0, shm_mb: 0, ..spec() };
        let host = container_body(&unlimited, None, None).unwrap().host_config.unwrap();
        assert_eq!((host.nano_cpus, host.memory, host.shm_size), (None, None, None));

        let bad = [
            (SessionSpec { cpu_millis: -1, ..spec() }, "cpu_millis must not be negative"),
            (SessionSpec { memory_mb: i64::MAX, ..spec() }, "memory_mb is too large"),
            (SessionSpec { port: 0, ..spec() }, "invalid streamer port 0"),
            (SessionSpec { port: 70000, ..spec() }, "invalid streamer port 70000"),
            (SessionSpec { image: " ".into(), ..spec() }, "no image"),
            (SessionSpec { env: BTreeMap::from([("A=B".into(), "c".into())]), ..spec() }, "invalid environment"),
        ];
        for (spec, want) in bad {
            let error = container_body(&spec, None, None).unwrap_err().to_string();
            assert!(error.contains(want), "{error}");
        }
    }

    #[test]
    fn endpoints_use_the_session_ip_or_the_published_port() {
        assert_eq!(endpoint(None, Some("172.18.0.2"), None, 8080).as_deref(), Some("http://172.18.0.2:8080"));
        assert_eq!(endpoint(None, Some("fd00::2"), None, 8080).as_deref(), Some("http://[fd00::2]:8080"));
        assert_eq!(endpoint(None, Some(""), None, 8080), None, "not attached yet");
        assert_eq!(endpoint(None, None, Some(1234), 8080), None);
        let host = Some("192.0.2.7".parse().unwrap());
        assert_eq!(endpoint(host, Some("172.18.0.2"), Some(49153), 8080).as_deref(), Some("http://192.0.2.7:49153"));
        assert_eq!(endpoint(host, Some("172.18.0.2"), None, 8080), None, "not published yet");
    }

    #[test]
    fn exit_reasons_name_the_cause() {
        let state = |exit_code, oom_killed, error: &str| ContainerState {
            exit_code,
            oom_killed: Some(oom_killed),
            error: Some(error.to_string()),
            ..ContainerState::default()
        };
        assert_eq!(exit_reason(&state(Some(137), true, "")), "the session ran out of memory and was killed");
        assert_eq!(
            exit_reason(&state(Some(137), false, "")),
            "the container exited unexpectedly with code 137 (killed by signal 9)"
        );
        assert_eq!(exit_reason(&state(Some(1), false, "")), "the container exited unexpectedly with code 1");
        assert_eq!(exit_reason(&state(Some(127), false, "exec: not found")), "the container failed: exec: not found");
        assert_eq!(exit_reason(&ContainerState::default()), "the container exited unexpectedly");
    }
}

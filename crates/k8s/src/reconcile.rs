//! Pure translations between StreamSpace sessions and Kubernetes objects: the `Session`, `Template` and `Secret`
//! a session spec becomes, and the pod, Service, NetworkPolicy and PVC a `Session` becomes. Nothing here talks
//! to an API server, so every rule is a unit test.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext,
    PodSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use sha2::{Digest, Sha256};
use streamspace_proto::hub;
use streamspace_proto::security;
use uuid::Uuid;

use crate::crd::{SecretEnvName, Session, SessionHome, SessionSpec, Template, TemplateSpec};

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "streamspace";
pub const LABEL_SESSION: &str = "streamspace.io/session";
pub const LABEL_AGENT: &str = "streamspace.io/agent";
/// Selects everything any StreamSpace agent manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=streamspace";

/// The session container's name inside its pod.
pub const CONTAINER: &str = "session";
/// The streamer's readiness route (Selkies and the test fixture both serve it), as the Docker runtime checks it.
pub const HEALTH_PATH: &str = "/api/health";

/// How sessions of this agent are shaped, beyond what the control plane's spec says.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// Networks sessions must not reach beyond [`security::EGRESS_DENY`], such as the control plane's public
    /// address.
    pub egress_deny: Vec<IpNet>,
    /// Who may reach a session's streamer.
    pub control_plane: ControlPlanePeers,
    /// Templates state CPU limits and desktops idle most of the time, so a session requests its limit divided by
    /// this (memory is requested as it is limited: it is not given back).
    pub cpu_overcommit: i64,
    /// The user's home inside the session (the session images' `HOME`): the image declares it a volume, which
    /// Kubernetes does not create by itself.
    pub home_path: String,
    /// `None`: the home is an `emptyDir`, lost when the session hibernates. `Some`: a PVC per session, kept
    /// across hibernation and deleted with the session, as the Docker runtime keeps its home volume.
    pub home_claim: Option<HomeClaim>,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            egress_deny: Vec::new(),
            control_plane: ControlPlanePeers::default(),
            cpu_overcommit: 8,
            home_path: "/home/streamspace".to_string(),
            home_claim: None,
        }
    }
}

/// The control plane's pods (by label, in a namespace) and addresses: the only peers a streamer accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlanePeers {
    /// Labels of the control plane's pods; empty selects none by label.
    pub pod_labels: BTreeMap<String, String>,
    /// The control plane's namespace; `None`: the sessions' own.
    pub namespace: Option<String>,
    /// Addresses the control plane connects from when it runs outside the cluster.
    pub cidrs: Vec<IpNet>,
}

impl Default for ControlPlanePeers {
    fn default() -> ControlPlanePeers {
        ControlPlanePeers {
            pod_labels: BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "streamspace".to_string()),
                ("app.kubernetes.io/component".to_string(), "control-plane".to_string()),
            ]),
            namespace: None,
            cidrs: Vec::new(),
        }
    }
}

/// A per-session claim for the home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeClaim {
    /// A Kubernetes quantity such as `2Gi`.
    pub size: String,
    /// `None`: the cluster's default storage class.
    pub storage_class: Option<String>,
}

/// Every object of a session is called this.
pub fn object_name(session_id: Uuid) -> String {
    format!("ss-{session_id}")
}

/// The labels on a session's objects, so each agent lists and touches only its own.
pub fn session_labels(session_id: Uuid, agent_id: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_SESSION.to_string(), session_id.to_string()),
        (LABEL_AGENT.to_string(), agent_id.to_string()),
    ])
}

/// Selects one agent's sessions and their objects.
pub fn agent_selector(agent_id: Uuid) -> String {
    format!("{MANAGED_SELECTOR},{LABEL_AGENT}={agent_id}")
}

/// Whether an environment variable holds a credential, which goes to the session's `Secret` rather than the
/// `Session` (readable by whoever may list Sessions) or the pod spec. The streamer's master token
/// (`SELKIES_MASTER_TOKEN`, ADR 0009) is one; names are matched by their last word so a future credential is
/// kept secret without a change here.
pub fn is_secret_env(name: &str) -> bool {
    let last_word = name.rsplit('_').next().unwrap_or(name).to_ascii_uppercase();
    matches!(last_word.as_str(), "TOKEN" | "SECRET" | "PASSWORD" | "KEY" | "CREDENTIALS")
}

/// What a session spec from the control plane becomes: its `Session` and `Template` and the values of its
/// `Secret` (written once the `Session` exists, since the `Secret` is owned by it).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionObjects {
    pub session: Session,
    pub template: Template,
    pub secret_env: BTreeMap<String, String>,
}

pub fn session_objects(spec: &hub::SessionSpec, agent_id: Uuid) -> anyhow::Result<SessionObjects> {
    let template_spec = template_spec(spec)?;
    let name = template_name(&template_spec);
    let mut env = BTreeMap::new();
    let mut secret_env = BTreeMap::new();
    for (key, value) in &spec.env {
        ensure!(!key.is_empty() && !key.contains(['=', '\0']), "invalid environment variable name {key:?}");
        ensure!(!value.contains('\0'), "environment variable {key} contains a NUL byte");
        let target = if is_secret_env(key) { &mut secret_env } else { &mut env };
        target.insert(key.clone(), value.clone());
    }
    let session_spec = SessionSpec {
        session_id: spec.session_id,
        org_id: spec.org_id,
        owner_id: spec.owner_id,
        template: name.clone(),
        env,
        secret_env: secret_env.keys().cloned().map(SecretEnvName).collect(),
        egress_allow: spec.egress_allow.iter().map(IpNet::to_string).collect(),
        hibernated: false,
        home: spec
            .home
            .as_ref()
            .map(|home| SessionHome { claim: hub::HomeVolume::volume_name(home.id), size_mb: home.size_mb }),
    };
    let mut session = Session::new(&object_name(spec.session_id), session_spec);
    session.metadata.labels = Some(session_labels(spec.session_id, agent_id));
    let mut template = Template::new(&name, template_spec);
    template.metadata.labels = Some(BTreeMap::from([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())]));
    Ok(SessionObjects { session, template, secret_env })
}

fn template_spec(spec: &hub::SessionSpec) -> anyhow::Result<TemplateSpec> {
    ensure!(!spec.image.trim().is_empty(), "the session spec has no image");
    for (value, field) in [(spec.cpu_millis, "cpu_millis"), (spec.memory_mb, "memory_mb"), (spec.shm_mb, "shm_mb")] {
        ensure!(value >= 0, "{field} must not be negative (got {value})");
    }
    ensure!((1..=65535).contains(&spec.port), "invalid streamer port {}", spec.port);
    Ok(TemplateSpec {
        image: spec.image.clone(),
        cpu_millis: spec.cpu_millis,
        memory_mb: spec.memory_mb,
        shm_mb: spec.shm_mb,
        port: spec.port,
    })
}

/// A template's name: readable (the image's last path component) and unique per image and resources (a hash
/// of them), since the control plane sends resolved specs, not template ids, and two templates of one image
/// may differ in their limits.
pub fn template_name(spec: &TemplateSpec) -> String {
    let digest = Sha256::digest(
        format!("{}|{}|{}|{}|{}", spec.image, spec.cpu_millis, spec.memory_mb, spec.shm_mb, spec.port).as_bytes(),
    );
    let repository = spec.image.rsplit('/').next().unwrap_or_default();
    let repository = repository.split(['@', ':']).next().unwrap_or_default();
    let mut readable: String = repository
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(40)
        .collect();
    readable = readable.trim_matches('-').to_string();
    let hash = hex::encode(&digest[..5]);
    if readable.is_empty() { format!("t-{hash}") } else { format!("{readable}-{hash}") }
}

/// The reference every object of a session carries to its `Session`, for garbage collection.
pub fn owner_reference(session: &Session) -> anyhow::Result<OwnerReference> {
    let uid = session.metadata.uid.clone().context("the Session has no uid yet (it was not read from the API)")?;
    Ok(OwnerReference {
        api_version: Session::api_version(&()).to_string(),
        kind: Session::kind(&()).to_string(),
        name: object_name(session.spec.session_id),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The metadata of an object of `session`: its name, namespace, labels and owner.
fn owned_metadata(session: &Session) -> anyhow::Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(object_name(session.spec.session_id)),
        namespace: session.metadata.namespace.clone(),
        labels: session.metadata.labels.clone(),
        owner_references: Some(vec![owner_reference(session)?]),
        ..ObjectMeta::default()
    })
}

/// The session's `Secret`: the credential variables, under their names.
pub fn desired_secret(session: &Session, values: &BTreeMap<String, String>) -> anyhow::Result<Secret> {
    Ok(Secret {
        metadata: owned_metadata(session)?,
        type_: Some("Opaque".to_string()),
        data: Some(values.iter().map(|(key, value)| (key.clone(), ByteString(value.clone().into_bytes()))).collect()),
        ..Secret::default()
    })
}

const TMP_VOLUME: &str = "tmp";
const SHM_VOLUME: &str = "shm";
const HOME_VOLUME: &str = "home";
const PORT_NAME: &str = "streamer";

/// The session's pod: the template's image and limits, hardened as [`security`] prescribes, with the Session's
/// environment and its credentials from the `Secret`.
pub fn desired_pod(session: &Session, template: &Template, options: &SessionOptions) -> anyhow::Result<Pod> {
    let spec = &template.spec;
    ensure!((1..=65535).contains(&spec.port), "invalid streamer port {}", spec.port);
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(spec.image.clone()),
        // As the Docker runtime: pull only what the node lacks (Kubernetes' default for `:latest` pulls every
        // time, and fails for an image that is only on the node).
        image_pull_policy: Some("IfNotPresent".to_string()),
        env: Some(environment(session)),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: spec.port,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        resources: Some(resources(spec, options.cpu_overcommit)?),
        security_context: Some(container_security_context()),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(HEALTH_PATH.to_string()),
                port: IntOrString::String(PORT_NAME.to_string()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(2),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        volume_mounts: Some(volume_mounts(spec, options)),
        ..Container::default()
    };
    Ok(Pod {
        metadata: owned_metadata(session)?,
        spec: Some(PodSpec {
            containers: vec![container],
            // The control plane decides what happens after a crash, so nothing restarts by itself.
            restart_policy: Some("Never".to_string()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..PodSecurityContext::default()
            }),
            volumes: Some(volumes(session, spec, options)),
            ..PodSpec::default()
        }),
        status: None,
    })
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }
}

/// The container part of [`security`]: no capability, no privilege escalation, the image's own non-root user
/// (`runAsNonRoot` makes the kubelet refuse images whose `USER` is root or a name, exactly the rule of
/// [`security::session_user`]), a read-only root filesystem.
fn container_security_context() -> SecurityContext {
    let kept: Vec<String> = security::KEPT_CAPABILITIES.iter().map(|cap| cap.to_string()).collect();
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: (!kept.is_empty()).then_some(kept),
        }),
        read_only_root_filesystem: Some(security::READ_ONLY_ROOT_FILESYSTEM),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn environment(session: &Session) -> Vec<EnvVar> {
    let plain = session.spec.env.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        value_from: None,
    });
    let secret = session.spec.secret_env.iter().map(|SecretEnvName(name)| EnvVar {
        name: name.clone(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: object_name(session.spec.session_id),
                key: name.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    });
    plain.chain(secret).collect()
}

/// Limits as the template states them (0: none); requests so the scheduler places sessions as the Docker agent
/// announces its CPU: the limit over the overcommit factor, memory in full.
fn resources(spec: &TemplateSpec, cpu_overcommit: i64) -> anyhow::Result<ResourceRequirements> {
    ensure!(spec.cpu_millis >= 0 && spec.memory_mb >= 0, "resource limits must not be negative");
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    if spec.cpu_millis > 0 {
        limits.insert("cpu".to_string(), Quantity(format!("{}m", spec.cpu_millis)));
        let request = (spec.cpu_millis / cpu_overcommit.max(1)).max(1);
        requests.insert("cpu".to_string(), Quantity(format!("{request}m")));
    }
    if spec.memory_mb > 0 {
        let memory = Quantity(format!("{}Mi", spec.memory_mb));
        limits.insert("memory".to_string(), memory.clone());
        requests.insert("memory".to_string(), memory);
    }
    Ok(ResourceRequirements {
        limits: (!limits.is_empty()).then_some(limits),
        requests: (!requests.is_empty()).then_some(requests),
        ..ResourceRequirements::default()
    })
}

/// `/tmp` (and `/dev/shm` when the template sizes it) in memory, counted against the memory limit as Docker's
/// tmpfs is, and the home.
fn volumes(session: &Session, spec: &TemplateSpec, options: &SessionOptions) -> Vec<Volume> {
    let memory = |size_limit: Option<Quantity>| Volume {
        empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".to_string()), size_limit }),
        ..Volume::default()
    };
    let mut volumes = vec![Volume { name: TMP_VOLUME.to_string(), ..memory(None) }];
    if spec.shm_mb > 0 {
        volumes.push(Volume { name: SHM_VOLUME.to_string(), ..memory(Some(Quantity(format!("{}Mi", spec.shm_mb)))) });
    }
    let claim = |claim_name: String| Volume {
        name: HOME_VOLUME.to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name, read_only: Some(false) }),
        ..Volume::default()
    };
    volumes.push(match (&session.spec.home, &options.home_claim) {
        (Some(home), _) => claim(home.claim.clone()),
        (None, Some(_)) => claim(object_name(session.spec.session_id)),
        (None, None) => Volume {
            name: HOME_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    });
    volumes
}

fn volume_mounts(spec: &TemplateSpec, options: &SessionOptions) -> Vec<VolumeMount> {
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..VolumeMount::default()
    };
    let mut mounts: Vec<VolumeMount> = security::TMPFS.iter().map(|fs| mount(TMP_VOLUME, fs.path)).collect();
    if spec.shm_mb > 0 {
        mounts.push(mount(SHM_VOLUME, "/dev/shm"));
    }
    mounts.push(mount(HOME_VOLUME, &options.home_path));
    mounts
}

/// A ClusterIP Service in front of the streamer, so the session has a stable name in the cluster.
pub fn desired_service(session: &Session, template: &Template) -> anyhow::Result<Service> {
    Ok(Service {
        metadata: owned_metadata(session)?,
        spec: Some(ServiceSpec {
            selector: Some(pod_selector(session.spec.session_id)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: template.spec.port,
                target_port: Some(IntOrString::String(PORT_NAME.to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn pod_selector(session_id: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_SESSION.to_string(), session_id.to_string())])
}

/// Only the control plane reaches the streamer; the session reaches DNS, its allow-listed networks and the
/// internet except [`security::EGRESS_DENY`] and the agent's own deny list (ADR 0012). NetworkPolicy rules add
/// up, so an allow-listed CIDR inside a denied range is reachable, as the Docker rules' order makes it.
pub fn desired_network_policy(
    session: &Session,
    template: &Template,
    options: &SessionOptions,
) -> anyhow::Result<NetworkPolicy> {
    let allow: Vec<IpNet> = session
        .spec
        .egress_allow
        .iter()
        .map(|cidr| cidr.parse::<IpNet>().with_context(|| format!("invalid egress allow CIDR {cidr:?}")))
        .collect::<anyhow::Result<_>>()?;
    let mut deny = security::egress_deny();
    deny.extend(&options.egress_deny);
    let mut egress = vec![dns_rule()];
    if !allow.is_empty() {
        egress.push(NetworkPolicyEgressRule { to: Some(allow.iter().map(ip_block_peer).collect()), ports: None });
    }
    egress.push(NetworkPolicyEgressRule { to: Some(internet_except(&deny)), ports: None });
    Ok(NetworkPolicy {
        metadata: owned_metadata(session)?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(pod_selector(session.spec.session_id)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: Some(ingress_rules(&options.control_plane, template.spec.port)),
            egress: Some(egress),
        }),
    })
}

/// One rule admitting the control plane to the streamer port, or none at all when no peer is configured: a rule
/// with an empty `from` would admit every source.
fn ingress_rules(control_plane: &ControlPlanePeers, port: i32) -> Vec<NetworkPolicyIngressRule> {
    let peers = control_plane_peers(control_plane);
    if peers.is_empty() {
        return Vec::new();
    }
    vec![NetworkPolicyIngressRule { from: Some(peers), ports: Some(vec![tcp_port(port)]) }]
}

fn control_plane_peers(control_plane: &ControlPlanePeers) -> Vec<NetworkPolicyPeer> {
    let mut peers = Vec::new();
    if !control_plane.pod_labels.is_empty() {
        peers.push(NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(control_plane.pod_labels.clone()),
                ..LabelSelector::default()
            }),
            namespace_selector: control_plane.namespace.as_ref().map(|namespace| LabelSelector {
                match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".to_string(), namespace.clone())])),
                ..LabelSelector::default()
            }),
            ip_block: None,
        });
    }
    peers.extend(control_plane.cidrs.iter().map(ip_block_peer));
    peers
}

fn dns_rule() -> NetworkPolicyEgressRule {
    let port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_string()),
        end_port: None,
    };
    NetworkPolicyEgressRule { to: None, ports: Some(vec![port("UDP"), port("TCP")]) }
}

fn tcp_port(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("TCP".to_string()), end_port: None }
}

fn ip_block_peer(net: &IpNet) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock { cidr: net.to_string(), except: None }),
        ..NetworkPolicyPeer::default()
    }
}

/// Every IPv4 and IPv6 address except `deny`, each exception under its own family.
fn internet_except(deny: &[IpNet]) -> Vec<NetworkPolicyPeer> {
    let family = |everything: &str, is_family: fn(&IpNet) -> bool| {
        let except: Vec<String> = deny.iter().filter(|net| is_family(net)).map(IpNet::to_string).collect();
        NetworkPolicyPeer {
            ip_block: Some(IPBlock { cidr: everything.to_string(), except: Some(except) }),
            ..NetworkPolicyPeer::default()
        }
    };
    vec![family("0.0.0.0/0", |net| matches!(net, IpNet::V4(_))), family("::/0", |net| matches!(net, IpNet::V6(_)))]
}

/// The session's home claim: its persistent home's, or its own when the agent's homes are claims.
pub fn desired_home_claim(
    session: &Session,
    options: &SessionOptions,
) -> anyhow::Result<Option<PersistentVolumeClaim>> {
    if let Some(home) = &session.spec.home {
        return Ok(Some(persistent_home_claim(session, home, options.home_claim.as_ref())));
    }
    let Some(claim) = &options.home_claim else { return Ok(None) };
    Ok(Some(PersistentVolumeClaim {
        metadata: owned_metadata(session)?,
        spec: Some(claim_spec(claim.size.clone(), claim.storage_class.clone())),
        status: None,
    }))
}

/// Size when neither the template nor the agent's settings give one.
const DEFAULT_HOME_SIZE: &str = "1Gi";

/// A persistent home's claim: not owned by the session, so deleting the session keeps it; only a
/// `remove_home` deletes it.
fn persistent_home_claim(session: &Session, home: &SessionHome, defaults: Option<&HomeClaim>) -> PersistentVolumeClaim {
    let size = home
        .size_mb
        .map(|mb| format!("{mb}Mi"))
        .or_else(|| defaults.map(|claim| claim.size.clone()))
        .unwrap_or_else(|| DEFAULT_HOME_SIZE.to_string());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(home.claim.clone()),
            namespace: session.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(claim_spec(size, defaults.and_then(|claim| claim.storage_class.clone()))),
        status: None,
    }
}

fn claim_spec(size: String, storage_class: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
        storage_class_name: storage_class,
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
            limits: None,
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    const AGENT: Uuid = Uuid::from_u128(0xa9e7);

    fn spec() -> hub::SessionSpec {
        hub::SessionSpec {
            session_id: "01890a5d-ac96-774b-bcce-b302099a8057".parse().unwrap(),
            org_id: Uuid::from_u128(1),
            owner_id: Uuid::from_u128(2),
            image: "streamspace/chromium:1.2".into(),
            env: BTreeMap::from([
                ("SELKIES_MASTER_TOKEN".into(), "s3cret".into()),
                ("SELKIES_ALLOWED_ORIGINS".into(), "https://s-1.example.com".into()),
            ]),
            cpu_millis: 2000,
            memory_mb: 4096,
            shm_mb: 512,
            port: 8080,
            egress_allow: vec!["10.20.30.0/24".parse().unwrap()],
            home: None,
        }
    }

    /// The Session as read back from the API: with a namespace and uid.
    fn stored(objects: &SessionObjects) -> Session {
        let mut session = objects.session.clone();
        session.metadata.namespace = Some("sessions".into());
        session.metadata.uid = Some("uid-1".into());
        session
    }

    fn objects() -> (Session, Template, SessionObjects) {
        let objects = session_objects(&spec(), AGENT).unwrap();
        (stored(&objects), objects.template.clone(), objects)
    }

    fn pod() -> Pod {
        let (session, template, _) = objects();
        desired_pod(&session, &template, &SessionOptions::default()).unwrap()
    }

    fn container() -> Container {
        pod().spec.unwrap().containers.remove(0)
    }

    #[test]
    fn credentials_go_to_the_secret_and_nothing_else_does() {
        let table = [
            ("SELKIES_MASTER_TOKEN", true),
            ("API_KEY", true),
            ("DB_PASSWORD", true),
            ("CLIENT_SECRET", true),
            ("token", true),
            ("SELKIES_ALLOWED_ORIGINS", false),
            ("KEYBOARD_LAYOUT", false),
            ("SELKIES_FRAME_ANCESTORS", false),
        ];
        for (name, secret) in table {
            assert_eq!(is_secret_env(name), secret, "{name}");
        }
        let (session, _, objects) = objects();
        assert_eq!(objects.secret_env, BTreeMap::from([("SELKIES_MASTER_TOKEN".into(), "s3cret".into())]));
        assert_eq!(session.spec.secret_env, [SecretEnvName("SELKIES_MASTER_TOKEN".into())]);
        assert!(!serde_json::to_string(&session).unwrap().contains("s3cret"), "no credential in the Session");
        assert!(!serde_json::to_string(&pod()).unwrap().contains("s3cret"), "no credential in the pod");
        let secret = desired_secret(&session, &objects.secret_env).unwrap();
        assert_eq!(secret.data.unwrap()["SELKIES_MASTER_TOKEN"], ByteString(b"s3cret".to_vec()));
    }

    #[test]
    fn the_pod_reads_credentials_by_secret_key_reference() {
        let env = container().env.unwrap();
        let token = env.iter().find(|var| var.name == "SELKIES_MASTER_TOKEN").unwrap();
        assert_eq!(token.value, None);
        let reference = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            ("ss-01890a5d-ac96-774b-bcce-b302099a8057", "SELKIES_MASTER_TOKEN")
        );
        let origins = env.iter().find(|var| var.name == "SELKIES_ALLOWED_ORIGINS").unwrap();
        assert_eq!(origins.value.as_deref(), Some("https://s-1.example.com"));
    }

    #[test]
    fn every_object_is_named_labelled_and_owned_alike() {
        let (session, template, objects) = objects();
        let options = SessionOptions {
            home_claim: Some(HomeClaim { size: "2Gi".into(), storage_class: None }),
            ..SessionOptions::default()
        };
        let metas = [
            desired_pod(&session, &template, &options).unwrap().metadata,
            desired_service(&session, &template).unwrap().metadata,
            desired_network_policy(&session, &template, &options).unwrap().metadata,
            desired_secret(&session, &objects.secret_env).unwrap().metadata,
            desired_home_claim(&session, &options).unwrap().unwrap().metadata,
        ];
        for meta in metas {
            assert_eq!(meta.name.as_deref(), Some("ss-01890a5d-ac96-774b-bcce-b302099a8057"));
            assert_eq!(meta.namespace.as_deref(), Some("sessions"));
            let labels = meta.labels.unwrap();
            assert_eq!(labels[LABEL_MANAGED_BY], "streamspace");
            assert_eq!(labels[LABEL_SESSION], "01890a5d-ac96-774b-bcce-b302099a8057");
            assert_eq!(labels[LABEL_AGENT], AGENT.to_string());
            let owner = &meta.owner_references.unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.api_version.as_str()), ("Session", "streamspace.io/v1alpha1"));
            assert_eq!((owner.uid.as_str(), owner.controller), ("uid-1", Some(true)));
        }
        assert!(desired_pod(&objects.session, &template, &options).is_err(), "a Session without uid owns nothing");
    }

    #[test]
    fn the_pod_is_hardened_as_the_spec_says() {
        let pod = pod().spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let pod_context = pod.security_context.unwrap();
        assert_eq!(pod_context.run_as_non_root, Some(true));
        assert_eq!(pod_context.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let context = container().security_context.unwrap();
        let table = [
            ("allowPrivilegeEscalation", context.allow_privilege_escalation, Some(false)),
            ("privileged", context.privileged, Some(false)),
            ("readOnlyRootFilesystem", context.read_only_root_filesystem, Some(true)),
            ("runAsNonRoot", context.run_as_non_root, Some(true)),
        ];
        for (field, got, want) in table {
            assert_eq!(got, want, "{field}");
        }
        let capabilities = context.capabilities.unwrap();
        assert_eq!(capabilities.drop, Some(vec!["ALL".to_string()]));
        assert_eq!(capabilities.add, None);
        assert_eq!(context.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(context.run_as_user, None, "the image's own user, never a substitute");
    }

    #[test]
    fn writable_places_are_memory_or_the_home() {
        let container = container();
        let mounts: Vec<(String, String)> =
            container.volume_mounts.unwrap().into_iter().map(|mount| (mount.name, mount.mount_path)).collect();
        let want = [("tmp", "/tmp"), ("shm", "/dev/shm"), ("home", "/home/streamspace")];
        assert_eq!(mounts, want.map(|(name, path)| (name.to_string(), path.to_string())));
        let volumes = pod().spec.unwrap().volumes.unwrap();
        let medium = |name: &str| {
            let volume = volumes.iter().find(|volume| volume.name == name).unwrap();
            volume.empty_dir.clone().map(|dir| (dir.medium, dir.size_limit))
        };
        assert_eq!(medium("tmp"), Some((Some("Memory".into()), None)));
        assert_eq!(medium("shm"), Some((Some("Memory".into()), Some(Quantity("512Mi".into())))));
        assert_eq!(medium("home"), Some((None, None)), "an emptyDir on disk without a home claim");
    }

    #[test]
    fn a_home_claim_replaces_the_empty_home() {
        let (session, template, _) = objects();
        let options = SessionOptions {
            home_claim: Some(HomeClaim { size: "5Gi".into(), storage_class: Some("fast".into()) }),
            ..SessionOptions::default()
        };
        let volumes = desired_pod(&session, &template, &options).unwrap().spec.unwrap().volumes.unwrap();
        let home = volumes.iter().find(|volume| volume.name == "home").unwrap();
        assert_eq!(home.persistent_volume_claim.as_ref().unwrap().claim_name, object_name(session.spec.session_id));
        let claim = desired_home_claim(&session, &options).unwrap().unwrap().spec.unwrap();
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(claim.resources.unwrap().requests.unwrap()["storage"], Quantity("5Gi".into()));
        assert_eq!(desired_home_claim(&session, &SessionOptions::default()).unwrap(), None);
    }

    #[test]
    fn a_persistent_home_is_a_claim_the_session_does_not_own() {
        let (mut session, template, _) = objects();
        let home = SessionHome { claim: "ss-home-7".into(), size_mb: Some(512) };
        session.spec.home = Some(home.clone());
        let options = SessionOptions {
            home_claim: Some(HomeClaim { size: "5Gi".into(), storage_class: Some("fast".into()) }),
            ..SessionOptions::default()
        };
        let volumes = desired_pod(&session, &template, &options).unwrap().spec.unwrap().volumes.unwrap();
        let mounted = volumes.iter().find(|volume| volume.name == "home").unwrap();
        assert_eq!(mounted.persistent_volume_claim.as_ref().unwrap().claim_name, "ss-home-7");
        let claim = desired_home_claim(&session, &options).unwrap().unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("ss-home-7"));
        assert_eq!(claim.metadata.owner_references, None, "deleting the session must keep it");
        let spec = claim.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(spec.resources.unwrap().requests.unwrap()["storage"], Quantity("512Mi".into()));
        session.spec.home = Some(SessionHome { size_mb: None, ..home });
        let unsized_claim = desired_home_claim(&session, &SessionOptions::default()).unwrap().unwrap().spec.unwrap();
        assert_eq!(unsized_claim.resources.unwrap().requests.unwrap()["storage"], Quantity("1Gi".into()));
    }

    #[test]
    fn limits_come_from_the_template_and_requests_follow_the_overcommit() {
        let table = [
            (2000, 4096, 8, Some(("2000m", "4096Mi")), Some(("250m", "4096Mi"))),
            (500, 0, 1, Some(("500m", "")), Some(("500m", ""))),
            (3, 0, 8, Some(("3m", "")), Some(("1m", ""))),
            (0, 0, 8, None, None),
        ];
        for (cpu, memory, overcommit, limits, requests) in table {
            let template = TemplateSpec { cpu_millis: cpu, memory_mb: memory, ..objects().1.spec };
            let got = resources(&template, overcommit).unwrap();
            let pick = |map: Option<BTreeMap<String, Quantity>>| {
                map.map(|map| {
                    let get = |key: &str| map.get(key).map_or(String::new(), |quantity| quantity.0.clone());
                    (get("cpu"), get("memory"))
                })
            };
            let owned = |pair: Option<(&str, &str)>| pair.map(|(cpu, memory)| (cpu.to_string(), memory.to_string()));
            assert_eq!(pick(got.limits), owned(limits), "limits for {cpu}m {memory}Mi");
            assert_eq!(pick(got.requests), owned(requests), "requests for {cpu}m {memory}Mi");
        }
        let negative = TemplateSpec { cpu_millis: -1, ..objects().1.spec };
        assert!(resources(&negative, 8).is_err());
    }

    #[test]
    fn readiness_is_the_streamers_health_on_its_port() {
        let container = container();
        assert_eq!(container.ports.unwrap()[0].container_port, 8080);
        let probe = container.readiness_probe.unwrap().http_get.unwrap();
        assert_eq!(probe.path.as_deref(), Some(HEALTH_PATH));
        assert_eq!(probe.port, IntOrString::String("streamer".into()));
        let (session, template, _) = objects();
        let service = desired_service(&session, &template).unwrap().spec.unwrap();
        assert_eq!(service.selector.unwrap()[LABEL_SESSION], session.spec.session_id.to_string());
        assert_eq!(service.ports.unwrap()[0].port, 8080);
    }

    #[test]
    fn bad_specs_are_refused_before_anything_is_written() {
        let table = [
            (hub::SessionSpec { image: " ".into(), ..spec() }, "no image"),
            (hub::SessionSpec { cpu_millis: -1, ..spec() }, "cpu_millis must not be negative"),
            (hub::SessionSpec { port: 0, ..spec() }, "invalid streamer port 0"),
            (hub::SessionSpec { port: 70000, ..spec() }, "invalid streamer port 70000"),
            (hub::SessionSpec { env: BTreeMap::from([("A=B".into(), "c".into())]), ..spec() }, "invalid environment"),
        ];
        for (spec, want) in table {
            let error = session_objects(&spec, AGENT).unwrap_err().to_string();
            assert!(error.contains(want), "{error}");
        }
    }

    #[test]
    fn template_names_are_readable_and_differ_with_their_resources() {
        let base = objects().1.spec;
        let name = template_name(&base);
        assert!(name.starts_with("chromium-") && name.len() == "chromium-".len() + 10, "{name}");
        assert_ne!(template_name(&TemplateSpec { memory_mb: 1, ..base.clone() }), name);
        assert_eq!(template_name(&base.clone()), name, "stable");
        let odd = TemplateSpec { image: "registry:5000/Team/Some_App@sha256:abc".into(), ..base.clone() };
        assert!(template_name(&odd).starts_with("some-app-"), "{}", template_name(&odd));
        let bare = TemplateSpec { image: "@@@".into(), ..base };
        assert!(template_name(&bare).starts_with("t-"));
    }

    fn policy(options: &SessionOptions) -> NetworkPolicySpec {
        let (session, template, _) = objects();
        desired_network_policy(&session, &template, options).unwrap().spec.unwrap()
    }

    /// What the NetworkPolicy lets the session reach on a port other than DNS: any egress rule without ports
    /// whose peers hold the address.
    fn reachable(policy: &NetworkPolicySpec, address: IpAddr) -> bool {
        policy
            .egress
            .iter()
            .flatten()
            .filter(|rule| rule.ports.is_none())
            .flat_map(|rule| rule.to.iter().flatten())
            .any(|peer| {
                let block = peer.ip_block.as_ref().unwrap();
                let inside = |cidr: &String| cidr.parse::<IpNet>().unwrap().contains(&address);
                inside(&block.cidr) && !block.except.iter().flatten().any(inside)
            })
    }

    #[test]
    fn egress_reaches_the_internet_but_not_metadata_private_ranges_or_denied_networks() {
        let options =
            SessionOptions { egress_deny: vec!["203.0.113.0/24".parse().unwrap()], ..SessionOptions::default() };
        let policy = policy(&options);
        let table = [
            ("93.184.215.14", true),
            ("2606:4700::1111", true),
            ("169.254.169.254", false),
            ("10.1.2.3", false),
            ("172.20.0.1", false),
            ("192.168.1.1", false),
            ("100.100.100.200", false),
            ("127.0.0.1", false),
            ("fd00::2", false),
            ("fe80::1", false),
            ("203.0.113.9", false),
            ("10.20.30.40", true),
            ("10.20.31.1", false),
        ];
        for (address, want) in table {
            assert_eq!(reachable(&policy, address.parse().unwrap()), want, "{address}");
        }
        for block in policy.egress.iter().flatten().flat_map(|rule| rule.to.iter().flatten()) {
            let block = block.ip_block.as_ref().unwrap();
            let family = block.cidr.parse::<IpNet>().unwrap();
            for except in block.except.iter().flatten() {
                let except: IpNet = except.parse().unwrap();
                assert!(family.contains(&except), "{except} lies inside {}", block.cidr);
            }
        }
    }

    #[test]
    fn dns_is_open_on_port_53_only() {
        let policy = policy(&SessionOptions::default());
        let dns = &policy.egress.as_ref().unwrap()[0];
        assert_eq!(dns.to, None);
        let ports: Vec<_> = dns.ports.iter().flatten().map(|port| (port.protocol.clone(), port.port.clone())).collect();
        assert_eq!(ports, [("UDP", 53), ("TCP", 53)].map(|(p, n)| (Some(p.to_string()), Some(IntOrString::Int(n)))));
    }

    #[test]
    fn only_the_control_plane_reaches_the_streamer() {
        let options = SessionOptions {
            control_plane: ControlPlanePeers {
                namespace: Some("streamspace".into()),
                cidrs: vec!["198.51.100.7/32".parse().unwrap()],
                ..ControlPlanePeers::default()
            },
            ..SessionOptions::default()
        };
        let policy = policy(&options);
        assert_eq!(policy.policy_types.unwrap(), ["Ingress", "Egress"]);
        assert_eq!(
            policy.pod_selector.unwrap().match_labels.unwrap()[LABEL_SESSION],
            objects().0.spec.session_id.to_string()
        );
        let ingress = policy.ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(8080)));
        let peers = ingress[0].from.as_ref().unwrap();
        let pods = peers[0].pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(pods["app.kubernetes.io/component"], "control-plane");
        let namespace = peers[0].namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "streamspace");
        assert_eq!(peers[1].ip_block.as_ref().unwrap().cidr, "198.51.100.7/32");
        assert_eq!(peers.len(), 2);

        let nobody = SessionOptions {
            control_plane: ControlPlanePeers { pod_labels: BTreeMap::new(), namespace: None, cidrs: Vec::new() },
            ..SessionOptions::default()
        };
        let closed = self::policy(&nobody);
        assert_eq!(closed.ingress, Some(Vec::new()), "no peer: no rule (an empty `from` would admit everyone)");
        assert!(closed.policy_types.unwrap().contains(&"Ingress".to_string()), "so all ingress is denied");
    }
}

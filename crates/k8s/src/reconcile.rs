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

use crate::crd::{SecretEnvName, Session, SessionSpec, Template, TemplateSpec};

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
    volumes.push(match options.home_claim {
        Some(_) => Volume {
            name: HOME_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: object_name(session.spec.session_id),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        None => Volume {
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
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(control_plane_peers(&options.control_plane)),
                ports: Some(vec![tcp_port(template.spec.port)]),
            }]),
            egress: Some(egress),
        }),
    })
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

/// The session's home claim, when homes are claims.
pub fn desired_home_claim(
    session: &Session,
    options: &SessionOptions,
) -> anyhow::Result<Option<PersistentVolumeClaim>> {
    let Some(claim) = &options.home_claim else { return Ok(None) };
    Ok(Some(PersistentVolumeClaim {
        metadata: owned_metadata(session)?,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: claim.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(claim.size.clone()))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }))
}

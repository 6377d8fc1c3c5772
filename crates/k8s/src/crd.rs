//! The `Session` and `Template` custom resources (`streamspace.io/v1alpha1`), and the YAML of their definitions
//! that the Helm chart ships.
//!
//! The control plane is the source of truth: a `Session` is the agent's record of a session it was told to run,
//! written from the control plane's spec, and a `Template` mirrors the resolved template of sessions the agent
//! has run. Neither holds a secret: the streamer's credentials live in a `Secret` owned by the `Session`.

use std::collections::BTreeMap;

use anyhow::Context;
use kube::CustomResource;
use kube::core::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A lowercase UUID, as the control plane writes them.
const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// A Kubernetes object name (RFC 1123 subdomain label), which a `Template`'s name is.
const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An environment variable name: no `=` (it would become another variable), no NUL.
const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_.-]*$";
/// Upper bounds that catch a unit mistake (millicores for cores, bytes for MiB) rather than size any machine.
const MAX_CPU_MILLIS: i64 = 1_024_000;
const MAX_MEMORY_MB: i64 = 16 * 1024 * 1024;

/// One session the agent runs: what the control plane asked for, minus its secrets.
// Every `printcolumn(...)` repeats the same keys, which this lint takes for a mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "streamspace.io",
    version = "v1alpha1",
    kind = "Session",
    plural = "sessions",
    shortname = "sess",
    namespaced,
    status = "SessionStatus",
    derive = "PartialEq",
    doc = "A StreamSpace session run by an agent: one pod, Service and NetworkPolicy, named ss-<session id>.",
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".spec.ownerId",
        description = "the user who owns the session"
    ),
    printcolumn(name = "Template", type_ = "string", json_path = ".spec.template"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// The session's id in the control plane.
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub session_id: Uuid,
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub org_id: Uuid,
    /// The user who owns the session.
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub owner_id: Uuid,
    /// The name of the `Template` (in the same namespace) the session runs.
    #[schemars(regex(pattern = NAME_PATTERN), length(min = 1, max = 63))]
    pub template: String,
    /// Environment variables that are not secret, as given.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the variables whose values are in the session's `Secret` (`ss-<session id>`), under the same key.
    #[serde(default)]
    pub secret_env: Vec<SecretEnvName>,
    /// Networks the session may reach although the deny list covers them (CIDRs).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub egress_allow: Vec<String>,
    /// Hibernated sessions have no pod; their Service, NetworkPolicy and Secret stay for the wake.
    #[serde(default)]
    pub hibernated: bool,
    /// The owner's persistent home: a claim of its own (`ss-home-<home id>`) that outlives the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<SessionHome>,
}

/// A persistent home the session mounts at its home directory (ADR 0032).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionHome {
    /// The claim's name.
    #[schemars(regex(pattern = NAME_PATTERN), length(min = 1, max = 63))]
    pub claim: String,
    /// The storage the claim requests, in MiB; absent: the agent's home size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mb: Option<i64>,
}

/// The name of an environment variable held in the session's `Secret`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct SecretEnvName(#[schemars(regex(pattern = ENV_NAME_PATTERN), length(min = 1, max = 253))] pub String);

/// What the agent's controller last saw of the session.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    pub phase: Option<Phase>,
    /// Percentage of the image pull, while `Pulling`, where the pod's events tell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub progress: Option<i32>,
    /// `http://<pod IP>:<port>` once `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Why the session failed, once `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The phases `kubectl get sessions` shows.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Pending,
    Pulling,
    Creating,
    Starting,
    Running,
    Hibernated,
    Failed,
}

/// A template the agent has run sessions of: the image and the resources every session of it gets.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "streamspace.io",
    version = "v1alpha1",
    kind = "Template",
    plural = "templates",
    shortname = "tmpl",
    namespaced,
    derive = "PartialEq",
    doc = "A StreamSpace template as the control plane resolved it for the sessions of this agent.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// CPU limit in millicores; 0 means none.
    #[schemars(range(min = 0, max = MAX_CPU_MILLIS))]
    pub cpu_millis: i64,
    /// Memory limit in MiB; 0 means none.
    #[schemars(range(min = 0, max = MAX_MEMORY_MB))]
    pub memory_mb: i64,
    /// Shared memory (`/dev/shm`) in MiB; 0 means the container runtime's default.
    #[schemars(range(min = 0, max = MAX_MEMORY_MB))]
    pub shm_mb: i64,
    /// The streamer's port inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Where the chart keeps the definitions, relative to the repository root.
pub const CRD_DIR: &str = "deploy/helm/streamspace/crds";

/// The definitions of both resources as one YAML stream, as `streamspace kubernetes crds` prints it.
pub fn crds_yaml() -> anyhow::Result<String> {
    let documents: Vec<String> = crd_files()?.into_iter().map(|(_, yaml)| yaml).collect();
    Ok(documents.join("---\n"))
}

/// Each definition with the name of its file in [`CRD_DIR`] (`<plural>.<group>.yaml`).
pub fn crd_files() -> anyhow::Result<Vec<(String, String)>> {
    Ok(vec![crd_file::<Session>()?, crd_file::<Template>()?])
}

fn crd_file<K: CustomResourceExt>() -> anyhow::Result<(String, String)> {
    let yaml = serde_saphyr::to_string(&K::crd())
        .with_context(|| format!("writing the definition of {} as YAML", K::crd_name()))?;
    Ok((format!("{}.yaml", K::crd_name()), yaml))
}

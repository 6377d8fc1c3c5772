//! The resource kinds the fake serves, and the per-kind rules a real API server applies to them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::sync::Arc;

use serde_json::{Value, json};

/// Which names the API server accepts for a kind (the validation a real cluster runs on `metadata.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds (pods, secrets, leases, custom resources).
    Subdomain,
    /// RFC 1035 label: services (a name that starts with a digit is refused).
    Rfc1035Label,
}

/// One resource the fake serves, as a real API server's discovery would describe it.
#[derive(Debug, Clone)]
pub struct ResourceKind {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether `.status` is a subresource: writes to the object leave it alone, writes to `/status` change only it.
    pub status_subresource: bool,
    /// Whether `metadata.generation` is kept (bumped on every change outside metadata and status).
    pub tracks_generation: bool,
    pub name_rule: NameRule,
    /// The status a freshly created object gets (a pod starts `Pending`).
    pub initial_status: Option<Value>,
    /// Field selector labels besides `metadata.name` and `metadata.namespace`, as the real server lists them.
    pub field_labels: &'static [&'static str],
    /// Strategic merge patch is only served where it means the same as a JSON merge patch (no merge-keyed lists).
    pub strategic_merge_is_json_merge: bool,
    /// Pods: the spec is immutable after create except container images (what the real pod validation enforces).
    pub pod_spec_rules: bool,
    /// A custom resource's `openAPIV3Schema`, which every write must satisfy.
    pub schema: Option<Arc<jsonschema::Validator>>,
}

impl ResourceKind {
    /// A namespaced custom resource, as a CustomResourceDefinition would declare it.
    pub fn custom(group: &str, version: &str, plural: &str, kind: &str) -> Self {
        ResourceKind {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced: true,
            status_subresource: false,
            tracks_generation: true,
            name_rule: NameRule::Subdomain,
            initial_status: None,
            field_labels: &[],
            strategic_merge_is_json_merge: false,
            pod_spec_rules: false,
            schema: None,
        }
    }

    /// Declares the `status` subresource (`subresources: {status: {}}` in the CRD).
    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// The kind a CustomResourceDefinition declares (its storage version), with the status subresource
    /// exactly when the definition has one, so a definition that lacks it shows in tests, and its schema.
    pub fn from_definition(definition: &CustomResourceDefinition) -> Result<Self, String> {
        let spec = &definition.spec;
        let version =
            spec.versions.iter().find(|version| version.storage).ok_or("the definition has no storage version")?;
        let mut kind = ResourceKind::custom(&spec.group, &version.name, &spec.names.plural, &spec.names.kind);
        kind.namespaced = spec.scope == "Namespaced";
        kind.status_subresource =
            version.subresources.as_ref().is_some_and(|subresources| subresources.status.is_some());
        if let Some(schema) = version.schema.as_ref().and_then(|schema| schema.open_api_v3_schema.as_ref()) {
            let schema = as_json_schema(serde_json::to_value(schema).map_err(|error| error.to_string())?);
            let validator =
                jsonschema::validator_for(&schema).map_err(|error| format!("the schema does not compile: {error}"))?;
            kind.schema = Some(Arc::new(validator));
        }
        Ok(kind)
    }

    /// `v1` or `group/version`, as `apiVersion` spells it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `pods` or `leases.coordination.k8s.io`, as the real server names a resource in its messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn builtin(group: &str, plural: &str, kind: &str) -> Self {
        ResourceKind { tracks_generation: false, ..ResourceKind::custom(group, "v1", plural, kind) }
    }

    /// The built-in kinds the agent uses.
    pub fn builtins() -> Vec<ResourceKind> {
        vec![
            ResourceKind {
                tracks_generation: true,
                initial_status: Some(json!({"phase": "Pending"})),
                field_labels: &[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                ],
                pod_spec_rules: true,
                ..ResourceKind::builtin("", "pods", "Pod").with_status_subresource()
            },
            ResourceKind {
                name_rule: NameRule::Rfc1035Label,
                ..ResourceKind::builtin("", "services", "Service").with_status_subresource()
            },
            ResourceKind { field_labels: &["type"], ..ResourceKind::builtin("", "secrets", "Secret") },
            ResourceKind::builtin("", "persistentvolumeclaims", "PersistentVolumeClaim").with_status_subresource(),
            ResourceKind {
                field_labels: &[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
                ..ResourceKind::builtin("", "events", "Event")
            },
            // The same events through the newer API (kube-runtime's `Recorder` writes here); the fake keeps the
            // two apart where a real cluster shows one object through both.
            ResourceKind {
                field_labels: &[
                    "regarding.kind",
                    "regarding.namespace",
                    "regarding.name",
                    "regarding.uid",
                    "reason",
                    "reportingController",
                    "type",
                ],
                ..ResourceKind::builtin("events.k8s.io", "events", "Event")
            },
            ResourceKind {
                tracks_generation: true,
                ..ResourceKind::builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy")
            },
            ResourceKind {
                strategic_merge_is_json_merge: true,
                ..ResourceKind::builtin("coordination.k8s.io", "leases", "Lease")
            },
        ]
    }
}

/// An OpenAPI v3 schema as JSON Schema: `nullable: true` becomes a type that admits null.
fn as_json_schema(mut schema: Value) -> Value {
    if let Some(node) = schema.as_object_mut() {
        let nullable = node.remove("nullable").is_some_and(|nullable| nullable == json!(true));
        if let Some(kind) = node.get("type").cloned().filter(|_| nullable) {
            node.insert("type".into(), json!([kind, "null"]));
        }
        for value in node.values_mut() {
            *value = as_json_schema(value.take());
        }
    } else if let Some(items) = schema.as_array_mut() {
        for item in items.iter_mut() {
            *item = as_json_schema(item.take());
        }
    }
    schema
}

//! The test as the cluster's kubelet: it writes pod status and pod events through the API, as a kubelet does.

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Event, Pod};
use std::collections::BTreeSet;

use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Writes what a node's kubelet would, through a real kube-rs client.
#[derive(Clone)]
pub struct Kubelet {
    client: kube::Client,
    namespace: String,
}

impl Kubelet {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Kubelet { client, namespace: namespace.into() }
    }

    /// Plays a healthy node until the task is aborted: every new pod (of those `label_selector` picks)
    /// gets the image events and then runs ready, at 10.244.0.1, .2, ... in the order the pods appear.
    pub fn run_every_pod(self, label_selector: &str) -> JoinHandle<()> {
        let config = watcher::Config::default().labels(label_selector);
        let pods = watcher::watcher(self.pods(), config).default_backoff().applied_objects();
        tokio::spawn(async move {
            let mut pods = std::pin::pin!(pods);
            let mut started = BTreeSet::new();
            while let Some(change) = pods.next().await {
                // The backoff retries a failed watch; the kubelet just waits for the next pod.
                let Ok(pod) = change else { continue };
                let fresh = pod.status.as_ref().and_then(|status| status.pod_ip.as_ref()).is_none()
                    && pod.metadata.deletion_timestamp.is_none();
                let Some(uid) = pod.metadata.uid.clone().filter(|uid| fresh && !started.contains(uid)) else {
                    continue;
                };
                started.insert(uid);
                let ip = format!("10.244.0.{}", started.len());
                if let Err(error) = self.start(&pod.name_any(), &ip).await {
                    tracing::warn!(%error, pod = pod.name_any(), "the test kubelet could not start a pod");
                }
            }
        })
    }

    /// What a kubelet reports while it starts a pod: the image events, then the pod running and ready.
    pub async fn start(&self, name: &str, pod_ip: &str) -> kube::Result<Pod> {
        for reason in ["Scheduled", "Pulling", "Pulled", "Created", "Started"] {
            self.record_event(name, reason, &format!("{reason} (test kubelet)"), "Normal").await?;
        }
        self.run_ready(name, pod_ip).await
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Marks the pod running with every container ready, at `pod_ip`.
    pub async fn run_ready(&self, name: &str, pod_ip: &str) -> kube::Result<Pod> {
        let now = timestamp();
        let condition = |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now});
        let statuses = self.container_statuses(name, |_| json!({"running": {"startedAt": now}}), true).await?;
        self.write_status(
            name,
            json!({
                "phase": "Running",
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": now,
                "conditions": [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady"), condition("Ready")],
                "containerStatuses": statuses,
            }),
        )
        .await
    }

    /// Leaves the pod Pending with its containers waiting for `reason` (e.g. `ImagePullBackOff`).
    pub async fn wait_containers(&self, name: &str, reason: &str, message: &str) -> kube::Result<Pod> {
        let state = json!({"waiting": {"reason": reason, "message": message}});
        let statuses = self.container_statuses(name, |_| state.clone(), false).await?;
        self.write_status(
            name,
            json!({"phase": "Pending", "containerStatuses": statuses, "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": timestamp()}
            ]}),
        )
        .await
    }

    /// Ends the pod's containers for `reason` (e.g. `OOMKilled`, exit code 137); the pod is Failed.
    pub async fn terminate_containers(&self, name: &str, reason: &str, exit_code: i32) -> kube::Result<Pod> {
        let now = timestamp();
        let state = json!({"terminated": {"reason": reason, "exitCode": exit_code, "finishedAt": now}});
        let statuses = self.container_statuses(name, |_| state.clone(), false).await?;
        self.write_status(
            name,
            json!({"phase": "Failed", "reason": reason, "containerStatuses": statuses, "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now}
            ]}),
        )
        .await
    }

    /// Records an event about the pod, as the kubelet does for image pulls (`Pulling`, `Pulled`, `Failed`).
    pub async fn record_event(
        &self,
        pod_name: &str,
        reason: &str,
        message: &str,
        event_type: &str,
    ) -> kube::Result<Event> {
        let pod = self.pods().get(pod_name).await?;
        let now = timestamp();
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": event_name(pod_name), "namespace": self.namespace},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": self.namespace,
                "name": pod_name,
                "uid": pod.metadata.uid,
                "fieldPath": "spec.containers{session}",
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": "kubelet"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))
        .map_err(kube::Error::SerdeError)?;
        Api::<Event>::namespaced(self.client.clone(), &self.namespace).create(&PostParams::default(), &event).await
    }

    async fn container_statuses(
        &self,
        name: &str,
        state: impl Fn(&str) -> Value,
        ready: bool,
    ) -> kube::Result<Vec<Value>> {
        let pod = self.pods().get(name).await?;
        let containers = pod.spec.map(|spec| spec.containers).unwrap_or_default();
        Ok(containers
            .iter()
            .map(|container| {
                json!({
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": ready,
                    "state": state(&container.name),
                })
            })
            .collect())
    }

    async fn write_status(&self, name: &str, status: Value) -> kube::Result<Pod> {
        self.pods().patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await
    }
}

/// `<pod>.<hex nanoseconds>`, as the kubelet names events: names sort in the order the events happened, which is
/// the order a list returns them in.
fn event_name(pod_name: &str) -> String {
    format!("{pod_name}.{:x}", Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

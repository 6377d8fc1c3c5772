//! One pod's life on the node: pull, create, start, probe, and report its container's end, writing the pod's status
//! and events as a kubelet does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Container, Event, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::probe::Readiness;
use super::translate::{self, ConfigError, Placement, RunPlan};
use super::{NODE_LABEL, Node, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL, docker};

/// How often the stand-in looks at a running container (a real kubelet's PLEG relists every second).
const RELIST: Duration = Duration::from_millis(250);
/// How long before a pull or a container configuration is tried again, at first; it doubles up to five minutes.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);

/// Runs `pod` until its container ends; aborted when the pod is deleted.
pub async fn run(node: Arc<Node>, pod: Pod) {
    let worker = Worker::new(node, pod);
    if let Err(error) = worker.live().await {
        tracing::warn!(%error, pod = worker.name, "the kubelet stand-in could not write a pod's status");
    }
}

struct Worker {
    node: Arc<Node>,
    pod: Pod,
    name: String,
    uid: String,
    container: Container,
}

/// A container that is not running yet, for this reason (`ErrImagePull`, `CreateContainerConfigError`).
struct Waiting {
    reason: &'static str,
    message: String,
}

impl Worker {
    fn new(node: Arc<Node>, pod: Pod) -> Worker {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let container = pod.spec.as_ref().and_then(|spec| spec.containers.first().cloned()).unwrap_or_default();
        Worker { node, pod, name, uid, container }
    }

    async fn live(&self) -> kube::Result<()> {
        self.write_status(self.waiting_status("ContainerCreating", "")).await?;
        self.retry_until_ok(|| self.pull()).await?;
        let plan = self.retry_until_ok(|| self.plan()).await?;
        let readiness = match Readiness::of(&self.container) {
            Ok(readiness) => readiness,
            Err(message) => {
                return self.report_waiting(Waiting { reason: "CreateContainerConfigError", message }).await;
            }
        };
        let id = match docker::run_with_env(&plan.arguments(), &plan.env).await {
            Ok(id) => id,
            Err(error) => {
                return self.report_waiting(Waiting { reason: "CreateContainerError", message: error.0 }).await;
            }
        };
        self.event("Normal", "Created", &format!("Created container: {}", self.container.name)).await;
        self.event("Normal", "Started", &format!("Started container {}", self.container.name)).await;
        let pod_ip = self.pod_ip(&id).await.unwrap_or_default();
        self.follow(&id, &pod_ip, readiness).await
    }

    /// Tries `step` until it succeeds, reporting each failure in the pod's status, with a kubelet's back-off.
    async fn retry_until_ok<T, F>(&self, step: impl Fn() -> F) -> kube::Result<T>
    where
        F: Future<Output = Result<T, Waiting>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match step().await {
                Ok(value) => return Ok(value),
                Err(waiting) => {
                    let pull_failed = waiting.reason == "ErrImagePull";
                    self.report_waiting(waiting).await?;
                    if pull_failed {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let message = format!("Back-off pulling image \"{}\"", self.image());
                        self.event("Normal", "BackOff", &message).await;
                        self.write_status(self.waiting_status("ImagePullBackOff", &message)).await?;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
    }

    async fn report_waiting(&self, waiting: Waiting) -> kube::Result<()> {
        let message = match waiting.reason {
            "ErrImagePull" => waiting.message.clone(),
            _ => format!("Error: {}", waiting.message),
        };
        self.event("Warning", "Failed", &message).await;
        self.write_status(self.waiting_status(waiting.reason, &waiting.message)).await
    }

    fn image(&self) -> String {
        self.container.image.clone().unwrap_or_default()
    }

    /// Makes the image present as the pull policy says (the default: always for `:latest` or no tag).
    async fn pull(&self) -> Result<(), Waiting> {
        let image = self.image();
        let present = docker::run(&["image", "inspect", "--format", "{{.Id}}", &image]).await.is_ok();
        let untagged_or_latest =
            !image.rsplit('/').next().unwrap_or_default().contains(':') || image.ends_with(":latest");
        let policy = self.container.image_pull_policy.as_deref().unwrap_or(if untagged_or_latest {
            "Always"
        } else {
            "IfNotPresent"
        });
        match (policy, present) {
            ("Never", false) => Err(Waiting {
                reason: "ErrImageNeverPull",
                message: format!("Container image \"{image}\" is not present with pull policy of Never"),
            }),
            ("Never" | "IfNotPresent", true) => {
                self.event("Normal", "Pulled", &format!("Container image \"{image}\" already present on machine"))
                    .await;
                Ok(())
            }
            _ => {
                self.event("Normal", "Pulling", &format!("Pulling image \"{image}\"")).await;
                let began = Instant::now();
                match docker::run(&["pull", "--quiet", &image]).await {
                    Ok(_) => {
                        let took = began.elapsed().as_secs_f64();
                        self.event("Normal", "Pulled", &format!("Successfully pulled image \"{image}\" in {took:.3}s"))
                            .await;
                        Ok(())
                    }
                    Err(error) => Err(Waiting {
                        reason: "ErrImagePull",
                        message: format!("failed to pull image \"{image}\": {error}"),
                    }),
                }
            }
        }
    }

    /// How to run the container, with its environment resolved from the pod and its Secrets.
    async fn plan(&self) -> Result<RunPlan, Waiting> {
        let config_error = |message: String| Waiting { reason: "CreateContainerConfigError", message };
        if self.pod.spec.as_ref().is_some_and(|spec| spec.containers.len() != 1) {
            return Err(config_error("the kubelet stand-in runs pods of exactly one container".into()));
        }
        let env = self.environment().await.map_err(config_error)?;
        let image_user = docker::run(&["image", "inspect", "--format", "{{.Config.User}}", &self.image()])
            .await
            .map_err(|error| config_error(error.0))?;
        let container_name =
            format!("k8s-{}-{}-{}", self.node.namespace, self.name, &self.uid[..self.uid.len().min(8)]);
        let labels = [
            (NODE_LABEL.to_string(), self.node.id.clone()),
            (POD_NAMESPACE_LABEL.to_string(), self.node.namespace.clone()),
            (POD_NAME_LABEL.to_string(), self.name.clone()),
            (POD_UID_LABEL.to_string(), self.uid.clone()),
        ];
        let placement = Placement {
            container_name: &container_name,
            network: &self.node.network,
            labels: &labels,
            image_user: &image_user,
        };
        translate::plan(&self.pod, &self.container, env, &placement)
            .map_err(|ConfigError(message)| config_error(message))
    }

    /// The container's environment: plain values, and values read from Secrets (`secretKeyRef`).
    async fn environment(&self) -> Result<Vec<(String, String)>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.node.client.clone(), &self.node.namespace);
        let mut env = Vec::new();
        for var in self.container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => value.clone(),
                (None, None) => String::new(),
                (None, Some(source)) => {
                    let Some(reference) = &source.secret_key_ref else {
                        return Err(format!("env {}: only secretKeyRef is resolved by the kubelet stand-in", var.name));
                    };
                    let secret = secrets.get_opt(&reference.name).await.map_err(|error| error.to_string())?;
                    let Some(secret) = secret else { return Err(format!("secret \"{}\" not found", reference.name)) };
                    let bytes = secret.data.unwrap_or_default().remove(&reference.key).map(|bytes| bytes.0);
                    let bytes = bytes.ok_or_else(|| {
                        format!(
                            "couldn't find key {} in Secret {}/{}",
                            reference.key, self.node.namespace, reference.name
                        )
                    })?;
                    String::from_utf8(bytes)
                        .map_err(|_| format!("secret {} key {} is not UTF-8", reference.name, reference.key))?
                }
            };
            env.push((var.name.clone(), value));
        }
        Ok(env)
    }

    async fn pod_ip(&self, container: &str) -> Result<String, docker::DockerError> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.node.network);
        docker::run(&["container", "inspect", "--format", &format, container]).await
    }

    /// Reports the running container's readiness until it ends, then its end.
    async fn follow(&self, container: &str, pod_ip: &str, readiness: Option<Readiness>) -> kube::Result<()> {
        let mut ready = readiness.is_none();
        let started = docker::state(container).await.map(|state| state.started_at).unwrap_or_else(|_| timestamp());
        self.write_status(self.running_status(container, pod_ip, &started, ready)).await?;
        let mut next_probe = Instant::now() + readiness.as_ref().map_or(Duration::ZERO, |probe| probe.initial_delay);
        let mut failures = 0;
        loop {
            tokio::time::sleep(RELIST).await;
            let state = match docker::state(container).await {
                Ok(state) if state.running => state,
                Ok(state) => return self.write_status(self.terminated_status(container, pod_ip, &state)).await,
                Err(_) => return self.write_status(self.vanished_status(pod_ip)).await,
            };
            let Some(probe) = readiness.as_ref().filter(|_| Instant::now() >= next_probe) else { continue };
            next_probe = Instant::now() + probe.period;
            let passes = probe.passes(pod_ip, container).await;
            failures = if passes { 0 } else { failures + 1 };
            let now_ready = passes || (ready && failures < probe.failure_threshold);
            if now_ready != ready {
                ready = now_ready;
                self.write_status(self.running_status(container, pod_ip, &state.started_at, ready)).await?;
            }
        }
    }

    fn waiting_status(&self, reason: &str, message: &str) -> Value {
        let mut waiting = json!({"reason": reason});
        if !message.is_empty() {
            waiting["message"] = json!(message);
        }
        self.status("Pending", None, false, None, json!({"waiting": waiting}))
    }

    fn running_status(&self, container: &str, pod_ip: &str, started_at: &str, ready: bool) -> Value {
        self.status("Running", Some(pod_ip), ready, Some(container), json!({"running": {"startedAt": started_at}}))
    }

    fn terminated_status(&self, container: &str, pod_ip: &str, state: &docker::ContainerState) -> Value {
        let reason = match (state.oom_killed, state.exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            (false, _) => "Error",
        };
        let phase = if state.exit_code == 0 { "Succeeded" } else { "Failed" };
        let terminated = json!({
            "reason": reason,
            "exitCode": state.exit_code,
            "startedAt": state.started_at,
            "finishedAt": state.finished_at,
            "containerID": format!("docker://{container}"),
        });
        self.status(phase, Some(pod_ip), false, Some(container), json!({"terminated": terminated}))
    }

    /// The container was removed behind the kubelet's back: what a kubelet says when it lost track of one.
    fn vanished_status(&self, pod_ip: &str) -> Value {
        let terminated = json!({
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "exitCode": 137,
            "finishedAt": timestamp(),
        });
        self.status("Failed", Some(pod_ip), false, None, json!({"terminated": terminated}))
    }

    fn status(&self, phase: &str, pod_ip: Option<&str>, ready: bool, container: Option<&str>, state: Value) -> Value {
        let now = timestamp();
        let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": now});
        let mut container_status = json!({
            "name": self.container.name,
            "image": self.image(),
            "imageID": "",
            "ready": ready,
            "started": state.get("running").is_some(),
            "restartCount": 0,
            "state": state,
        });
        if let Some(container) = container {
            container_status["containerID"] = json!(format!("docker://{container}"));
        }
        let mut status = json!({
            "phase": phase,
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": [container_status],
        });
        if let Some(ip) = pod_ip.filter(|ip| !ip.is_empty()) {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        status
    }

    async fn write_status(&self, status: Value) -> kube::Result<()> {
        let patch = Patch::Merge(json!({"status": status}));
        self.node.pods().patch_status(&self.name, &PatchParams::default(), &patch).await.map(drop)
    }

    /// Records an event about the pod's container, from the kubelet; as a kubelet's, best effort.
    async fn event(&self, kind: &str, reason: &str, message: &str) {
        if let Err(error) = self.try_event(kind, reason, message).await {
            tracing::warn!(%error, pod = self.name, reason, "the kubelet stand-in could not record an event");
        }
    }

    async fn try_event(&self, kind: &str, reason: &str, message: &str) -> kube::Result<()> {
        let now = timestamp();
        // Named as a kubelet names them, after the time in nanoseconds, so listing them by name lists them in order.
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{}.{nanos:x}", self.name), "namespace": self.node.namespace},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": self.node.namespace,
                "name": self.name,
                "uid": self.uid,
                "fieldPath": format!("spec.containers{{{}}}", self.container.name),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.node.network},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))
        .map_err(kube::Error::SerdeError)?;
        let events: Api<Event> = Api::namespaced(self.node.client.clone(), &self.node.namespace);
        events.create(&PostParams::default(), &event).await.map(drop)
    }
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

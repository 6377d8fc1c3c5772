//! A kubelet stand-in that runs pods as real Docker containers.
//!
//! No kubelet can run here, but Docker can. The stand-in watches pods through the API server with a kube-rs client,
//! as a node's kubelet does, and runs each pod's container with `docker run`, translating what the pod asks for
//! (image, environment with secret values, user, read-only root, capabilities, seccomp, limits, emptyDir mounts)
//! so the hardening a test sees from inside the container is the hardening the pod asked for. It writes the pod's
//! status through the status subresource (phase, pod IP, readiness from the pod's own probe, container states with a
//! kubelet's reasons) and the kubelet's events, and removes the container when the pod is deleted.
//!
//! What it does not do, ADR 0023 lists (no NetworkPolicy enforcement, no restarts, one container per pod).

mod docker;
mod pod;
mod probe;
mod translate;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

pub use docker::DockerError;

use crate::{FakeApiServer, Options};

/// The label on every container the stand-in runs, whose value is the stand-in's own id.
const NODE_LABEL: &str = "io.streamspace.kubelet-standin";
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// A running kubelet stand-in: one node, its pods on a Docker network of their own. Dropping it removes its
/// containers and its network.
pub struct DockerKubelet {
    node: Arc<Node>,
    task: JoinHandle<()>,
}

/// A fake API server with a kubelet stand-in on it: a one-node cluster whose pods really run. Its fields drop in
/// order, so the containers go before the server.
pub struct FakeCluster {
    pub kubelet: DockerKubelet,
    pub client: kube::Client,
    pub server: FakeApiServer,
}

impl FakeCluster {
    /// Starts a fake API server and a kubelet stand-in running the pods of `namespace`; fails with what is missing.
    pub async fn start(options: Options, namespace: &str) -> Result<FakeCluster, String> {
        let server = FakeApiServer::start_with(options).await.map_err(|error| format!("a fake API server: {error}"))?;
        let client = server.client().map_err(|error| format!("a client of the fake API server: {error}"))?;
        let kubelet = DockerKubelet::start(client.clone(), namespace)
            .await
            .map_err(|error| format!("{error}\nthe kubelet stand-in needs Docker: run scripts/images/docker-up.sh"))?;
        Ok(FakeCluster { kubelet, client, server })
    }
}

/// What every pod worker shares: the API, the node's identity and network.
struct Node {
    client: kube::Client,
    namespace: String,
    id: String,
    network: String,
    workers: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl DockerKubelet {
    /// Creates the node's network and starts running the pods of `namespace`.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<DockerKubelet, DockerError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let network = format!("ss-kubelet-{id}");
        docker::run(&["network", "create", "--label", &format!("{NODE_LABEL}={id}"), &network]).await?;
        let node = Arc::new(Node { client, namespace: namespace.into(), id, network, workers: Mutex::default() });
        let task = tokio::spawn(Arc::clone(&node).watch_pods());
        Ok(DockerKubelet { node, task })
    }

    /// The Docker network the pods are on (the cluster's pod network: every pod reaches every other).
    pub fn network(&self) -> &str {
        &self.node.network
    }

    /// The containers (ids) the stand-in runs or ran for pods named `pod_name`, running or not.
    pub async fn containers_of(&self, pod_name: &str) -> Result<Vec<String>, DockerError> {
        docker::containers_labelled(&self.pod_labels(pod_name), false).await
    }

    /// The containers (ids) of pods named `pod_name` that are running.
    pub async fn running_containers_of(&self, pod_name: &str) -> Result<Vec<String>, DockerError> {
        docker::containers_labelled(&self.pod_labels(pod_name), true).await
    }

    fn pod_labels<'a>(&'a self, pod_name: &'a str) -> [(&'a str, &'a str); 3] {
        [(NODE_LABEL, &self.node.id), (POD_NAMESPACE_LABEL, &self.node.namespace), (POD_NAME_LABEL, pod_name)]
    }

    /// Removes every container the stand-in made, with its volumes, from `Drop`.
    fn remove_containers_blocking(&self) {
        let label = format!("label={NODE_LABEL}={}", self.node.id);
        if let Ok(containers) = docker::run_blocking(&["ps", "--all", "--quiet", "--filter", &label]) {
            let ids: Vec<&str> = containers.lines().collect();
            if !ids.is_empty() {
                let _ = docker::run_blocking(&[&["rm", "--force", "--volumes"], ids.as_slice()].concat());
            }
        }
    }
}

impl Drop for DockerKubelet {
    fn drop(&mut self) {
        self.task.abort();
        for (_, worker) in self.node.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).drain() {
            worker.abort();
        }
        // A worker aborted during `docker run` has had its CLI killed, but the engine may still create and
        // start the container after a sweep. The network cannot be removed while a running container is on it,
        // and once it is gone no new container can join it: sweep until it is, and once more for one created
        // but not started.
        for _ in 0..DROP_SWEEPS {
            self.remove_containers_blocking();
            match docker::run_blocking(&["network", "rm", &self.node.network]) {
                Err(DockerError(message)) if message.contains("active endpoints") => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                _ => break,
            }
        }
        self.remove_containers_blocking();
    }
}

/// Sweeps of a dropped stand-in's containers before its network is left behind, 100 ms apart.
const DROP_SWEEPS: usize = 50;

impl Node {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Follows the namespace's pods for as long as the stand-in lives, re-listing when a watch breaks.
    async fn watch_pods(self: Arc<Self>) {
        let mut listed = HashSet::new();
        let mut events = watcher(self.pods(), watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(pod)) => {
                    listed.extend(pod.metadata.uid.clone());
                    self.observe(pod);
                }
                Ok(watcher::Event::InitDone) => self.forget_all_but(&listed),
                Ok(watcher::Event::Apply(pod)) => self.observe(pod),
                Ok(watcher::Event::Delete(pod)) => self.end(pod.metadata.uid.as_deref().unwrap_or_default(), None),
                Err(error) => tracing::debug!(%error, "the kubelet stand-in's pod watch broke; it watches again"),
            }
        }
    }

    /// A pod seen: run it if it is new, end it if it is being deleted.
    fn observe(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        if pod.metadata.deletion_timestamp.is_some() {
            self.end(&uid, pod.metadata.name.clone());
            return;
        }
        let mut workers = self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.entry(uid).or_insert_with(|| tokio::spawn(pod::run(Arc::clone(self), pod)));
    }

    /// Pods deleted while the watch was down.
    fn forget_all_but(self: &Arc<Self>, listed: &HashSet<String>) {
        let gone: Vec<String> = {
            let workers = self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            workers.keys().filter(|uid| !listed.contains(*uid)).cloned().collect()
        };
        for uid in gone {
            self.end(&uid, None);
        }
    }

    /// Stops the pod's worker and removes its container; a pod still terminating (`name`) is then deleted for
    /// good, as a kubelet confirms a pod's containers are gone.
    fn end(self: &Arc<Self>, uid: &str, name: Option<String>) {
        let worker = self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(uid);
        let Some(worker) = worker else { return };
        worker.abort();
        let (node, uid) = (Arc::clone(self), uid.to_string());
        tokio::spawn(async move {
            if let Err(error) = node.remove_containers(&uid).await {
                tracing::warn!(%error, uid, "the kubelet stand-in could not remove a pod's container");
            }
            if let Some(name) = name {
                let now = kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                let _ = node.pods().delete(&name, &now).await;
            }
        });
    }

    async fn remove_containers(&self, uid: &str) -> Result<(), DockerError> {
        for container in docker::containers_labelled(&[(NODE_LABEL, &self.id), (POD_UID_LABEL, uid)], false).await? {
            docker::run(&["rm", "--force", "--volumes", &container]).await?;
        }
        Ok(())
    }
}

//! The runtime conformance suite on the Kubernetes runtime: the real `KubernetesRuntime` over a real kube-rs
//! client, against the fake API server, with the kubelet stand-in running its pods as Docker containers.
//!
//! The isolation checks (`runtime_isolation_tests!`) do not run here: the stand-in enforces no NetworkPolicy (a
//! CNI does that), so on its one flat pod network they would fail for a reason that is not the runtime's
//! (ADR 0023).
//! Needs a running Docker engine (`scripts/images/docker-up.sh`) and the fixture image; without them these tests
//! fail, they never skip.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::PostParams;
use kube::{Api, CustomResourceExt};
use serde::de::DeserializeOwned;
use streamspace_agent::Runtime;
use streamspace_agent::conformance::{FIXTURE, Harness, Reasons};
use streamspace_k8s::crd::{Session, Template};
use streamspace_k8s::reconcile::object_name;
use streamspace_k8s::{KubernetesOptions, KubernetesRuntime};
use streamspace_kube_fake::docker_kubelet::FakeCluster;
use streamspace_kube_fake::{Options, ResourceKind};
use streamspace_proto::hub::Capacity;
use uuid::Uuid;

const NAMESPACE: &str = "sessions";
/// What the operator states the agent may hold (a least-privilege agent cannot read the nodes).
const CAPACITY: Capacity = Capacity { max_sessions: 20, cpu_millis: 8000, memory_mb: 16384 };

/// The suite's view of a one-node cluster: a session's workload is its pod's container on the kubelet stand-in.
struct KubernetesHarness {
    runtime: KubernetesRuntime,
    cluster: FakeCluster,
}

async fn harness() -> KubernetesHarness {
    let cluster = FakeCluster::start(Options::default(), NAMESPACE).await.unwrap_or_else(|error| panic!("{error}"));
    for definition in [Session::crd(), Template::crd()] {
        cluster.server.register(ResourceKind::from_definition(&definition).expect("a storage version"));
    }
    let options = KubernetesOptions { capacity: CAPACITY, ..KubernetesOptions::new(NAMESPACE) };
    let runtime = KubernetesRuntime::new(cluster.client.clone(), options);
    runtime.bind(Uuid::new_v4());
    KubernetesHarness { runtime, cluster }
}

impl KubernetesHarness {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.cluster.client.clone(), NAMESPACE)
    }

    /// `kind name` if an object of that kind exists under the session's name.
    async fn object<K>(&self, kind: &str, session_id: Uuid) -> Option<String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = object_name(session_id);
        let found =
            self.api::<K>().get_opt(&name).await.unwrap_or_else(|error| panic!("reading {kind} {name}: {error}"));
        found.map(|_| format!("{kind} {name}"))
    }

    async fn running_container(&self, session_id: Uuid) -> String {
        let containers = self.cluster.kubelet.running_containers_of(&object_name(session_id)).await.unwrap();
        assert_eq!(containers.len(), 1, "one running container for session {session_id}: {containers:?}");
        containers[0].clone()
    }
}

fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[async_trait]
impl Harness for KubernetesHarness {
    fn runtime(&self) -> &dyn Runtime {
        &self.runtime
    }

    fn max_sessions(&self) -> i64 {
        CAPACITY.max_sessions
    }

    fn reasons(&self) -> Reasons {
        Reasons {
            killed: "the container exited unexpectedly with code 137 (killed by signal 9)".into(),
            crashed_while_starting: "the container exited unexpectedly with code 1".into(),
            missing_image: "the image cannot be pulled".into(),
            root_refused: "the session's container cannot be started (CreateContainerConfigError): \
                           container has runAsNonRoot and image will run as root"
                .into(),
        }
    }

    /// Everything of a test's sessions lives in the fake API server and on the stand-in, which go with the harness.
    fn new_session(&self) -> Uuid {
        Uuid::new_v4()
    }

    async fn running_workloads(&self, session_id: Uuid) -> usize {
        self.cluster.kubelet.running_containers_of(&object_name(session_id)).await.unwrap().len()
    }

    async fn remains(&self, session_id: Uuid) -> Vec<String> {
        let objects = [
            self.object::<Session>("Session", session_id).await,
            self.object::<Pod>("Pod", session_id).await,
            self.object::<Service>("Service", session_id).await,
            self.object::<NetworkPolicy>("NetworkPolicy", session_id).await,
            self.object::<Secret>("Secret", session_id).await,
        ];
        let containers = self.cluster.kubelet.containers_of(&object_name(session_id)).await.unwrap();
        objects.into_iter().flatten().chain(containers.into_iter().map(|id| format!("container {id}"))).collect()
    }

    async fn kill(&self, session_id: Uuid) {
        docker(&["kill", &self.running_container(session_id).await]);
    }

    async fn exec(&self, session_id: Uuid, command: &[&str]) -> String {
        let container = self.running_container(session_id).await;
        docker(&[&["exec", container.as_str()], command].concat())
    }

    async fn create_stranger(&self, session_id: Uuid) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": object_name(session_id), "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "stranger", "image": FIXTURE, "imagePullPolicy": "IfNotPresent"}]},
        }))
        .unwrap();
        self.api::<Pod>().create(&PostParams::default(), &pod).await.unwrap();
    }
}

streamspace_agent::runtime_conformance_tests!(harness);

//! The Kubernetes agent for real: the built binary as control plane and as `agent kubernetes` processes, on a
//! one-node cluster this test hosts (the fake API server of `streamspace-kube-fake`, found through a kubeconfig,
//! with the kubelet stand-in running pods as Docker containers of the fixture image), driven through the REST
//! API and the session proxy as a user would.
//!
//! Needs a running Docker engine (`scripts/images/docker-up.sh`) and the fixture image; without them these
//! tests fail, they never skip (ADR 0019).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Api as KubeApi, CustomResourceExt};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use streamspace_k8s::crd::{Session, Template};
use streamspace_kube_fake::docker_kubelet::FakeCluster;
use streamspace_kube_fake::{Options, ResourceKind};

const NAMESPACE: &str = "sessions";
/// The token the chart's Secret gives both the control plane and the agent replicas.
const AGENT_TOKEN: &str = "ssa_kubernetes-e2e-agent-token-0123456789";
/// The standby must lead and reach the control plane within this time of the leader's death (issue 9).
const FAILOVER: Duration = Duration::from_secs(15);

/// A control plane that registers the Kubernetes agent from its settings, the cluster, a fixture template and a
/// member; agents are started by each test.
struct Setup {
    cluster: FakeCluster,
    kubeconfig: PathBuf,
    plane: ControlPlane,
    admin: Api,
    member: Api,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let cluster = FakeCluster::start(Options::default(), NAMESPACE).await.unwrap_or_else(|error| panic!("{error}"));
    // What installing the chart's CRDs does.
    for definition in [Session::crd(), Template::crd()] {
        cluster.server.register(ResourceKind::from_definition(&definition).expect("a storage version"));
    }
    let kubeconfig = write_kubeconfig(dir.path(), &cluster.server.url());
    // Session endpoints must lie in the pod network, as the chart states it.
    let pod_network =
        docker(&["network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}}", cluster.kubelet.network()]);
    let env = [
        ("STREAMSPACE_KUBERNETES_AGENT_TOKEN", AGENT_TOKEN),
        ("STREAMSPACE_KUBERNETES_AGENT_ENDPOINT_CIDRS", pod_network.as_str()),
    ];
    let plane = ControlPlane::start_with_env(dir.path(), &["--heartbeat-interval", "1"], &env).await;
    let admin = plane.admin().await;
    let template = json!({"name": "fixture", "display_name": "Fixture", "image": FIXTURE_IMAGE, "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16});
    admin.post("/api/v1/templates", template).await;
    let user = json!({"username": "member", "password": "password-123", "role": "member"});
    admin.post("/api/v1/users", user).await;
    let member = Api::login(&plane.api, "member", "password-123").await;
    Setup { cluster, kubeconfig, plane, admin, member, dir }
}

/// A kubeconfig as an operator's laptop has one: the cluster's URL (plain HTTP), no credentials, the sessions'
/// namespace as the context's.
fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\nusers:\n\
         - name: agent\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: agent\n\
         \x20   namespace: {NAMESPACE}\ncurrent-context: fake\n"
    );
    std::fs::write(&path, config).unwrap();
    path
}

impl Setup {
    /// A `streamspace agent kubernetes` replica named `identity`, logging to `<identity>.log`.
    fn agent(&self, identity: &str) -> Agent {
        let kubeconfig = self.kubeconfig.display().to_string();
        Agent::start_with(
            &["agent", "kubernetes", "--server", &self.plane.api, "--identity", identity],
            &[("KUBECONFIG", &kubeconfig)],
            AGENT_TOKEN,
            self.dir.path().join(format!("{identity}.log")),
        )
    }

    fn api<K>(&self) -> KubeApi<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        KubeApi::namespaced(self.cluster.client.clone(), NAMESPACE)
    }

    async fn object<K>(&self, name: &str) -> Option<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>().get_opt(name).await.unwrap_or_else(|error| panic!("reading {name}: {error}"))
    }

    /// The kinds of the session's objects that exist in the cluster, and its containers on the node.
    async fn remains(&self, session_id: &str) -> Vec<String> {
        let name = format!("ss-{session_id}");
        let objects = [
            self.object::<Session>(&name).await.map(|_| "Session"),
            self.object::<Pod>(&name).await.map(|_| "Pod"),
            self.object::<Service>(&name).await.map(|_| "Service"),
            self.object::<NetworkPolicy>(&name).await.map(|_| "NetworkPolicy"),
            self.object::<Secret>(&name).await.map(|_| "Secret"),
        ];
        let containers = self.cluster.kubelet.containers_of(&name).await.unwrap();
        objects
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .chain(containers.into_iter().map(|id| format!("container {id}")))
            .collect()
    }

    /// The uid of the session's pod and how many containers run for it.
    async fn pod_and_containers(&self, session_id: &str) -> (String, usize) {
        let name = format!("ss-{session_id}");
        let pod = self.object::<Pod>(&name).await.unwrap_or_else(|| panic!("pod {name} exists"));
        let running = self.cluster.kubelet.running_containers_of(&name).await.unwrap();
        (pod.metadata.uid.unwrap(), running.len())
    }

    /// The identity holding the agents' Lease, once one does.
    async fn leader(&self) -> String {
        eventually("an agent replica to hold the Lease", FAILOVER, || async {
            let lease = self.object::<Lease>("streamspace-agent").await?;
            lease.spec?.holder_identity.filter(|holder| !holder.is_empty())
        })
        .await
    }
}

/// Opens the session with a connect ticket; returns the session cookie (`name=value`).
async fn open(plane: &ControlPlane, api: &Api, id: &str) -> String {
    let url = api.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&plane.session_origin(id)), "the session's own origin: {url}");
    let response = session_client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

/// A request through the session proxy, answered by the fixture's echo in the session's container.
async fn echo_through_proxy(plane: &ControlPlane, id: &str, cookie: &str) {
    let response = session_client()
        .get(format!("{}/api/v1/http/{id}/echo/kubernetes?via=proxy", plane.session_origin(id)))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the proxy reaches the pod");
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str()),
        (Some("/echo/kubernetes"), Some("via=proxy")),
        "{echo}"
    );
}

/// What `kubectl get sessions` prints for the session: each printer column of the definition, by name.
fn printer_columns(session: &Session) -> Vec<(String, Value)> {
    let object = serde_json::to_value(session).unwrap();
    let definition = Session::crd();
    let columns = definition.spec.versions[0].additional_printer_columns.clone().unwrap_or_default();
    columns
        .into_iter()
        .map(|column| {
            let pointer = column.json_path.replace('.', "/");
            (column.name, object.pointer(&pointer).cloned().unwrap_or(Value::Null))
        })
        .collect()
}

async fn stop(api: &Api, id: &str) {
    let (status, body) = api.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    api.wait_for_state(id, "stopped", START).await;
}

async fn assert_nothing_remains(s: &Setup, id: &str) {
    eventually(&format!("session {id}'s objects and container to go"), START, || async {
        s.remains(id).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_the_kubernetes_agent_and_is_reachable_through_the_proxy() {
    let s = setup().await;
    let _agent = s.agent("agent-0");
    s.admin.wait_for_agent_online("kubernetes").await;
    let agents = s.admin.get("/api/v1/agents").await;
    let agent = &agents["items"].as_array().unwrap()[0];
    assert_eq!(agent["platform"], "kubernetes", "{agent}");

    let id = running_session(&s.member).await;
    let cookie = open(&s.plane, &s.member, &id).await;
    echo_through_proxy(&s.plane, &id, &cookie).await;

    // `kubectl get sessions`: the owner, the template and the phase.
    let session = s.object::<Session>(&format!("ss-{id}")).await.expect("the agent wrote the Session");
    let columns = printer_columns(&session);
    let member_id = s.member.get("/api/v1/me").await["id"].clone();
    let template = s.object::<Template>(&session.spec.template).await.expect("the Session's Template exists");
    assert_eq!(template.spec.image, FIXTURE_IMAGE);
    let shown: Vec<(&str, &Value)> = columns.iter().map(|(name, value)| (name.as_str(), value)).collect();
    assert_eq!(
        shown[..3],
        [("Owner", &member_id), ("Template", &json!(session.spec.template)), ("Phase", &json!("Running"))],
        "{columns:?}"
    );
    assert!(columns[3].1.is_string(), "an age: {columns:?}");
    assert_eq!(s.pod_and_containers(&id).await.1, 1, "one container runs the session");

    stop(&s.member, &id).await;
    assert_nothing_remains(&s, &id).await;
    let refused = session_client()
        .get(format!("{}/api/v1/http/{id}/", s.plane.session_origin(&id)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND, "a stopped session is not proxied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_within_15_s_of_the_leader_s_death_and_the_session_stays() {
    let s = setup().await;
    let mut replicas = [("agent-a", s.agent("agent-a")), ("agent-b", s.agent("agent-b"))];
    s.admin.wait_for_agent_online("kubernetes").await;
    let leader = s.leader().await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.plane, &s.member, &id).await;
    echo_through_proxy(&s.plane, &id, &cookie).await;
    let (pod_before, _) = s.pod_and_containers(&id).await;

    let (dead, standby) = if replicas[0].0 == leader { (0, 1) } else { (1, 0) };
    assert_eq!(replicas[dead].0, leader, "the leader is one of the replicas");
    let killed_at = Instant::now();
    replicas[dead].1.kill();
    replicas[standby].1.wait_for_log("connected to the control plane", FAILOVER).await;
    let took_over_in = killed_at.elapsed();
    assert_eq!(s.leader().await, replicas[standby].0, "the standby holds the Lease");
    eprintln!("the standby reached the control plane {took_over_in:?} after the leader's SIGKILL");

    s.admin.wait_for_agent_online("kubernetes").await;
    assert_eq!(s.member.session(&id).await["state"], "running", "the session survives the failover");
    echo_through_proxy(&s.plane, &id, &cookie).await;
    assert_eq!(s.pod_and_containers(&id).await, (pod_before, 1), "the same pod, no second one");

    // The new leader runs the session's life: its stop removes everything.
    stop(&s.member, &id).await;
    assert_nothing_remains(&s, &id).await;
}

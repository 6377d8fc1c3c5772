//! The kubelet stand-in: pods written through the fake API server become real Docker containers running what the
//! pod says, their status comes back as a kubelet writes it, and deleting a pod removes its container.
//!
//! Needs a running Docker engine (`scripts/images/docker-up.sh`) and the fixture image
//! (`scripts/images/build.sh fixture`); without them these tests fail, they never skip.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use streamspace_kube_fake::Options;
use streamspace_kube_fake::docker_kubelet::FakeCluster;

const NAMESPACE: &str = "sessions";
const FIXTURE: &str = "streamspace/fixture:latest";
const DEADLINE: Duration = Duration::from_secs(30);

/// The fake cluster, with what the tests do with it.
struct Cluster(FakeCluster);

impl std::ops::Deref for Cluster {
    type Target = FakeCluster;

    fn deref(&self) -> &FakeCluster {
        &self.0
    }
}

async fn cluster() -> Cluster {
    cluster_with(Options::default()).await
}

async fn cluster_with(options: Options) -> Cluster {
    Cluster(FakeCluster::start(options, NAMESPACE).await.unwrap_or_else(|error| panic!("{error}")))
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn create(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods().create(&PostParams::default(), &pod).await.unwrap()
    }

    /// The pod once `check` holds of it, failing after the deadline with the last status seen.
    async fn pod_when(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let began = std::time::Instant::now();
        loop {
            let pod = self.pods().get(name).await.unwrap();
            if check(&pod) {
                return pod;
            }
            assert!(began.elapsed() < DEADLINE, "{what}: {:#?}", pod.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn ready(&self, name: &str) -> Pod {
        self.pod_when(name, "the pod is ready", |pod| condition(pod, "Ready") == Some("True")).await
    }

    async fn container(&self, name: &str) -> String {
        let containers = self.kubelet.containers_of(name).await.unwrap();
        assert_eq!(containers.len(), 1, "one container for pod {name}: {containers:?}");
        containers[0].clone()
    }

    async fn container_gone(&self, name: &str) {
        let began = std::time::Instant::now();
        while !self.kubelet.containers_of(name).await.unwrap().is_empty() {
            assert!(began.elapsed() < DEADLINE, "the container goes with the pod");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        let listed = events.list(&ListParams::default()).await.unwrap();
        listed
            .items
            .into_iter()
            .filter(|event| event.involved_object.name.as_deref() == Some(name))
            .filter_map(|event| event.reason)
            .collect()
    }
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a str> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|condition| condition.type_ == kind).map(|condition| condition.status.as_str())
}

/// The state (`waiting`, `running`, `terminated`) of the pod's one container, as JSON.
fn container_state(pod: &Pod) -> Value {
    let statuses = pod.status.as_ref().and_then(|status| status.container_statuses.clone()).unwrap_or_default();
    statuses.first().map(|status| serde_json::to_value(&status.state).unwrap()).unwrap_or_default()
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A session-like pod on the fixture: hardened as the agent's pods are, with a readiness probe on :8080.
fn hardened_pod(name: &str, image: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "containers": [{
                "name": "session",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "env": [
                    {"name": "FIXTURE_GREETING", "value": "hello there"},
                    {"name": "SESSION_SECRET", "valueFrom": {"secretKeyRef": {"name": "session-keys", "key": "token"}}},
                ],
                "ports": [{"name": "streamer", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/api/health", "port": "streamer"}, "periodSeconds": 2},
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
        },
    })
}

async fn with_secret(cluster: &Cluster) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "session-keys", "namespace": NAMESPACE},
        "data": {"token": "czNjcmV0IHZhbHVl"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), NAMESPACE).create(&PostParams::default(), &secret).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_as_a_hardened_container_that_becomes_ready_and_goes_with_the_pod() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    cluster.create(hardened_pod("ss-ready", FIXTURE)).await;

    let pod = cluster.ready("ss-ready").await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let pod_ip = status.pod_ip.expect("a pod IP");
    let page = http_get_root(&pod_ip, 8080).await;
    assert!(page.contains("StreamSpace fixture"), "{page}");
    assert!(cluster.event_reasons("ss-ready").await.contains(&"Pulled".to_string()));

    let container = cluster.container("ss-ready").await;
    let environ = docker(&["exec", &container, "cat", "/proc/1/environ"]);
    assert!(environ.split('\0').any(|var| var == "SESSION_SECRET=s3cret value"), "the secret's value: {environ:?}");
    let inspect = docker(&["inspect", "--format", "{{json .Config.Cmd}} {{json .Args}}", &container]);
    assert!(!inspect.contains("s3cret"), "the secret is not on the container's command line: {inspect}");
    let proc_status = docker(&["exec", &container, "cat", "/proc/1/status"]);
    for (field, expected) in [("CapEff", "0000000000000000"), ("NoNewPrivs", "1"), ("Seccomp", "2"), ("Uid", "1000")] {
        let line = proc_status.lines().find(|line| line.starts_with(&format!("{field}:"))).unwrap();
        assert_eq!(line.split_whitespace().nth(1), Some(expected), "{line}");
    }
    let limits = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.ReadonlyRootfs}}",
        &container,
    ]);
    assert_eq!(limits, "500000000 268435456 true");

    cluster.pods().delete("ss-ready", &DeleteParams::default()).await.unwrap();
    cluster.container_gone("ss-ready").await;
}

/// A pod deleted gracefully stays, terminating, until its kubelet has removed its container and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_pod_goes_once_its_container_is_removed() {
    let options = Options { pod_termination: Some(Duration::from_secs(600)), ..Options::default() };
    let cluster = cluster_with(options).await;
    with_secret(&cluster).await;
    cluster.create(hardened_pod("ss-terminating", FIXTURE)).await;
    cluster.ready("ss-terminating").await;

    cluster.pods().delete("ss-terminating", &DeleteParams::default()).await.unwrap();
    cluster.container_gone("ss-terminating").await;
    let began = std::time::Instant::now();
    while cluster.pods().get_opt("ss-terminating").await.unwrap().is_some() {
        assert!(began.elapsed() < DEADLINE, "the pod is gone long before its grace period ends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_without_a_seccomp_profile_runs_unconfined_as_on_a_default_kubelet() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    let mut pod = hardened_pod("ss-unconfined", FIXTURE);
    pod["spec"]["securityContext"].as_object_mut().unwrap().remove("seccompProfile");
    cluster.create(pod).await;
    cluster.ready("ss-unconfined").await;
    let status = docker(&["exec", &cluster.container("ss-unconfined").await, "cat", "/proc/1/status"]);
    assert!(status.lines().any(|line| line == "Seccomp:\t0"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_reported_terminated_with_its_exit_code() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    cluster.create(hardened_pod("ss-killed", FIXTURE)).await;
    cluster.ready("ss-killed").await;

    let container = cluster.container("ss-killed").await;
    assert_eq!(cluster.kubelet.running_containers_of("ss-killed").await.unwrap(), std::slice::from_ref(&container));
    docker(&["kill", &container]);
    let pod = cluster
        .pod_when("ss-killed", "the pod failed", |pod| {
            pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        })
        .await;
    let terminated = &container_state(&pod)["terminated"];
    assert_eq!(
        (terminated["reason"].as_str(), terminated["exitCode"].as_i64()),
        (Some("Error"), Some(137)),
        "{terminated}"
    );
    assert_eq!(condition(&pod, "Ready"), Some("False"));
    assert_eq!(cluster.kubelet.running_containers_of("ss-killed").await.unwrap(), Vec::<String>::new());
    assert_eq!(cluster.kubelet.containers_of("ss-killed").await.unwrap(), [container], "kept until the pod goes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_reported_oom_killed() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    let mut pod = hardened_pod("ss-oom", FIXTURE);
    let container = &mut pod["spec"]["containers"][0];
    container["resources"]["limits"]["memory"] = json!("64Mi");
    container["command"] = json!(["python3", "-c", "data = bytearray(512 * 1024 * 1024)"]);
    cluster.create(pod).await;

    let pod = cluster.pod_when("ss-oom", "the pod failed", |pod| container_state(pod)["terminated"].is_object()).await;
    assert_eq!(container_state(&pod)["terminated"]["reason"], "OOMKilled");
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_waits_in_err_image_pull_then_image_pull_back_off() {
    let cluster = cluster().await;
    cluster.create(hardened_pod("ss-missing", "streamspace.invalid/no-such-image:1")).await;

    let waiting = |reason: &'static str| move |pod: &Pod| container_state(pod)["waiting"]["reason"] == reason;
    let pod = cluster.pod_when("ss-missing", "ErrImagePull", waiting("ErrImagePull")).await;
    let message = |pod: &Pod| container_state(pod)["waiting"]["message"].as_str().unwrap_or_default().to_string();
    let pulling = message(&pod);
    assert!(pulling.starts_with("failed to pull image \"streamspace.invalid/no-such-image:1\": "), "{pulling}");
    assert!(pulling.contains("no such host"), "the engine's reason: {pulling}");
    let backing_off = cluster.pod_when("ss-missing", "ImagePullBackOff", waiting("ImagePullBackOff")).await;
    assert_eq!(message(&backing_off), "Back-off pulling image \"streamspace.invalid/no-such-image:1\"");
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    let reasons = cluster.event_reasons("ss-missing").await;
    for reason in ["Pulling", "Failed", "BackOff"] {
        assert!(reasons.contains(&reason.to_string()), "{reason} in {reasons:?}");
    }
    assert!(cluster.kubelet.containers_of("ss-missing").await.unwrap().is_empty(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_an_image_that_would_run_as_root() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    cluster.create(hardened_pod("ss-root", "debian:bookworm-slim")).await;

    let pod = cluster
        .pod_when("ss-root", "CreateContainerConfigError", |pod| {
            container_state(pod)["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    let message = container_state(&pod)["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("container has runAsNonRoot and image will run as root"), "{message}");
    assert!(cluster.kubelet.containers_of("ss-root").await.unwrap().is_empty(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_keeps_the_container_from_being_created() {
    let cluster = cluster().await;
    cluster.create(hardened_pod("ss-nosecret", FIXTURE)).await;
    let pod = cluster
        .pod_when("ss-nosecret", "CreateContainerConfigError", |pod| {
            container_state(pod)["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(container_state(&pod)["waiting"]["message"], "secret \"session-keys\" not found");
}

/// `GET /` from the host (the node) to a pod, over plain TCP: what a client on the pod network sees.
async fn http_get_root(address: &str, port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((address, port)).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    page
}

/// A stand-in dropped while its pods start leaves nothing behind: the engine may create a container after
/// the worker that asked for it was aborted, and the network goes only once no container is on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_in_dropped_while_its_pods_start_leaves_no_container_or_network() {
    let cluster = cluster().await;
    with_secret(&cluster).await;
    let names: Vec<String> = (0..6).map(|n| format!("ss-dropped-{n}")).collect();
    for name in &names {
        cluster.create(hardened_pod(name, FIXTURE)).await;
    }
    let began = std::time::Instant::now();
    while cluster.kubelet.containers_of(&names[0]).await.unwrap().is_empty() {
        assert!(began.elapsed() < DEADLINE, "the first pod's container is created");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let network = cluster.kubelet.network().to_owned();
    drop(cluster);

    let inspected = Command::new("docker").args(["network", "inspect", &network]).output().unwrap();
    assert!(!inspected.status.success(), "the network {network} is gone");
    for name in &names {
        let left = docker(&["ps", "--all", "--quiet", "--filter", &format!("label=io.kubernetes.pod.name={name}")]);
        assert!(left.is_empty(), "pod {name} left containers {left}");
    }
}

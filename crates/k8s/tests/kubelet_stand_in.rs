//! The objects the reconciler writes for a session, through the fake API server, run by the kubelet stand-in as
//! real Docker containers: the pod the agent asks for really runs hardened, answers on its pod IP, and its
//! kubelet-written status reads as the states the control plane expects.
//!
//! Needs a running Docker engine (`scripts/images/docker-up.sh`) and the fixture image
//! (`scripts/images/build.sh fixture`); without them these tests fail, they never skip.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::PostParams;
use kube::{Api, CustomResourceExt};
use streamspace_agent::conformance::{fixture_spec, get};
use streamspace_k8s::crd::{Session, Template};
use streamspace_k8s::observe::pod_state;
use streamspace_k8s::reconcile::{SessionOptions, desired_pod, desired_secret, object_name, session_objects};
use streamspace_kube_fake::docker_kubelet::FakeCluster;
use streamspace_kube_fake::{Options, ResourceKind};
use streamspace_proto::hub::ActualState;
use uuid::Uuid;

const NAMESPACE: &str = "default";
const DEADLINE: Duration = Duration::from_secs(30);

/// The fake cluster, serving the CRDs.
struct Cluster {
    fake: FakeCluster,
}

async fn cluster() -> Cluster {
    let fake = FakeCluster::start(Options::default(), NAMESPACE).await.unwrap_or_else(|error| panic!("{error}"));
    for definition in [Session::crd(), Template::crd()] {
        fake.server.register(ResourceKind::from_definition(&definition).expect("a storage version"));
    }
    Cluster { fake }
}

impl Cluster {
    /// Writes a fixture session's Template, Session, Secret and pod as the reconciler makes them; its name.
    async fn session_with_a_credential(&self) -> String {
        let mut spec = fixture_spec(Uuid::new_v4());
        spec.env.insert("SESSION_TOKEN".into(), "s3cret value".into());
        let objects = session_objects(&spec, Uuid::new_v4()).unwrap();
        let create = PostParams::default();
        Api::<Template>::namespaced(self.fake.client.clone(), NAMESPACE)
            .create(&create, &objects.template)
            .await
            .unwrap();
        let session = Api::<Session>::namespaced(self.fake.client.clone(), NAMESPACE)
            .create(&create, &objects.session)
            .await
            .unwrap();
        let secret = desired_secret(&session, &objects.secret_env).unwrap();
        Api::<Secret>::namespaced(self.fake.client.clone(), NAMESPACE).create(&create, &secret).await.unwrap();
        let pod = desired_pod(&session, &objects.template, &SessionOptions::default()).unwrap();
        self.pods().create(&create, &pod).await.unwrap();
        object_name(spec.session_id)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.fake.client.clone(), NAMESPACE)
    }

    /// The session's state as the pod shows it, once `check` holds of it.
    async fn state_when(&self, name: &str, check: impl Fn(&ActualState) -> bool) -> ActualState {
        let began = Instant::now();
        loop {
            let state = pod_state(&self.pods().get(name).await.unwrap());
            if check(&state) {
                return state;
            }
            assert!(began.elapsed() < DEADLINE, "{name} is still {state:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn container(&self, name: &str) -> String {
        let containers = self.fake.kubelet.running_containers_of(name).await.unwrap();
        assert_eq!(containers.len(), 1, "{containers:?}");
        containers[0].clone()
    }
}

fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("docker").args(args).output().expect("the docker CLI runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcilers_pod_runs_hardened_and_answers_on_its_pod_ip() {
    let cluster = cluster().await;
    let name = cluster.session_with_a_credential().await;

    let state = cluster.state_when(&name, |state| matches!(state, ActualState::Running { .. })).await;
    let ActualState::Running { endpoint } = state else { unreachable!() };
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);

    let container = cluster.container(&name).await;
    let environ = docker(&["exec", &container, "cat", "/proc/1/environ"]);
    for var in ["FIXTURE_GREETING=hello there", "SESSION_TOKEN=s3cret value"] {
        assert!(environ.split('\0').any(|set| set == var), "{var} in {environ:?}");
    }
    let status = docker(&["exec", &container, "cat", "/proc/1/status"]);
    for (field, expected) in [("CapEff", "0000000000000000"), ("NoNewPrivs", "1"), ("Seccomp", "2"), ("Uid", "1000")] {
        let line = status.lines().find(|line| line.starts_with(&format!("{field}:"))).unwrap();
        assert_eq!(line.split_whitespace().nth(1), Some(expected), "{line}");
    }
    let writes = "import errno\nfor path in ('/etc/x', '/tmp/x', '/home/streamspace/x'):\n    try:\n        \
                  open(path, 'w').close(); print(path, 'ok')\n    except OSError as e:\n        \
                  print(path, errno.errorcode[e.errno])";
    let written = docker(&["exec", &container, "python3", "-c", writes]);
    assert_eq!(written, "/etc/x EROFS\n/tmp/x ok\n/home/streamspace/x ok", "only /tmp and the home are writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_session_container_reads_as_failed_in_the_docker_runtimes_words() {
    let cluster = cluster().await;
    let name = cluster.session_with_a_credential().await;
    cluster.state_when(&name, |state| matches!(state, ActualState::Running { .. })).await;

    docker(&["kill", &cluster.container(&name).await]);
    let state = cluster.state_when(&name, |state| matches!(state, ActualState::Failed { .. })).await;
    let reason = "the container exited unexpectedly with code 137 (killed by signal 9)";
    assert_eq!(state, ActualState::Failed { reason: reason.into() });
}

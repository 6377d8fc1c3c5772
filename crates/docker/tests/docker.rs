//! The Docker runtime against the real engine and the test fixture image (`streamspace/fixture:latest`).
//!
//! Needs a running engine (`scripts/images/docker-up.sh`) and the fixture (`scripts/images/build.sh fixture`);
//! without them these tests fail, they never skip.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use streamspace_agent::Runtime;
use streamspace_docker::{DockerOptions, DockerRuntime};
use streamspace_proto::hub::{ActualState, InventoryItem, SessionSpec};
use uuid::Uuid;

const FIXTURE: &str = "streamspace/fixture:latest";

/// Runs the docker CLI; its output, whatever the exit status.
fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI runs (scripts/images/docker-up.sh installs it)")
}

fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn exists(kind: &str, name: &str) -> bool {
    docker(&[kind, "inspect", name]).status.success()
}

async fn runtime_with(options: DockerOptions) -> DockerRuntime {
    let runtime = DockerRuntime::connect_local(options)
        .await
        .unwrap_or_else(|error| panic!("{error:#}\nthese tests need Docker: run scripts/images/docker-up.sh"));
    assert!(exists("image", FIXTURE), "the fixture image {FIXTURE} is missing: run scripts/images/build.sh fixture");
    runtime
}

async fn runtime() -> DockerRuntime {
    runtime_with(DockerOptions { start_timeout: Duration::from_secs(30), ..DockerOptions::default() }).await
}

/// A unique session whose container and network are removed when the test ends, passed or not.
struct Session {
    id: Uuid,
}

impl Session {
    fn new() -> Session {
        Session { id: Uuid::new_v4() }
    }

    fn container(&self) -> String {
        format!("ss-{}", self.id)
    }

    fn network(&self) -> String {
        format!("ss-net-{}", self.id)
    }

    fn spec(&self) -> SessionSpec {
        SessionSpec {
            session_id: self.id,
            org_id: Uuid::new_v4(),
            owner_id: Uuid::new_v4(),
            image: FIXTURE.into(),
            env: BTreeMap::from([("FIXTURE_GREETING".to_string(), "hello there".to_string())]),
            cpu_millis: 500,
            memory_mb: 256,
            shm_mb: 128,
            port: 8080,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.container()]);
        let _ = docker(&["network", "rm", &self.network()]);
    }
}

/// Records the progress a start reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<ActualState>>);

impl Recorder {
    fn report(&self) -> impl Fn(ActualState) + Send + Sync + '_ {
        |state| self.0.lock().unwrap().push(state)
    }

    fn phases(&self) -> Vec<String> {
        let states = self.0.lock().unwrap();
        states
            .iter()
            .filter_map(|state| match state {
                ActualState::Starting { phase, .. } => Some(phase.clone()),
                _ => None,
            })
            .collect()
    }
}

async fn start(runtime: &DockerRuntime, spec: &SessionSpec) -> String {
    runtime.start(spec, &|_| {}).await.unwrap_or_else(|error| panic!("start failed: {error:#}"))
}

async fn state_in_inventory(runtime: &DockerRuntime, session_id: Uuid) -> Option<ActualState> {
    let inventory = runtime.inventory().await.unwrap();
    inventory.into_iter().find(|item| item.session_id == session_id).map(|item: InventoryItem| item.state)
}

/// The next event about `session_id` within `wait`. Tests run in parallel, each with its own runtime, so every
/// runtime also sees the other tests' containers stop.
async fn event_for(
    events: &mut futures::stream::BoxStream<'static, (Uuid, ActualState)>,
    session_id: Uuid,
    wait: Duration,
) -> Option<ActualState> {
    let mine = async {
        while let Some((id, state)) = events.next().await {
            if id == session_id {
                return Some(state);
            }
        }
        None
    };
    tokio::time::timeout(wait, mine).await.ok().flatten()
}

async fn get(url: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(url).send().await.unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

#[tokio::test]
async fn capacity_reports_the_hosts_resources() {
    let runtime = runtime().await;
    let capacity = runtime.capacity().await.unwrap();
    assert_eq!(capacity.max_sessions, DockerOptions::default().max_sessions);
    assert!(capacity.cpu_millis >= 1000 && capacity.memory_mb >= 256, "{capacity:?}");
}

#[tokio::test]
async fn start_runs_the_session_and_its_endpoint_answers() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = session.spec();
    let recorder = Recorder::default();
    let endpoint = runtime.start(&spec, &recorder.report()).await.unwrap();
    assert_eq!(recorder.phases(), ["creating", "starting"], "the image is local: nothing to pull");
    assert!(endpoint.starts_with("http://") && endpoint.ends_with(":8080"), "{endpoint}");

    let page = get(&format!("{endpoint}/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("StreamSpace fixture"));

    let inspect: serde_json::Value = serde_json::from_str(&docker_ok(&["inspect", &session.container()])).unwrap();
    let container = &inspect[0];
    let host = &container["HostConfig"];
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 256 * 1024 * 1024);
    assert_eq!(host["ShmSize"], 128 * 1024 * 1024);
    assert_eq!(host["RestartPolicy"]["Name"], "no");
    assert_eq!(host["NetworkMode"], session.network());
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["streamspace.session"], session.id.to_string());
    assert_eq!(labels["streamspace.managed"], "true");
    assert_eq!(labels["streamspace.org"], spec.org_id.to_string());
    assert_eq!(labels["streamspace.owner"], spec.owner_id.to_string());
    let env = container["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|var| var == "FIXTURE_GREETING=hello there"), "{env:?}");
    let networks = container["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.keys().collect::<Vec<_>>(), [&session.network()], "on its own network only");

    // Idempotent: starting again reports the same endpoint and creates nothing.
    let again = Recorder::default();
    assert_eq!(runtime.start(&spec, &again.report()).await.unwrap(), endpoint);
    assert_eq!(again.phases(), Vec::<String>::new());
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));
}

#[tokio::test]
async fn hibernate_keeps_the_container_and_wake_brings_it_back() {
    let runtime = runtime().await;
    let mut events = runtime.events();
    let session = Session::new();
    start(&runtime, &session.spec()).await;

    runtime.hibernate(session.id).await.unwrap();
    assert_eq!(docker_ok(&["inspect", "-f", "{{.State.Status}}", &session.container()]), "exited");
    assert!(exists("network", &session.network()));
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Hibernated));
    runtime.hibernate(session.id).await.expect("hibernating twice is fine");

    let recorder = Recorder::default();
    let endpoint = runtime.wake(&session.spec(), &recorder.report()).await.unwrap();
    assert_eq!(recorder.phases(), ["starting"]);
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));

    // The requested exit was not reported as a failure.
    assert_eq!(event_for(&mut events, session.id, Duration::from_millis(500)).await, None);
}

#[tokio::test]
async fn stop_removes_the_container_and_its_network() {
    let runtime = runtime().await;
    let session = Session::new();
    start(&runtime, &session.spec()).await;
    assert!(exists("container", &session.container()) && exists("network", &session.network()));

    runtime.stop(session.id).await.unwrap();
    assert!(!exists("container", &session.container()), "container removed");
    assert!(!exists("network", &session.network()), "network removed");
    assert_eq!(state_in_inventory(&runtime, session.id).await, None);
    runtime.stop(session.id).await.expect("stopping what is gone is fine");
    runtime.remove(session.id).await.expect("removing what is gone is fine");
    let error = runtime.hibernate(session.id).await.unwrap_err();
    assert!(error.to_string().contains("no container to hibernate"), "{error:#}");

    // Waking a session whose container is gone recreates it from the spec.
    let endpoint = runtime.wake(&session.spec(), &|_| {}).await.unwrap();
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
}

#[tokio::test]
async fn inventory_lists_every_managed_session() {
    let runtime = runtime().await;
    let (running, hibernated) = (Session::new(), Session::new());
    let endpoint = start(&runtime, &running.spec()).await;
    start(&runtime, &hibernated.spec()).await;
    runtime.hibernate(hibernated.id).await.unwrap();
    // An unmanaged container is none of the agent's business.
    let stranger = Session::new();
    docker_ok(&["create", "--name", &stranger.container(), FIXTURE]);

    let inventory = runtime.inventory().await.unwrap();
    let of = |id| inventory.iter().find(|item| item.session_id == id).map(|item| item.state.clone());
    assert_eq!(of(running.id), Some(ActualState::Running { endpoint }));
    assert_eq!(of(hibernated.id), Some(ActualState::Hibernated));
    assert_eq!(of(stranger.id), None);
}

#[tokio::test]
async fn sessions_cannot_reach_each_other() {
    let runtime = runtime().await;
    let (a, b) = (Session::new(), Session::new());
    let endpoint_a = start(&runtime, &a.spec()).await;
    let endpoint_b = start(&runtime, &b.spec()).await;
    let address = |endpoint: &str| endpoint.trim_start_matches("http://").split_once(':').unwrap().0.to_string();
    let connect = |from: &Session, to: &str| {
        let script = format!("import socket; socket.create_connection(('{to}', 8080), timeout=3).close()");
        docker(&["exec", &from.container(), "python3", "-c", &script]).status.success()
    };
    assert!(connect(&a, &address(&endpoint_a)), "control: a reaches its own streamer");
    assert!(!connect(&a, &address(&endpoint_b)), "a must not reach b");
    assert!(!connect(&b, &address(&endpoint_a)), "b must not reach a");
}

#[tokio::test]
async fn a_killed_container_is_reported_failed() {
    let runtime = runtime().await;
    let mut events = runtime.events();
    let session = Session::new();
    start(&runtime, &session.spec()).await;

    docker_ok(&["kill", &session.container()]);
    let state = event_for(&mut events, session.id, Duration::from_secs(3)).await.expect("an event within 3 s");
    let reason = "the container exited unexpectedly with code 137 (killed by signal 9)";
    assert_eq!(state, ActualState::Failed { reason: reason.into() });
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Failed { reason: reason.into() }));
}

#[tokio::test]
async fn a_streamer_that_crashes_while_starting_fails_fast() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = SessionSpec { env: BTreeMap::from([("PORT".to_string(), "not-a-port".to_string())]), ..session.spec() };
    let began = std::time::Instant::now();
    let error = runtime.start(&spec, &|_| {}).await.unwrap_err();
    assert_eq!(error.to_string(), "the container exited unexpectedly with code 1 while starting");
    assert!(began.elapsed() < Duration::from_secs(10), "did not wait for the start timeout");
}

#[tokio::test]
async fn a_missing_image_fails_with_a_clear_reason() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = SessionSpec { image: "streamspace.invalid/no-such-image:1".into(), ..session.spec() };
    let recorder = Recorder::default();
    let error = format!("{:#}", runtime.start(&spec, &recorder.report()).await.unwrap_err());
    assert!(error.starts_with("pulling image streamspace.invalid/no-such-image:1 failed: "), "{error}");
    assert!(error.contains("no such host"), "{error}");
    assert_eq!(recorder.phases(), ["pulling"]);
    assert!(!exists("container", &session.container()), "nothing was created");
}

#[tokio::test]
async fn publish_host_reports_an_ephemeral_host_port() {
    let options = DockerOptions {
        publish_host: Some("127.0.0.1".parse().unwrap()),
        start_timeout: Duration::from_secs(30),
        ..DockerOptions::default()
    };
    let runtime = runtime_with(options).await;
    let session = Session::new();
    let endpoint = start(&runtime, &session.spec()).await;
    let port: u16 = endpoint.strip_prefix("http://127.0.0.1:").and_then(|port| port.parse().ok()).expect(&endpoint);
    assert_ne!(port, 8080);
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));
}

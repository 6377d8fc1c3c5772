//! The runtime and the Lease against the fake API server, with the test as the kubelet: a first end-to-end run
//! of the real kube-rs code. The scenario suite (crates/k8s/tests/ of the kube-fake slice) goes further.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::CustomResourceExt;
use streamspace_agent::Runtime;
use streamspace_k8s::lease::{LeaderElector, LeaseTimings, SystemClock};
use streamspace_k8s::reconcile::MANAGED_SELECTOR;
use streamspace_k8s::{KubernetesOptions, KubernetesRuntime, Session, Template};
use streamspace_kube_fake::kubelet::Kubelet;
use streamspace_kube_fake::{FakeApiServer, ResourceKind};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::{ActualState, InventoryItem, SessionSpec};
use uuid::Uuid;

const NAMESPACE: &str = "default";

async fn cluster() -> FakeApiServer {
    let server = FakeApiServer::start().await.unwrap();
    server.register(ResourceKind::from_definition(&Session::crd()).unwrap());
    server.register(ResourceKind::from_definition(&Template::crd()).unwrap());
    server
}

fn spec() -> SessionSpec {
    SessionSpec {
        session_id: Uuid::new_v4(),
        org_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        image: "streamspace/chromium:1".into(),
        env: [("SELKIES_MASTER_TOKEN".to_string(), "s3cret".to_string())].into(),
        cpu_millis: 1000,
        memory_mb: 2048,
        shm_mb: 256,
        port: 8080,
        egress_allow: Vec::new(),
        home: None,
    }
}

async fn inventory(runtime: &KubernetesRuntime) -> Vec<InventoryItem> {
    runtime.inventory().await.unwrap()
}

#[tokio::test]
async fn a_session_starts_hibernates_and_stops_through_the_api() {
    let server = cluster().await;
    let client = server.client().unwrap();
    let kubelet = Kubelet::new(client.clone(), NAMESPACE).run_every_pod(MANAGED_SELECTOR);
    let runtime = KubernetesRuntime::new(client.clone(), KubernetesOptions::new(NAMESPACE));
    runtime.bind(Uuid::new_v4());
    let spec = spec();
    let name = format!("ss-{}", spec.session_id);

    let seen = Mutex::new(Vec::new());
    let endpoint = runtime.start(&spec, &|state| seen.lock().unwrap().push(state)).await.unwrap();
    assert_eq!(endpoint, "http://10.244.0.1:8080");
    let seen = seen.into_inner().unwrap();
    let pulling = |progress| ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(progress) };
    assert!(seen.contains(&pulling(0)) && seen.contains(&pulling(100)), "{seen:?}");
    assert_eq!(
        inventory(&runtime).await,
        [InventoryItem { session_id: spec.session_id, state: ActualState::Running { endpoint } }]
    );

    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE).get(&name).await.unwrap();
    assert_eq!(secret.data.unwrap()["SELKIES_MASTER_TOKEN"].0, b"s3cret");
    let session = Api::<Session>::namespaced(client.clone(), NAMESPACE).get(&name).await.unwrap();
    assert!(!serde_json::to_string(&session).unwrap().contains("s3cret"));

    runtime.hibernate(spec.session_id).await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    assert!(pods.get_opt(&name).await.unwrap().is_none(), "hibernation deletes the pod");
    assert!(Api::<Service>::namespaced(client.clone(), NAMESPACE).get_opt(&name).await.unwrap().is_some());
    assert_eq!(inventory(&runtime).await[0].state, ActualState::Hibernated);

    let woken = runtime.wake(&spec, &|_| {}).await.unwrap();
    assert_eq!(woken, "http://10.244.0.2:8080", "a new pod");

    runtime.stop(spec.session_id).await.unwrap();
    assert_eq!(inventory(&runtime).await, []);
    assert!(pods.get_opt(&name).await.unwrap().is_none());
    assert!(Api::<NetworkPolicy>::namespaced(client.clone(), NAMESPACE).get_opt(&name).await.unwrap().is_none());
    assert!(Api::<Secret>::namespaced(client, NAMESPACE).get_opt(&name).await.unwrap().is_none());
    runtime.stop(spec.session_id).await.unwrap();
    kubelet.abort();
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_start_with_the_reason() {
    let server = cluster().await;
    let client = server.client().unwrap();
    let runtime = Arc::new(KubernetesRuntime::new(client.clone(), KubernetesOptions::new(NAMESPACE)));
    runtime.bind(Uuid::new_v4());
    let spec = spec();
    let name = format!("ss-{}", spec.session_id);
    let starting = tokio::spawn({
        let runtime = Arc::clone(&runtime);
        let spec = spec.clone();
        async move { runtime.start(&spec, &|_| {}).await }
    });
    let kubelet = Kubelet::new(client.clone(), NAMESPACE);
    let pods = Api::<Pod>::namespaced(client, NAMESPACE);
    while pods.get_opt(&name).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kubelet.wait_containers(&name, "ImagePullBackOff", "Back-off pulling image").await.unwrap();
    let error = starting.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("ImagePullBackOff"), "{error}");
    let state = &inventory(&runtime).await[0].state;
    assert!(matches!(state, ActualState::Failed { reason } if reason.contains("ImagePullBackOff")), "{state:?}");
}

#[tokio::test]
async fn one_replica_leads_and_a_standby_takes_over_once_the_lease_expires() {
    let server = cluster().await;
    let timings = LeaseTimings {
        duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1400),
        retry: Duration::from_millis(300),
    };
    let elector = |identity: &str| {
        LeaderElector::with_clock(
            server.client().unwrap(),
            NAMESPACE,
            "agents",
            identity,
            timings,
            Arc::new(SystemClock),
        )
    };
    let (a, b) = (elector("a"), elector("b"));
    assert!(a.try_lead().await.unwrap());
    assert!(!b.try_lead().await.unwrap(), "a fresh lease is not taken");
    assert!(a.try_lead().await.unwrap(), "renewed");
    let asked = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), b.acquire()).await.expect("b leads once a stops renewing");
    assert!(asked.elapsed() >= Duration::from_millis(1500), "not before the lease expired");
    assert!(!a.try_lead().await.unwrap(), "a lost it");
    b.release().await.unwrap();
    assert!(a.try_lead().await.unwrap(), "a released lease is free at once");
}

/// A bound runtime and its Session controller, as a leading agent runs them.
fn agent_with_controller(client: &kube::Client) -> (KubernetesRuntime, tokio::task::JoinHandle<()>) {
    let options = KubernetesOptions::new(NAMESPACE);
    let runtime = KubernetesRuntime::new(client.clone(), options.clone());
    let agent = Uuid::new_v4();
    runtime.bind(agent);
    let controller =
        streamspace_k8s::run_controller(client.clone(), NAMESPACE, options.session, agent, std::future::pending());
    (runtime, tokio::spawn(controller))
}

/// Polls `check` until it holds, failing after a deadline.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_controller_follows_the_session_and_a_dying_pod_is_reported() {
    use futures::StreamExt;
    use kube::api::{Patch, PatchParams};
    use streamspace_k8s::crd::Phase;

    let server = cluster().await;
    let client = server.client().unwrap();
    let kubelet = Kubelet::new(client.clone(), NAMESPACE);
    let running = kubelet.clone().run_every_pod(MANAGED_SELECTOR);
    let (runtime, controller) = agent_with_controller(&client);
    let mut deaths = runtime.events();
    let (first, second) = (spec(), spec());
    runtime.start(&first, &|_| {}).await.unwrap();
    runtime.start(&second, &|_| {}).await.unwrap();
    running.abort();

    let sessions = Api::<Session>::namespaced(client.clone(), NAMESPACE);
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let name = format!("ss-{}", first.session_id);
    let patch = serde_json::json!({"spec": {"hibernated": true}});
    sessions.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually("the controller deletes the hibernated session's pod", || async {
        pods.get_opt(&name).await.unwrap().is_none()
    })
    .await;
    eventually("the status says hibernated", || async {
        sessions.get(&name).await.unwrap().status.and_then(|status| status.phase) == Some(Phase::Hibernated)
    })
    .await;

    let other = format!("ss-{}", second.session_id);
    kubelet.terminate_containers(&other, "OOMKilled", 137).await.unwrap();
    let (session_id, state) = tokio::time::timeout(Duration::from_secs(10), deaths.next()).await.unwrap().unwrap();
    assert_eq!(session_id, second.session_id);
    assert!(matches!(&state, ActualState::Failed { reason } if reason.contains("OOMKilled")), "{state:?}");
    eventually("the status says failed", || async {
        sessions.get(&other).await.unwrap().status.and_then(|status| status.phase) == Some(Phase::Failed)
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn a_session_policy_follows_the_agents_current_egress_options() {
    let server = cluster().await;
    let client = server.client().unwrap();
    let kubelet = Kubelet::new(client.clone(), NAMESPACE).run_every_pod(MANAGED_SELECTOR);
    let agent = Uuid::new_v4();
    let runtime = KubernetesRuntime::new(client.clone(), KubernetesOptions::new(NAMESPACE));
    runtime.bind(agent);
    let spec = spec();
    runtime.start(&spec, &|_| {}).await.unwrap();
    kubelet.abort();

    let mut options = KubernetesOptions::new(NAMESPACE).session;
    options.egress_deny = vec!["203.0.113.0/24".parse().unwrap()];
    let reconciler = streamspace_k8s::Reconciler::new(client.clone(), NAMESPACE, options);
    let name = format!("ss-{}", spec.session_id);
    let session = Api::<Session>::namespaced(client.clone(), NAMESPACE).get(&name).await.unwrap();
    reconciler.reconcile(&session).await.unwrap();
    let policies = Api::<NetworkPolicy>::namespaced(client, NAMESPACE);
    let policy = policies.get(&name).await.unwrap();
    let denied = serde_json::to_string(&policy.spec).unwrap();
    assert!(denied.contains("203.0.113.0/24"), "{denied}");
    let version = policy.metadata.resource_version;
    reconciler.reconcile(&session).await.unwrap();
    assert_eq!(policies.get(&name).await.unwrap().metadata.resource_version, version, "unchanged: not rewritten");
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_working_before_its_lease_expires_and_resumes_when_it_can() {
    use streamspace_kube_fake::{FaultRule, StatusCode};
    use tokio::sync::watch;

    /// Says the work stopped when the work's future is dropped (cancelled).
    struct Working(watch::Sender<bool>);
    impl Drop for Working {
        fn drop(&mut self) {
            self.0.send_replace(false);
        }
    }

    let server = cluster().await;
    let timings = LeaseTimings {
        duration: Duration::from_secs(3),
        renew_deadline: Duration::from_millis(1500),
        retry: Duration::from_millis(300),
    };
    let elector =
        LeaderElector::with_clock(server.client().unwrap(), NAMESPACE, "agents", "a", timings, Arc::new(SystemClock));
    let (working, mut seen) = watch::channel(false);
    let work = || {
        let working = working.clone();
        async move {
            working.send_replace(true);
            let _working = Working(working);
            std::future::pending::<anyhow::Result<()>>().await
        }
    };
    let leading = elector.lead(work, std::future::pending());
    let observed = async {
        seen.wait_for(|working| *working).await.unwrap();
        server.faults().inject(FaultRule::always("/leases", StatusCode::INTERNAL_SERVER_ERROR));
        let failing = tokio::time::Instant::now();
        seen.wait_for(|working| !*working).await.unwrap();
        assert!(failing.elapsed() < timings.duration, "stepped down after {:?}", failing.elapsed());
        server.faults().clear();
        seen.wait_for(|working| *working).await.unwrap();
    };
    tokio::select! {
        result = leading => panic!("lead ended: {result:?}"),
        finished = tokio::time::timeout(Duration::from_secs(10), observed) => finished.expect("the leader stepped down and resumed"),
    }
}

#[tokio::test]
async fn a_wake_right_after_hibernation_waits_for_the_old_pod_to_go() {
    use streamspace_kube_fake::Options;

    let options = Options { pod_termination: Some(Duration::from_millis(800)), ..Options::default() };
    let server = FakeApiServer::start_with(options).await.unwrap();
    server.register(ResourceKind::from_definition(&Session::crd()).unwrap());
    server.register(ResourceKind::from_definition(&Template::crd()).unwrap());
    let client = server.client().unwrap();
    let kubelet = Kubelet::new(client.clone(), NAMESPACE).run_every_pod(MANAGED_SELECTOR);
    let runtime = KubernetesRuntime::new(client.clone(), KubernetesOptions::new(NAMESPACE));
    runtime.bind(Uuid::new_v4());
    let spec = spec();
    assert_eq!(runtime.start(&spec, &|_| {}).await.unwrap(), "http://10.244.0.1:8080");
    runtime.hibernate(spec.session_id).await.unwrap();
    let pods = Api::<Pod>::namespaced(client, NAMESPACE);
    let name = format!("ss-{}", spec.session_id);
    let stopping = pods.get(&name).await.unwrap();
    assert!(stopping.metadata.deletion_timestamp.is_some(), "the old pod is still stopping");
    assert_eq!(inventory(&runtime).await[0].state, ActualState::Hibernated);
    assert_eq!(runtime.wake(&spec, &|_| {}).await.unwrap(), "http://10.244.0.2:8080", "the new pod's address");
    assert_ne!(pods.get(&name).await.unwrap().metadata.uid, stopping.metadata.uid);
    kubelet.abort();
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_is_reported_and_a_stopped_one_is_not() {
    use futures::StreamExt;

    let server = cluster().await;
    let client = server.client().unwrap();
    let kubelet = Kubelet::new(client.clone(), NAMESPACE).run_every_pod(MANAGED_SELECTOR);
    let (runtime, controller) = agent_with_controller(&client);
    let mut deaths = runtime.events();
    let (stopped, deleted) = (spec(), spec());
    runtime.start(&stopped, &|_| {}).await.unwrap();
    runtime.start(&deleted, &|_| {}).await.unwrap();
    let sessions = Api::<Session>::namespaced(client.clone(), NAMESPACE);
    let name = format!("ss-{}", deleted.session_id);
    eventually("the controller records the session running", || async {
        sessions.get(&name).await.unwrap().status.and_then(|status| status.endpoint).is_some()
    })
    .await;

    runtime.stop(stopped.session_id).await.unwrap();
    Api::<Pod>::namespaced(client, NAMESPACE).delete(&name, &Default::default()).await.unwrap();
    let (session_id, state) = tokio::time::timeout(Duration::from_secs(10), deaths.next()).await.unwrap().unwrap();
    assert_eq!(session_id, deleted.session_id, "the stopped session's pod is not a death; the deleted one's is");
    assert_eq!(state, ActualState::Failed { reason: "the session's pod was deleted".into() });
    kubelet.abort();
    controller.abort();
}

//! The Kubernetes agent's scenarios against the fake API server (`streamspace-kube-fake`, ADR 0022): the real
//! runtime and Session controller talk to it through a kube-rs client over HTTP, and the test plays the kubelet,
//! writing pod status and events through the API as a kubelet does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::core::CustomResourceExt;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use streamspace_agent::Runtime;
use streamspace_k8s::lease::ManualClock;
use streamspace_k8s::reconcile::{LABEL_SESSION, object_name, session_labels};
use streamspace_k8s::{
    HomeClaim, KubernetesOptions, KubernetesRuntime, LeaderElector, LeaseTimings, Session, SessionOptions, Template,
    run_controller,
};
use streamspace_kube_fake::kubelet::Kubelet;
use streamspace_kube_fake::{FakeApiServer, FaultRule, Method, Options, ResourceKind, StatusCode};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::{ActualState, SessionSpec};
use streamspace_proto::security;
use tokio::task::JoinHandle;
use uuid::Uuid;

const NAMESPACE: &str = "streamspace";
const AGENT: Uuid = Uuid::from_u128(0x5e55_1015_a6e7_0000_0000_0000_0000_0001);
const DEADLINE: Duration = Duration::from_secs(20);
/// The streamer's credential: it belongs in the session's Secret and nowhere else.
const MASTER_TOKEN: &str = "master-token-7f3a9c";

type Events = BoxStream<'static, (Uuid, ActualState)>;

/// A fake cluster with the CRDs installed, and the test as its kubelet.
struct Cluster {
    server: FakeApiServer,
    client: Client,
    kubelet: Kubelet,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Cluster {
        let server = FakeApiServer::start_with(options).await.expect("the fake API server starts");
        for definition in [Session::crd(), Template::crd()] {
            server.register(ResourceKind::from_definition(&definition).expect("the CRDs are usable definitions"));
        }
        let client = server.client().expect("a client of the fake API server");
        let kubelet = Kubelet::new(client.clone(), NAMESPACE);
        Cluster { server, client, kubelet }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// A runtime of [`AGENT`], bound as after the control plane's welcome.
    fn runtime(&self) -> Arc<KubernetesRuntime> {
        self.runtime_with(SessionOptions::default())
    }

    fn runtime_with(&self, session: SessionOptions) -> Arc<KubernetesRuntime> {
        let options = KubernetesOptions { session, start_timeout: DEADLINE, ..KubernetesOptions::new(NAMESPACE) };
        let runtime = Arc::new(KubernetesRuntime::new(self.client.clone(), options));
        runtime.bind(AGENT);
        runtime
    }

    /// The Session controller of [`AGENT`], running until the handle is aborted.
    fn controller(&self) -> AbortOnDrop {
        let run =
            run_controller(self.client.clone(), NAMESPACE, SessionOptions::default(), AGENT, std::future::pending());
        AbortOnDrop(tokio::spawn(run))
    }

    /// Waits for the session's pod, other than the one with `old_uid`, and returns it.
    async fn new_pod(&self, session_id: Uuid, old_uid: Option<&str>) -> Result<Pod> {
        let wanted = |pod: Option<&Pod>| pod.is_some_and(|pod| pod.uid().as_deref() != old_uid);
        let found = tokio::time::timeout(DEADLINE, await_condition(self.api(), &object_name(session_id), wanted))
            .await
            .context("timed out waiting for the session's pod")??;
        found.context("the pod vanished")
    }

    /// Objects of `K` labelled with the session.
    async fn objects_of<K>(&self, session_id: Uuid) -> Result<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let selector = ListParams::default().labels(&format!("{LABEL_SESSION}={session_id}"));
        Ok(self.api::<K>().list(&selector).await?.items)
    }

    /// How many objects of each kind the session has: Sessions, pods, Services, NetworkPolicies, Secrets, claims.
    async fn object_counts(&self, session_id: Uuid) -> Result<[usize; 6]> {
        Ok([
            self.objects_of::<Session>(session_id).await?.len(),
            self.objects_of::<Pod>(session_id).await?.len(),
            self.objects_of::<Service>(session_id).await?.len(),
            self.objects_of::<NetworkPolicy>(session_id).await?.len(),
            self.objects_of::<Secret>(session_id).await?.len(),
            self.objects_of::<PersistentVolumeClaim>(session_id).await?.len(),
        ])
    }

    /// Runs `operation` (a start or a wake) while playing the kubelet: the session's new pod gets the image
    /// events and runs ready at `pod_ip`. Returns the endpoint and the progress reported.
    async fn bring_up(
        &self,
        runtime: &Arc<KubernetesRuntime>,
        spec: &SessionSpec,
        operation: Operation,
        pod_ip: &str,
    ) -> Result<(String, Vec<ActualState>)> {
        self.bring_up_replacing(runtime, spec, operation, pod_ip, None).await
    }

    async fn bring_up_replacing(
        &self,
        runtime: &Arc<KubernetesRuntime>,
        spec: &SessionSpec,
        operation: Operation,
        pod_ip: &str,
        old_pod_uid: Option<&str>,
    ) -> Result<(String, Vec<ActualState>)> {
        let (mut task, progress) = operation.spawn(runtime, spec);
        let pod = tokio::select! {
            pod = self.new_pod(spec.session_id, old_pod_uid) => pod?,
            finished = &mut task => {
                let outcome = finished?;
                anyhow::bail!("{operation:?} finished before the session had a new pod to run: {outcome:?}");
            }
        };
        self.kubelet.start(&pod.name_any(), pod_ip).await?;
        let endpoint =
            tokio::time::timeout(DEADLINE, task).await.context("the runtime did not see the pod ready")???;
        let progress = progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        Ok((endpoint, progress))
    }
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Start,
    Wake,
}

type Progressed = Arc<Mutex<Vec<ActualState>>>;

impl Operation {
    fn spawn(self, runtime: &Arc<KubernetesRuntime>, spec: &SessionSpec) -> (JoinHandle<Result<String>>, Progressed) {
        let progress = Progressed::default();
        let (runtime, spec, seen) = (runtime.clone(), spec.clone(), progress.clone());
        let task = tokio::spawn(async move {
            let report = move |state| seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(state);
            match self {
                Operation::Start => runtime.start(&spec, &report).await,
                Operation::Wake => runtime.wake(&spec, &report).await,
            }
        });
        (task, progress)
    }
}

/// A spawned task that ends with the test, passed or not.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn session_spec() -> SessionSpec {
    SessionSpec {
        session_id: Uuid::new_v4(),
        org_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        image: "streamspace/xterm:test".into(),
        env: BTreeMap::from([
            ("SELKIES_MASTER_TOKEN".to_string(), MASTER_TOKEN.to_string()),
            ("STREAMSPACE_GREETING".to_string(), "hello".to_string()),
        ]),
        cpu_millis: 500,
        memory_mb: 256,
        shm_mb: 128,
        port: 8080,
        egress_allow: vec!["10.20.0.0/16".parse().expect("a CIDR")],
        home: None,
    }
}

/// Homes on a claim per session, so the claim's fate shows too.
fn home_claims() -> SessionOptions {
    SessionOptions {
        home_claim: Some(HomeClaim { size: "1Gi".into(), storage_class: None }),
        ..SessionOptions::default()
    }
}

/// The next state the runtime reports for `session_id` on its event stream.
async fn next_event_for(events: &mut Events, session_id: Uuid) -> Result<ActualState> {
    let wait = async {
        while let Some((id, state)) = events.next().await {
            if id == session_id {
                return Some(state);
            }
        }
        None
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .context("no event for the session in time")?
        .context("the runtime's event stream ended")
}

/// Polls `check` until it holds, failing after the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !check().await? {
        anyhow::ensure!(tokio::time::Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn session_status(cluster: &Cluster, session_id: Uuid) -> Result<serde_json::Value> {
    let session = cluster.api::<Session>().get(&object_name(session_id)).await?;
    Ok(serde_json::to_value(session.status)?)
}

fn as_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("Kubernetes objects serialize")
}

#[tokio::test]
async fn a_started_session_gets_its_hardened_objects_and_its_endpoint_once_the_pod_is_ready() -> Result<()> {
    let cluster = Cluster::start().await;
    let _controller = cluster.controller();
    let runtime = cluster.runtime();
    let spec = session_spec();
    let (endpoint, progress) = cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.7").await?;
    assert_eq!(endpoint, "http://10.244.1.7:8080");

    let pulling = |percent| ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(percent) };
    let started_pull = progress.iter().position(|state| *state == pulling(0));
    let ended_pull = progress.iter().position(|state| *state == pulling(100));
    assert!(
        started_pull.is_some() && started_pull < ended_pull,
        "pull progress from the kubelet's events: {progress:?}"
    );

    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 1, 1, 1, 1, 0], "one of each, none twice");
    let name = object_name(spec.session_id);
    let session = cluster.api::<Session>().get(&name).await?;
    let session_uid = session.uid().context("a uid")?;
    assert_eq!(session.metadata.labels.clone().unwrap_or_default(), session_labels(spec.session_id, AGENT));
    assert!(!as_json(&session).to_string().contains(MASTER_TOKEN), "the Session holds no credential");
    let templates = cluster.api::<Template>().list(&ListParams::default()).await?.items;
    assert_eq!(
        templates.iter().map(|template| template.spec.image.as_str()).collect::<Vec<_>>(),
        [spec.image.as_str()]
    );

    let secret = cluster.api::<Secret>().get(&name).await?;
    let token = secret.data.unwrap_or_default().get("SELKIES_MASTER_TOKEN").map(|value| value.0.clone());
    assert_eq!(token.as_deref(), Some(MASTER_TOKEN.as_bytes()));

    let pod = as_json(&cluster.api::<Pod>().get(&name).await?);
    assert!(!pod.to_string().contains(MASTER_TOKEN), "the pod spec names the Secret, not the token");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], spec.image);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], security::READ_ONLY_ROOT_FILESYSTEM);
    assert_eq!(container["resources"]["limits"], serde_json::json!({"cpu": "500m", "memory": "256Mi"}));
    let token_variable =
        container["env"].as_array().into_iter().flatten().find(|variable| variable["name"] == "SELKIES_MASTER_TOKEN");
    assert_eq!(
        token_variable.map(|variable| &variable["valueFrom"]["secretKeyRef"]["name"]),
        Some(&serde_json::json!(name))
    );

    let service = as_json(&cluster.api::<Service>().get(&name).await?);
    assert_eq!(service["spec"]["selector"][LABEL_SESSION], spec.session_id.to_string());
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);

    let policy = as_json(&cluster.api::<NetworkPolicy>().get(&name).await?);
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress = policy["spec"]["ingress"].as_array().context("ingress rules")?;
    assert_eq!(ingress.len(), 1, "one way in: the control plane, on the streamer's port");
    assert_eq!(ingress[0]["ports"], serde_json::json!([{"port": 8080, "protocol": "TCP"}]));
    assert!(ingress[0]["from"].as_array().is_some_and(|peers| !peers.is_empty()), "never from everywhere");
    let egress = policy["spec"]["egress"].to_string();
    assert!(egress.contains("10.20.0.0/16"), "the allow-list is reachable: {egress}");
    for denied in security::egress_deny() {
        assert!(egress.contains(&format!("\"{denied}\"")), "{denied} is excepted from the egress: {egress}");
    }

    for owned in [&pod, &service, &policy, &as_json(&secret.metadata.owner_references)] {
        let references = owned.pointer("/metadata/ownerReferences").unwrap_or(owned);
        assert_eq!(references[0]["uid"], session_uid, "owned by the Session: {references}");
        assert_eq!(references[0]["controller"], true);
    }
    eventually("the Session's status to show it running", || async {
        let status = session_status(&cluster, spec.session_id).await?;
        Ok(status["phase"] == "Running" && status["endpoint"] == endpoint)
    })
    .await
}

#[tokio::test]
async fn a_start_sent_again_returns_the_running_sessions_endpoint_and_creates_nothing() -> Result<()> {
    let cluster = Cluster::start().await;
    let runtime = cluster.runtime();
    let spec = session_spec();
    let (endpoint, _) = cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.13").await?;
    let pod = cluster.api::<Pod>().get(&object_name(spec.session_id)).await?;

    // The control plane re-sends a command until it is acknowledged; a second agent process (restarted) too.
    let again = tokio::time::timeout(DEADLINE, cluster.runtime().start(&spec, &|_| {})).await??;
    assert_eq!(again, endpoint);
    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 1, 1, 1, 1, 0]);
    let session = cluster.api::<Session>().get(&object_name(spec.session_id)).await?;
    assert_eq!(session.metadata.generation, Some(1), "the Session's spec was left as it is");
    let pods = cluster.objects_of::<Pod>(spec.session_id).await?;
    assert_eq!(pods.iter().map(|pod| pod.uid()).collect::<Vec<_>>(), [pod.uid()]);
    Ok(())
}

#[tokio::test]
async fn pods_that_die_are_reported_failed_with_the_kubelets_reason() -> Result<()> {
    let cluster = Cluster::start().await;
    let _controller = cluster.controller();
    let runtime = cluster.runtime();
    let mut events = runtime.events();

    let oom = session_spec();
    cluster.bring_up(&runtime, &oom, Operation::Start, "10.244.1.8").await?;
    cluster.kubelet.terminate_containers(&object_name(oom.session_id), "OOMKilled", 137).await?;
    match next_event_for(&mut events, oom.session_id).await? {
        ActualState::Failed { reason } => assert!(reason.contains("OOMKilled"), "{reason}"),
        other => panic!("expected Failed for the OOM kill, got {other:?}"),
    }
    eventually("the Session's status to show the OOM kill", || async {
        let status = session_status(&cluster, oom.session_id).await?;
        Ok(status["phase"] == "Failed" && status["reason"].as_str().is_some_and(|reason| reason.contains("OOMKilled")))
    })
    .await?;

    let unpullable = session_spec();
    let (start, _) = Operation::Start.spawn(&runtime, &unpullable);
    let pod = cluster.new_pod(unpullable.session_id, None).await?;
    cluster.kubelet.wait_containers(&pod.name_any(), "ImagePullBackOff", "Back-off pulling image").await?;
    let refused =
        tokio::time::timeout(DEADLINE, start).await??.expect_err("a start whose image cannot be pulled fails");
    assert!(format!("{refused:#}").contains("ImagePullBackOff"), "{refused:#}");
    match next_event_for(&mut events, unpullable.session_id).await? {
        ActualState::Failed { reason } => assert!(reason.contains("ImagePullBackOff"), "{reason}"),
        other => panic!("expected Failed for the image pull, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn deaths_are_still_reported_after_the_api_server_compacts_its_history() -> Result<()> {
    // Without bookmarks the pod watch's resourceVersion stays behind writes it does not select.
    let cluster =
        Cluster::start_with(Options { bookmark_interval: Duration::from_secs(3600), ..Options::default() }).await;
    let runtime = cluster.runtime();
    let mut events = runtime.events();
    let spec = session_spec();
    cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.14").await?;
    let name = object_name(spec.session_id);
    cluster.kubelet.record_event(&name, "BackOff", "an event the pod watch does not see", "Normal").await?;
    cluster.server.compact();
    cluster.kubelet.terminate_containers(&name, "Error", 1).await?;
    match next_event_for(&mut events, spec.session_id).await? {
        ActualState::Failed { reason } => assert!(reason.contains("code 1"), "{reason}"),
        other => panic!("expected Failed after the watch expired, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn hibernate_deletes_only_the_pod_and_wake_brings_a_new_one() -> Result<()> {
    let cluster = Cluster::start().await;
    let _controller = cluster.controller();
    let runtime = cluster.runtime_with(home_claims());
    let spec = session_spec();
    cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.9").await?;
    let first_pod = cluster.api::<Pod>().get(&object_name(spec.session_id)).await?;

    runtime.hibernate(spec.session_id).await?;
    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 0, 1, 1, 1, 1], "only the pod is gone");
    let inventory = runtime.inventory().await?;
    assert!(inventory.iter().any(|item| item.session_id == spec.session_id && item.state == ActualState::Hibernated));

    let (endpoint, _) =
        cluster.bring_up_replacing(&runtime, &spec, Operation::Wake, "10.244.2.9", first_pod.uid().as_deref()).await?;
    assert_eq!(endpoint, "http://10.244.2.9:8080", "the new pod's address");
    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 1, 1, 1, 1, 1]);
    eventually("the controller to record the woken session running at its new address", || async {
        let status = session_status(&cluster, spec.session_id).await?;
        Ok(status["phase"] == "Running" && status["endpoint"] == endpoint)
    })
    .await
}

#[tokio::test]
async fn wake_waits_for_a_new_pod_while_the_hibernated_one_still_terminates() -> Result<()> {
    // A real kubelet takes the pod's grace period to stop it; until then the old pod, still Ready, keeps the name.
    let cluster =
        Cluster::start_with(Options { pod_termination: Some(Duration::from_secs(2)), ..Options::default() }).await;
    let runtime = cluster.runtime();
    let spec = session_spec();
    let (old_endpoint, _) = cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.10").await?;
    let old_pod = cluster.api::<Pod>().get(&object_name(spec.session_id)).await?;
    runtime.hibernate(spec.session_id).await?;
    let woken =
        cluster.bring_up_replacing(&runtime, &spec, Operation::Wake, "10.244.2.10", old_pod.uid().as_deref()).await;
    let (endpoint, _) =
        woken.with_context(|| format!("waking while the old pod terminates (its endpoint was {old_endpoint})"))?;
    assert_eq!(endpoint, "http://10.244.2.10:8080", "the new pod's address, not the terminating pod's");
    Ok(())
}

#[tokio::test]
async fn stop_leaves_nothing_of_the_session_behind() -> Result<()> {
    let cluster = Cluster::start().await;
    let runtime = cluster.runtime_with(home_claims());
    let spec = session_spec();
    cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.11").await?;
    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 1, 1, 1, 1, 1]);
    runtime.stop(spec.session_id).await?;
    eventually("every object of the session to be gone", || async {
        Ok(cluster.object_counts(spec.session_id).await? == [0; 6])
    })
    .await?;
    assert!(runtime.inventory().await?.iter().all(|item| item.session_id != spec.session_id));
    runtime.stop(spec.session_id).await.context("stopping a stopped session is no error")?;
    Ok(())
}

#[tokio::test]
async fn a_conflicting_write_is_retried_without_duplicating_objects() -> Result<()> {
    let cluster = Cluster::start().await;
    let runtime = cluster.runtime();
    let spec = session_spec();
    let status_path = format!("/sessions/{}/status", object_name(spec.session_id));
    cluster.server.faults().inject(FaultRule::next(1, &status_path, StatusCode::CONFLICT).for_method(Method::PATCH));
    let (endpoint, _) = cluster.bring_up(&runtime, &spec, Operation::Start, "10.244.1.12").await?;
    assert_eq!(endpoint, "http://10.244.1.12:8080");
    assert_eq!(cluster.server.faults().injected(), 1, "the Session's status write met the conflict");
    assert_eq!(cluster.object_counts(spec.session_id).await?, [1, 1, 1, 1, 1, 0]);
    Ok(())
}

const LEASE: &str = "streamspace-agent";

/// A replica's terms as leader, in the order they began and ended: `(identity, true)` when its work starts,
/// `(identity, false)` when the work is dropped.
type Terms = tokio::sync::mpsc::UnboundedReceiver<(String, bool)>;

/// Reports a term's end when the term's work is dropped: stepping down, or the replica's task aborted.
struct Term(String, tokio::sync::mpsc::UnboundedSender<(String, bool)>);

impl Term {
    fn begin(identity: &str, terms: &tokio::sync::mpsc::UnboundedSender<(String, bool)>) -> Term {
        // A closed log only means the test is over.
        let _ = terms.send((identity.to_string(), true));
        Term(identity.to_string(), terms.clone())
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.1.send((self.0.clone(), false));
    }
}

impl Cluster {
    /// One agent replica with its own client (named after it, so faults can hit it alone): it contends for the
    /// Lease on `clock` and, while it leads, runs the Session controller of [`AGENT`], as the agent's term does.
    fn replica(
        &self,
        identity: &str,
        clock: &Arc<ManualClock>,
        terms: &tokio::sync::mpsc::UnboundedSender<(String, bool)>,
    ) -> Result<AbortOnDrop> {
        let client = self.server.client_named(identity)?;
        let elector = LeaderElector::with_clock(
            client.clone(),
            NAMESPACE,
            LEASE,
            identity,
            LeaseTimings::default(),
            clock.clone(),
        );
        let (identity, terms) = (identity.to_string(), terms.clone());
        let work = move || {
            let (client, term) = (client.clone(), Term::begin(&identity, &terms));
            async move {
                let _term = term;
                run_controller(client, NAMESPACE, SessionOptions::default(), AGENT, std::future::pending()).await;
                Ok(())
            }
        };
        Ok(AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = elector.lead(work, std::future::pending()).await {
                panic!("the replica's election failed: {error:#}");
            }
        })))
    }
}

async fn next_term_change(terms: &mut Terms) -> Result<(String, bool)> {
    tokio::time::timeout(DEADLINE, terms.recv())
        .await
        .context("no replica began or ended a term in time")?
        .context("the replicas are gone")
}

fn began(identity: &str) -> (String, bool) {
    (identity.to_string(), true)
}

fn ended(identity: &str) -> (String, bool) {
    (identity.to_string(), false)
}

#[tokio::test]
async fn the_standby_takes_over_within_15_s_of_the_leaders_death_and_adopts_its_sessions() -> Result<()> {
    let cluster = Cluster::start().await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let (log, mut terms) = tokio::sync::mpsc::unbounded_channel();
    let leader = cluster.replica("agent-a", &clock, &log)?;
    assert_eq!(next_term_change(&mut terms).await?, began("agent-a"));
    let _standby = cluster.replica("agent-b", &clock, &log)?;

    let leader_runtime = cluster.runtime();
    let (crashing, steady) = (session_spec(), session_spec());
    cluster.bring_up(&leader_runtime, &crashing, Operation::Start, "10.244.3.1").await?;
    let (endpoint, _) = cluster.bring_up(&leader_runtime, &steady, Operation::Start, "10.244.3.2").await?;
    let steady_pod = cluster.api::<Pod>().get(&object_name(steady.session_id)).await?;

    drop(leader);
    assert_eq!(next_term_change(&mut terms).await?, ended("agent-a"), "the killed leader's work is gone");
    let killed = tokio::time::Instant::now();
    // The dead leader's last renewal was at the clock's present; the Lease lasts its duration from there.
    clock.advance(LeaseTimings::default().duration);
    assert_eq!(next_term_change(&mut terms).await?, began("agent-b"));
    let takeover = LeaseTimings::default().duration + killed.elapsed();
    assert!(takeover <= Duration::from_secs(15), "the standby led {takeover:?} after the leader's last renewal");
    let lease = cluster.api::<Lease>().get(LEASE).await?.spec.context("a Lease spec")?;
    assert_eq!((lease.holder_identity.as_deref(), lease.lease_transitions), (Some("agent-b"), Some(1)));

    // The new leader's controller follows the sessions the old one started: a death is recorded by it.
    cluster.kubelet.terminate_containers(&object_name(crashing.session_id), "OOMKilled", 137).await?;
    eventually("the new leader to record the OOM kill", || async {
        Ok(session_status(&cluster, crashing.session_id).await?["phase"] == "Failed")
    })
    .await?;
    let standby_runtime = cluster.runtime();
    let inventory = standby_runtime.inventory().await?;
    let steady_state = inventory.iter().find(|item| item.session_id == steady.session_id).map(|item| &item.state);
    assert_eq!(steady_state, Some(&ActualState::Running { endpoint }), "adopted as it runs");
    let pods = cluster.objects_of::<Pod>(steady.session_id).await?;
    assert_eq!(pods.iter().map(|pod| pod.uid()).collect::<Vec<_>>(), [steady_pod.uid()], "the same pod, not a second");
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_renewals_fail_steps_down_before_the_standby_may_lead() -> Result<()> {
    let cluster = Cluster::start().await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let (log, mut terms) = tokio::sync::mpsc::unbounded_channel();
    let _leader = cluster.replica("agent-a", &clock, &log)?;
    assert_eq!(next_term_change(&mut terms).await?, began("agent-a"));
    let _standby = cluster.replica("agent-b", &clock, &log)?;

    let timings = LeaseTimings::default();
    cluster.server.faults().inject(
        FaultRule::always(&format!("/leases/{LEASE}"), StatusCode::INTERNAL_SERVER_ERROR).from_client("agent-a"),
    );
    clock.advance(timings.renew_deadline);
    assert_eq!(next_term_change(&mut terms).await?, ended("agent-a"), "no renewal within the deadline: step down");
    clock.advance(timings.duration - timings.renew_deadline);
    assert_eq!(next_term_change(&mut terms).await?, began("agent-b"), "the Lease expired: the standby leads");
    assert!(cluster.server.faults().injected() > 0, "the leader's renewals failed");
    Ok(())
}

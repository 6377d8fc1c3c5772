//! [`KubernetesRuntime`]: the agent's [`Runtime`] over a Kubernetes namespace.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use streamspace_agent::{Progress, Runtime};
use streamspace_proto::hub::{ActualState, Capacity, InventoryItem, Platform, SessionSpec};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use uuid::Uuid;

use crate::api::{create_if_absent, delete_if_present, get_if_present};
use crate::controller::{Reconciler, is_terminating, status_of};
use crate::crd::{Phase, Session, SessionStatus, Template};
use crate::observe::{endpoint, event_progress, pod_state};
use crate::reconcile::{
    LABEL_AGENT, LABEL_SESSION, MANAGED_SELECTOR, SessionOptions, agent_selector, desired_secret, object_name,
    session_objects,
};

/// How often a starting session's pod and events are read.
const START_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long to wait before watching pods again after the watch failed.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// How the Kubernetes runtime runs sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesOptions {
    /// The namespace sessions run in (the agent's own by default).
    pub namespace: String,
    /// How sessions are shaped: egress, who may reach them, their home.
    pub session: SessionOptions,
    /// How long a session has to become Ready, image pull included (the kubelet's pull is not separable).
    pub start_timeout: Duration,
    /// What this agent announces it can hold. A least-privilege agent cannot read nodes, and a cluster's
    /// allocatable is shared with everything else on it, so the operator states it (0: the limit registered with
    /// the control plane applies).
    pub capacity: Capacity,
}

impl KubernetesOptions {
    pub fn new(namespace: impl Into<String>) -> KubernetesOptions {
        KubernetesOptions {
            namespace: namespace.into(),
            session: SessionOptions::default(),
            start_timeout: Duration::from_secs(300),
            capacity: Capacity { max_sessions: 50, cpu_millis: 0, memory_mb: 0 },
        }
    }
}

/// The agent this runtime works for, learnt from the control plane's welcome; until then nothing is its own.
#[derive(Debug, Clone)]
pub(crate) struct Owner(Arc<watch::Sender<Option<Uuid>>>);

impl Default for Owner {
    fn default() -> Owner {
        Owner(Arc::new(watch::Sender::new(None)))
    }
}

impl Owner {
    fn get(&self) -> Option<Uuid> {
        *self.0.borrow()
    }

    fn require(&self) -> anyhow::Result<Uuid> {
        self.get().context("the agent has not been welcomed by the control plane yet")
    }

    fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        self.get().is_some_and(|id| labels.get(LABEL_AGENT).is_some_and(|owner| *owner == id.to_string()))
    }
}

/// Runs sessions as pods in one namespace: each session is a `Session` object and the pod, Service,
/// NetworkPolicy, Secret (and home claim) the [`Reconciler`] derives from it. Implements [`Runtime`].
pub struct KubernetesRuntime {
    options: KubernetesOptions,
    reconciler: Reconciler,
    sessions: Api<Session>,
    templates: Api<Template>,
    pods: Api<Pod>,
    services: Api<Service>,
    policies: Api<NetworkPolicy>,
    secrets: Api<Secret>,
    claims: Api<PersistentVolumeClaim>,
    events: Api<Event>,
    owner: Owner,
    /// Sessions this runtime is hibernating or stopping, whose pods' ends are not failures.
    expected_exits: Arc<RwLock<HashSet<Uuid>>>,
}

impl KubernetesRuntime {
    /// A runtime over `client` (from `kube::Config::infer()`, or one pointed at a test API server).
    pub fn new(client: Client, options: KubernetesOptions) -> KubernetesRuntime {
        let namespace = options.namespace.as_str();
        KubernetesRuntime {
            reconciler: Reconciler::new(client.clone(), namespace, options.session.clone()),
            sessions: Api::namespaced(client.clone(), namespace),
            templates: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
            services: Api::namespaced(client.clone(), namespace),
            policies: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client.clone(), namespace),
            claims: Api::namespaced(client.clone(), namespace),
            events: Api::namespaced(client, namespace),
            options,
            owner: Owner::default(),
            expected_exits: Arc::default(),
        }
    }

    /// The agent id given to [`Runtime::bind`], as soon as there is one (the controller waits for it).
    pub async fn bound_agent(&self) -> Option<Uuid> {
        let mut receiver = self.owner.0.subscribe();
        receiver.wait_for(Option::is_some).await.ok().and_then(|id| *id)
    }

    fn expect_exit(&self, session_id: Uuid, expected: bool) {
        let mut exits = self.expected_exits.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if expected {
            exits.insert(session_id)
        } else {
            exits.remove(&session_id)
        };
    }

    /// Start and wake alike: write the Template, the Session and its Secret, bring the objects up, wait for the
    /// pod to be Ready.
    async fn bring_up(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        let agent_id = self.owner.require()?;
        let objects = session_objects(spec, agent_id)?;
        self.expect_exit(spec.session_id, false);
        create_if_absent(&self.templates, &objects.template).await?;
        let name = object_name(spec.session_id);
        let session = match get_if_present(&self.sessions, &name).await? {
            None => self
                .sessions
                .create(&Default::default(), &objects.session)
                .await
                .with_context(|| format!("creating Session {name}"))?,
            Some(existing) => self.revive(existing, &objects.session).await?,
        };
        create_if_absent(&self.secrets, &desired_secret(&session, &objects.secret_env)?).await?;
        // A session that runs already is not touched: its endpoint, without replaying its start's progress.
        let pod = get_if_present(&self.pods, &name).await?.filter(|pod| !is_terminating(pod));
        if let Some(ActualState::Running { endpoint }) = pod.as_ref().map(pod_state) {
            return Ok(endpoint);
        }
        self.wait_until_ready(&session, progress).await
    }

    /// A Session that exists already: one hibernated or failed gets the new spec and starts over; one that runs
    /// or is starting is left as it is.
    async fn revive(&self, existing: Session, wanted: &Session) -> anyhow::Result<Session> {
        let phase = existing.status.as_ref().and_then(|status| status.phase);
        if !existing.spec.hibernated && phase != Some(Phase::Failed) {
            return Ok(existing);
        }
        let name = existing.name_any();
        // A failed pod is kept for inspection until the session starts again.
        delete_if_present(&self.pods, &name).await?;
        let patch = serde_json::json!({ "spec": wanted.spec });
        let revived = self
            .sessions
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("updating Session {name}"))?;
        let pending = SessionStatus { phase: Some(Phase::Pending), ..SessionStatus::default() };
        self.reconciler.write_status(&revived, pending.clone()).await?;
        Ok(Session { status: Some(pending), ..revived })
    }

    /// Follows the pod until it is Ready, reporting the kubelet's progress; fails as soon as it cannot run. While
    /// there is no pod (or only the previous run's, still stopping) the Session is reconciled again, so a start
    /// does not depend on the controller's timing.
    async fn wait_until_ready(&self, session: &Session, progress: &Progress<'_>) -> anyhow::Result<String> {
        let name = session.name_any();
        let deadline = Instant::now() + self.options.start_timeout;
        let mut seen_events = HashSet::new();
        loop {
            match get_if_present(&self.pods, &name).await?.filter(|pod| !is_terminating(pod)) {
                Some(pod) => {
                    self.report_events(&pod, &mut seen_events, progress).await?;
                    let state = pod_state(&pod);
                    if matches!(state, ActualState::Running { .. } | ActualState::Failed { .. }) {
                        self.reconciler.write_status(session, status_of(&state)).await?;
                    }
                    match state {
                        ActualState::Running { endpoint } => return Ok(endpoint),
                        ActualState::Failed { reason } => bail!("{reason}"),
                        _ => {}
                    }
                }
                None => {
                    let current =
                        get_if_present(&self.sessions, &name).await?.context("the Session vanished while starting")?;
                    if let Some(SessionStatus { phase: Some(Phase::Failed), reason, .. }) = &current.status {
                        bail!("{}", reason.clone().unwrap_or_else(|| "the session failed while starting".to_string()));
                    }
                    self.reconciler.reconcile(&current).await?;
                }
            }
            if Instant::now() >= deadline {
                bail!("the session's pod was not Ready within {}s", self.options.start_timeout.as_secs());
            }
            tokio::time::sleep(START_POLL_INTERVAL).await;
        }
    }

    /// Reports the kubelet's events on `pod` that were not reported yet.
    async fn report_events(
        &self,
        pod: &Pod,
        seen: &mut HashSet<String>,
        progress: &Progress<'_>,
    ) -> anyhow::Result<()> {
        let uid = pod.uid();
        let about_pod = ListParams::default().fields(&format!("involvedObject.name={}", pod.name_any()));
        let events = self.events.list(&about_pod).await.context("listing events")?;
        let mut fresh: Vec<&Event> = events
            .items
            .iter()
            .filter(|event| event.involved_object.kind.as_deref() == Some("Pod"))
            .filter(|event| event.involved_object.name.as_deref() == Some(pod.name_any().as_str()))
            .filter(|event| uid.is_none() || event.involved_object.uid == uid)
            // The kubelet also says `Pulled` of an image it had ("already present on machine"): nothing was pulled.
            .filter(|event| !event.message.as_deref().is_some_and(|message| message.contains("already present")))
            .filter(|event| seen.insert(event.uid().unwrap_or_else(|| event.name_any())))
            .collect();
        fresh.sort_by_key(|event| event.last_timestamp.clone().or(event.first_timestamp.clone()));
        for state in fresh.iter().filter_map(|event| event_progress(event.reason.as_deref()?)) {
            progress(state);
        }
        Ok(())
    }

    /// The state of one Session given its pod, if it has one.
    fn observe(session: &Session, pod: Option<&Pod>) -> ActualState {
        let status = session.status.clone().unwrap_or_default();
        if session.spec.hibernated {
            return ActualState::Hibernated;
        }
        if status.phase == Some(Phase::Failed) {
            let reason = status.reason.unwrap_or_else(|| "the session failed".to_string());
            return ActualState::Failed { reason };
        }
        match (pod, status.phase) {
            (Some(pod), _) => pod_state(pod),
            (None, None | Some(Phase::Pending | Phase::Hibernated)) => {
                ActualState::Starting { phase: streamspace_proto::SessionPhase::Scheduling, progress: None }
            }
            (None, _) => {
                ActualState::Failed { reason: "the session's pod disappeared (deleted or evicted)".to_string() }
            }
        }
    }
}

#[async_trait]
impl Runtime for KubernetesRuntime {
    fn platform(&self) -> Platform {
        Platform::Kubernetes
    }

    async fn capacity(&self) -> anyhow::Result<Capacity> {
        Ok(self.options.capacity)
    }

    async fn inventory(&self) -> anyhow::Result<Vec<InventoryItem>> {
        let Some(agent_id) = self.owner.get() else { return Ok(Vec::new()) };
        let selector = ListParams::default().labels(&agent_selector(agent_id));
        let sessions = self.sessions.list(&selector).await.context("listing Sessions")?;
        let pods = self.pods.list(&selector).await.context("listing session pods")?;
        let pod_of = |name: &str| pods.items.iter().find(|pod| pod.name_any() == name && !is_terminating(pod));
        Ok(sessions
            .items
            .iter()
            .filter(|session| session.metadata.deletion_timestamp.is_none())
            .map(|session| InventoryItem {
                session_id: session.spec.session_id,
                state: KubernetesRuntime::observe(session, pod_of(&session.name_any())),
            })
            .collect())
    }

    async fn start(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.bring_up(spec, progress).await
    }

    /// Marks the Session hibernated and deletes its pod; the Service, NetworkPolicy, Secret and home stay.
    async fn hibernate(&self, session_id: Uuid) -> anyhow::Result<()> {
        let name = object_name(session_id);
        if get_if_present(&self.sessions, &name).await?.is_none() {
            bail!("session {session_id} has no Session to hibernate");
        }
        self.expect_exit(session_id, true);
        let patch = serde_json::json!({ "spec": { "hibernated": true } });
        let session = self
            .sessions
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("hibernating Session {name}"))?;
        delete_if_present(&self.pods, &name).await?;
        self.reconciler.write_status(&session, status_of(&ActualState::Hibernated)).await
    }

    async fn wake(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.bring_up(spec, progress).await
    }

    /// Deletes the Session and, explicitly, everything it owns (a cluster without garbage collection ends clean).
    async fn remove_home(&self, home_id: Uuid) -> anyhow::Result<()> {
        delete_if_present(&self.claims, &streamspace_proto::hub::HomeVolume::volume_name(home_id)).await
    }

    async fn stop(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.expect_exit(session_id, true);
        let name = object_name(session_id);
        delete_if_present(&self.sessions, &name).await?;
        delete_if_present(&self.pods, &name).await?;
        delete_if_present(&self.services, &name).await?;
        delete_if_present(&self.policies, &name).await?;
        delete_if_present(&self.secrets, &name).await?;
        if self.options.session.home_claim.is_some() {
            delete_if_present(&self.claims, &name).await?;
        }
        self.expect_exit(session_id, false);
        Ok(())
    }

    fn events(&self) -> BoxStream<'static, (Uuid, ActualState)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let deaths = DeathWatch {
            sessions: self.sessions.clone(),
            owner: self.owner.clone(),
            expected_exits: Arc::clone(&self.expected_exits),
            reported: HashSet::new(),
        };
        tokio::spawn(follow_pod_deaths(self.pods.clone(), deaths, tx));
        UnboundedReceiverStream::new(rx).boxed()
    }

    fn bind(&self, agent_id: Uuid) {
        self.owner.0.send_replace(Some(agent_id));
    }
}

/// What follows the pod watch needs to tell a session's death from the runtime's own doing.
struct DeathWatch {
    sessions: Api<Session>,
    owner: Owner,
    expected_exits: Arc<RwLock<HashSet<Uuid>>>,
    /// Pods already reported, by uid: each death is reported once.
    reported: HashSet<String>,
}

fn is_expected(expected_exits: &RwLock<HashSet<Uuid>>, session_id: &Uuid) -> bool {
    expected_exits.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(session_id)
}

impl DeathWatch {
    async fn judge(&mut self, event: watcher::Event<Pod>) -> Option<(Uuid, ActualState)> {
        let exits = Arc::clone(&self.expected_exits);
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                judge(&pod, &self.owner, |id| is_expected(&exits, id), &mut self.reported)
            }
            watcher::Event::Delete(pod) => self.judge_deletion(&pod).await,
            watcher::Event::Init | watcher::Event::InitDone => None,
        }
    }

    /// A pod deleted by someone else (`kubectl delete`, a drained node) while its session ran is a death too.
    async fn judge_deletion(&mut self, pod: &Pod) -> Option<(Uuid, ActualState)> {
        if !self.owner.owns(pod.labels()) {
            return None;
        }
        let session_id: Uuid = pod.labels().get(LABEL_SESSION)?.parse().ok()?;
        if is_expected(&self.expected_exits, &session_id) {
            return None;
        }
        let session = match get_if_present(&self.sessions, &pod.name_any()).await {
            Ok(session) => session?,
            Err(error) => {
                tracing::warn!(%session_id, error = format!("{error:#}"), "cannot read the Session of a deleted pod");
                return None;
            }
        };
        if !was_running_on(&session, pod) || !self.reported.insert(pod.uid().unwrap_or_else(|| pod.name_any())) {
            return None;
        }
        let reason = "the session's pod was deleted".to_string();
        tracing::warn!(%session_id, %reason, "a session died");
        Some((session_id, ActualState::Failed { reason }))
    }
}

/// Whether `session` was running on `pod` and nothing of the runtime's (hibernation, stop, wake) is under way:
/// only then is the pod's deletion a death.
fn was_running_on(session: &Session, pod: &Pod) -> bool {
    let status = session.status.clone().unwrap_or_default();
    session.metadata.deletion_timestamp.is_none()
        && !session.spec.hibernated
        && status.phase == Some(Phase::Running)
        && status.endpoint.is_some()
        && status.endpoint == endpoint(pod)
}

/// Watches the managed pods until `tx` closes, sending `Failed` once per pod of this agent that fails or is
/// deleted without the runtime ending it.
async fn follow_pod_deaths(
    pods: Api<Pod>,
    mut deaths: DeathWatch,
    tx: tokio::sync::mpsc::UnboundedSender<(Uuid, ActualState)>,
) {
    loop {
        let mut changes = watcher(pods.clone(), watcher::Config::default().labels(MANAGED_SELECTOR)).boxed();
        loop {
            let change = tokio::select! {
                () = tx.closed() => return,
                change = changes.try_next() => change,
            };
            match change {
                Ok(Some(event)) => {
                    if let Some(death) = deaths.judge(event).await
                        && tx.send(death).is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "lost the watch on session pods; watching again");
                    break;
                }
            }
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(REWATCH_DELAY) => {}
        }
    }
}

/// Whether a pod change is a session's death to report: this agent's, not being deleted, not ended by the
/// runtime, failed, and not reported before.
fn judge(
    pod: &Pod,
    owner: &Owner,
    expected: impl Fn(&Uuid) -> bool,
    reported: &mut HashSet<String>,
) -> Option<(Uuid, ActualState)> {
    if !owner.owns(pod.labels()) || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let session_id: Uuid = pod.labels().get(LABEL_SESSION)?.parse().ok()?;
    if expected(&session_id) {
        return None;
    }
    let state @ ActualState::Failed { .. } = pod_state(pod) else { return None };
    if !reported.insert(pod.uid().unwrap_or_else(|| pod.name_any())) {
        return None;
    }
    tracing::warn!(%session_id, ?state, "a session died");
    Some((session_id, state))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;
    use crate::reconcile::session_labels;

    const AGENT: Uuid = Uuid::from_u128(7);
    const SESSION: Uuid = Uuid::from_u128(9);

    fn dead_pod(agent: Uuid, uid: &str) -> Pod {
        let terminated = ContainerStateTerminated { exit_code: 1, ..ContainerStateTerminated::default() };
        Pod {
            metadata: ObjectMeta {
                name: Some(object_name(SESSION)),
                uid: Some(uid.into()),
                labels: Some(session_labels(SESSION, agent)),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState { terminated: Some(terminated), ..ContainerState::default() }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            spec: None,
        }
    }

    #[test]
    fn deaths_are_reported_once_and_only_for_this_agents_unexpected_ends() {
        let owner = Owner::default();
        let mut reported = HashSet::new();
        let never = |_: &Uuid| false;
        assert_eq!(judge(&dead_pod(AGENT, "a"), &owner, never, &mut reported), None, "not bound: nothing is ours");
        owner.0.send_replace(Some(AGENT));
        let death = judge(&dead_pod(AGENT, "a"), &owner, never, &mut reported).unwrap();
        assert_eq!(death.0, SESSION);
        assert!(matches!(death.1, ActualState::Failed { ref reason } if reason.contains("code 1")));
        assert_eq!(judge(&dead_pod(AGENT, "a"), &owner, never, &mut reported), None, "reported once");
        assert!(judge(&dead_pod(AGENT, "b"), &owner, never, &mut reported).is_some(), "a new pod dies anew");
        assert_eq!(judge(&dead_pod(Uuid::from_u128(8), "c"), &owner, never, &mut reported), None, "another agent's");
        assert_eq!(judge(&dead_pod(AGENT, "d"), &owner, |_| true, &mut reported), None, "hibernating or stopping");
        let mut deleting = dead_pod(AGENT, "e");
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(judge(&deleting, &owner, never, &mut reported), None, "being deleted");
    }

    fn session(hibernated: bool, phase: Option<Phase>) -> Session {
        let spec = crate::crd::SessionSpec {
            session_id: SESSION,
            org_id: SESSION,
            owner_id: SESSION,
            template: "t".into(),
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            egress_allow: Vec::new(),
            hibernated,
            home: None,
        };
        Session {
            status: Some(SessionStatus { phase, reason: Some("why".into()), ..SessionStatus::default() }),
            ..Session::new("s", spec)
        }
    }

    #[test]
    fn a_deleted_pod_is_a_death_only_while_its_session_ran_on_it() {
        use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

        let mut pod = dead_pod(AGENT, "a");
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                ports: Some(vec![ContainerPort { container_port: 8080, ..ContainerPort::default() }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        pod.status.as_mut().unwrap().pod_ip = Some("10.244.0.1".into());
        let on = |hibernated, phase, endpoint: &str| {
            let mut session = session(hibernated, phase);
            session.status.as_mut().unwrap().endpoint = Some(endpoint.to_string());
            session
        };
        let table = [
            (on(false, Some(Phase::Running), "http://10.244.0.1:8080"), true),
            (on(true, Some(Phase::Running), "http://10.244.0.1:8080"), false),
            (on(false, Some(Phase::Pending), "http://10.244.0.1:8080"), false),
            (on(false, Some(Phase::Failed), "http://10.244.0.1:8080"), false),
            (on(false, Some(Phase::Running), "http://10.244.0.2:8080"), false),
        ];
        for (session, want) in table {
            assert_eq!(was_running_on(&session, &pod), want, "{:?} {:?}", session.spec.hibernated, session.status);
        }
        let mut stopping = on(false, Some(Phase::Running), "http://10.244.0.1:8080");
        stopping.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!was_running_on(&stopping, &pod));
    }

    #[test]
    fn inventory_states_follow_the_session_and_its_pod() {
        let starting = ActualState::Starting { phase: streamspace_proto::SessionPhase::Scheduling, progress: None };
        let gone = ActualState::Failed { reason: "the session's pod disappeared (deleted or evicted)".into() };
        let pod = dead_pod(AGENT, "a");
        let table = [
            (session(true, Some(Phase::Hibernated)), None, ActualState::Hibernated),
            (session(false, Some(Phase::Failed)), None, ActualState::Failed { reason: "why".into() }),
            (session(false, None), None, starting.clone()),
            (session(false, Some(Phase::Pending)), None, starting),
            (session(false, Some(Phase::Running)), None, gone),
            (session(false, Some(Phase::Running)), Some(&pod), pod_state(&pod)),
        ];
        for (session, pod, want) in table {
            assert_eq!(KubernetesRuntime::observe(&session, pod), want, "{:?}", session.status);
        }
    }
}

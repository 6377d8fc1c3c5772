//! The Session controller: turns each of this agent's `Session`s into its objects with the rules of
//! [`crate::reconcile`], and writes what its pod shows into the `Session`'s status.
//!
//! The pod is created only for a session that has not run yet (or is waking): one whose pod vanished while it
//! ran is reported failed rather than silently recreated, since the control plane decides what follows a crash,
//! as with Docker.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::ActualState;
use uuid::Uuid;

use crate::api::{create_if_absent, create_or_replace, delete_if_present, get_if_present, is_conflict, same_meaning};
use crate::crd::{Phase, Session, SessionStatus, Template};
use crate::observe::pod_state;
use crate::reconcile::{
    SessionOptions, agent_selector, desired_home_claim, desired_network_policy, desired_pod, desired_service,
    object_name,
};

/// How often a settled Session is looked at again even without a change (a missed watch event, drift).
const RESYNC: Duration = Duration::from_secs(60);
/// How often a status write that meets a conflict is tried in all.
const STATUS_WRITE_ATTEMPTS: u32 = 3;
/// How soon a Session whose reconcile failed is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Everything reconciling needs: the API handles of one namespace and the agent's session options.
#[derive(Clone)]
pub struct Reconciler {
    sessions: Api<Session>,
    templates: Api<Template>,
    pods: Api<Pod>,
    services: Api<Service>,
    policies: Api<NetworkPolicy>,
    claims: Api<PersistentVolumeClaim>,
    options: SessionOptions,
}

impl Reconciler {
    pub fn new(client: Client, namespace: &str, options: SessionOptions) -> Reconciler {
        Reconciler {
            sessions: Api::namespaced(client.clone(), namespace),
            templates: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
            services: Api::namespaced(client.clone(), namespace),
            policies: Api::namespaced(client.clone(), namespace),
            claims: Api::namespaced(client, namespace),
            options,
        }
    }

    /// Brings one Session's objects to what it asks for and records what its pod shows. Idempotent.
    pub async fn reconcile(&self, session: &Session) -> anyhow::Result<()> {
        if session.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let current = session.status.clone().unwrap_or_default();
        let Some(template) = get_if_present(&self.templates, &session.spec.template).await? else {
            let reason = format!("the session's Template {} does not exist", session.spec.template);
            return self.write_status(session, failed(reason)).await;
        };
        create_if_absent(&self.services, &desired_service(session, &template)?).await?;
        // Kept exactly as derived: the session's isolation must follow the agent's current egress options.
        let policy = desired_network_policy(session, &template, &self.options)?;
        create_or_replace(&self.policies, &policy, |current, desired| !same_meaning(&current.spec, &desired.spec))
            .await?;
        if let Some(claim) = desired_home_claim(session, &self.options)? {
            create_if_absent(&self.claims, &claim).await?;
        }
        let name = object_name(session.spec.session_id);
        let pod = get_if_present(&self.pods, &name).await?;
        let status = if session.spec.hibernated {
            if pod.as_ref().is_some_and(|pod| !is_terminating(pod)) {
                delete_if_present(&self.pods, &name).await?;
            }
            SessionStatus { phase: Some(Phase::Hibernated), ..SessionStatus::default() }
        } else if current.phase == Some(Phase::Failed) {
            return Ok(());
        } else {
            match pod {
                // The pod of an earlier run (hibernated, failed) is still stopping: its new one follows once it is
                // gone, which the pod watch reports.
                Some(pod) if is_terminating(&pod) => return Ok(()),
                Some(pod) => status_of(&pod_state(&pod)),
                None if may_create_pod(current.phase) => {
                    create_if_absent(&self.pods, &desired_pod(session, &template, &self.options)?).await?;
                    SessionStatus { phase: Some(Phase::Creating), ..SessionStatus::default() }
                }
                None => failed("the session's pod disappeared (deleted or evicted)".to_string()),
            }
        };
        self.write_status(session, status).await
    }

    /// Writes the status through the status subresource, when it changed.
    pub(crate) async fn write_status(&self, session: &Session, status: SessionStatus) -> anyhow::Result<()> {
        if session.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let name = session.name_any();
        let patch = serde_json::json!({ "status": status_patch(&status) });
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.sessions.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // A merge patch has no precondition: a conflict is the server's contention, and writing again is
                // right.
                Err(error) if is_conflict(&error) && attempts < STATUS_WRITE_ATTEMPTS => continue,
                Err(error) => {
                    return Err(anyhow::Error::new(error).context(format!("writing the status of {name}")));
                }
            }
        }
    }
}

/// A merge patch replaces only the fields it names, so every field is named, absent ones as `null`.
fn status_patch(status: &SessionStatus) -> serde_json::Value {
    serde_json::json!({
        "phase": status.phase,
        "progress": status.progress,
        "endpoint": status.endpoint,
        "reason": status.reason,
    })
}

/// A pod being deleted: it still shows (for its grace period) but is not the session's any more.
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A pod is created for a Session that never had one or is waking; one missing from a Session that ran died.
fn may_create_pod(phase: Option<Phase>) -> bool {
    matches!(phase, None | Some(Phase::Pending | Phase::Hibernated))
}

fn failed(reason: String) -> SessionStatus {
    SessionStatus { phase: Some(Phase::Failed), reason: Some(reason), ..SessionStatus::default() }
}

/// The status recording a session state.
pub fn status_of(state: &ActualState) -> SessionStatus {
    match state {
        ActualState::Starting { phase, progress } => SessionStatus {
            phase: Some(match phase {
                SessionPhase::Scheduling => Phase::Pending,
                SessionPhase::Pulling => Phase::Pulling,
                SessionPhase::Creating => Phase::Creating,
                SessionPhase::Starting => Phase::Starting,
            }),
            progress: *progress,
            ..SessionStatus::default()
        },
        ActualState::Running { endpoint } => {
            SessionStatus { phase: Some(Phase::Running), endpoint: Some(endpoint.clone()), ..SessionStatus::default() }
        }
        ActualState::Hibernated => SessionStatus { phase: Some(Phase::Hibernated), ..SessionStatus::default() },
        ActualState::Stopped => SessionStatus::default(),
        ActualState::Failed { reason } => failed(reason.clone()),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct ReconcileError(anyhow::Error);

/// Runs the controller over the Sessions of `agent_id` (and their pods) until `shutdown` completes.
pub async fn run_controller<F>(client: Client, namespace: &str, options: SessionOptions, agent_id: Uuid, shutdown: F)
where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let selector = agent_selector(agent_id);
    let reconciler = Arc::new(Reconciler::new(client.clone(), namespace, options));
    let sessions: Api<Session> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    tracing::info!(%namespace, %agent_id, "the Session controller runs");
    Controller::new(sessions, watcher::Config::default().labels(&selector))
        .owns(pods, watcher::Config::default().labels(&selector))
        .graceful_shutdown_on(shutdown)
        .run(
            |session: Arc<Session>, reconciler: Arc<Reconciler>| async move {
                reconciler.reconcile(&session).await.map_err(ReconcileError)?;
                Ok::<_, ReconcileError>(Action::requeue(RESYNC))
            },
            |session: Arc<Session>, error: &ReconcileError, _| {
                tracing::warn!(session = %session.name_any(), %error, "reconciling a Session failed; retrying");
                Action::requeue(RETRY)
            },
            reconciler,
        )
        .for_each(|_| async {})
        .await;
    tracing::info!("the Session controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_created_only_for_sessions_that_have_not_run_or_are_waking() {
        let table = [
            (None, true),
            (Some(Phase::Pending), true),
            (Some(Phase::Hibernated), true),
            (Some(Phase::Pulling), false),
            (Some(Phase::Creating), false),
            (Some(Phase::Starting), false),
            (Some(Phase::Running), false),
            (Some(Phase::Failed), false),
        ];
        for (phase, want) in table {
            assert_eq!(may_create_pod(phase), want, "{phase:?}");
        }
    }

    #[test]
    fn states_become_statuses_and_patches_clear_what_is_gone() {
        let running = status_of(&ActualState::Running { endpoint: "http://10.0.0.1:8080".into() });
        assert_eq!((running.phase, running.endpoint.as_deref()), (Some(Phase::Running), Some("http://10.0.0.1:8080")));
        let pulling = status_of(&ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(40) });
        assert_eq!((pulling.phase, pulling.progress), (Some(Phase::Pulling), Some(40)));
        let scheduling = status_of(&ActualState::Starting { phase: SessionPhase::Scheduling, progress: None });
        assert_eq!(scheduling.phase, Some(Phase::Pending));
        let failed = status_of(&ActualState::Failed { reason: "OOMKilled".into() });
        assert_eq!((failed.phase, failed.reason.as_deref()), (Some(Phase::Failed), Some("OOMKilled")));
        assert_eq!(
            status_patch(&failed),
            serde_json::json!({"phase": "Failed", "progress": null, "endpoint": null, "reason": "OOMKilled"})
        );
    }
}

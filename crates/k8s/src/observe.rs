//! Pure readings of what the kubelet reports: a pod's status and events as the session's actual state.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting, Pod, PodStatus};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::ActualState;

/// Waiting reasons the kubelet would keep retrying, but which a session does not recover from: an image that
/// cannot be pulled or run, a container that keeps crashing, an image `runAsNonRoot` refuses.
const FATAL_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// The session's state as its pod shows it.
pub fn pod_state(pod: &Pod) -> ActualState {
    let Some(status) = &pod.status else { return starting(SessionPhase::Scheduling) };
    if let Some(reason) = failure(status) {
        return ActualState::Failed { reason };
    }
    match status.phase.as_deref() {
        Some("Running") => match (is_ready(status), endpoint(pod)) {
            (true, Some(endpoint)) => ActualState::Running { endpoint },
            _ => starting(SessionPhase::Starting),
        },
        _ if is_scheduled(status) => starting(SessionPhase::Creating),
        _ => starting(SessionPhase::Scheduling),
    }
}

fn starting(phase: SessionPhase) -> ActualState {
    ActualState::Starting { phase, progress: None }
}

/// Why the session's pod will not (or no longer) run, if it will not.
fn failure(status: &PodStatus) -> Option<String> {
    let container = status.container_statuses.iter().flatten().next();
    let state = container.and_then(|container| container.state.as_ref());
    if let Some(waiting) = state.and_then(|state| state.waiting.as_ref())
        && let Some(reason) = waiting.reason.as_deref()
        && FATAL_WAITING_REASONS.contains(&reason)
    {
        return Some(waiting_reason(reason, waiting));
    }
    if let Some(terminated) = state.and_then(|state| state.terminated.as_ref()) {
        return Some(exit_reason(terminated));
    }
    match status.phase.as_deref() {
        Some("Failed" | "Succeeded") => Some(match (status.reason.as_deref(), status.message.as_deref()) {
            (Some(reason), Some(message)) => format!("the pod stopped ({reason}): {message}"),
            (Some(reason), None) => format!("the pod stopped ({reason})"),
            _ => "the pod stopped".to_string(),
        }),
        _ => None,
    }
}

fn waiting_reason(reason: &str, waiting: &ContainerStateWaiting) -> String {
    let what = match reason {
        "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => "the image cannot be pulled",
        "InvalidImageName" => "the image name is invalid",
        "CrashLoopBackOff" => "the session keeps crashing",
        _ => "the session's container cannot be started",
    };
    match waiting.message.as_deref().filter(|message| !message.is_empty()) {
        Some(message) => format!("{what} ({reason}): {message}"),
        None => format!("{what} ({reason})"),
    }
}

/// The same words the Docker runtime uses for a container that ended.
fn exit_reason(terminated: &ContainerStateTerminated) -> String {
    if terminated.reason.as_deref() == Some("OOMKilled") {
        return "the session ran out of memory and was killed (OOMKilled)".to_string();
    }
    match terminated.exit_code {
        code @ 129..=159 => {
            format!("the container exited unexpectedly with code {code} (killed by signal {})", code - 128)
        }
        code => format!("the container exited unexpectedly with code {code}"),
    }
}

fn condition_true(status: &PodStatus, kind: &str) -> bool {
    status.conditions.iter().flatten().any(|condition| condition.type_ == kind && condition.status == "True")
}

fn is_ready(status: &PodStatus) -> bool {
    condition_true(status, "Ready")
}

fn is_scheduled(status: &PodStatus) -> bool {
    condition_true(status, "PodScheduled") || status.container_statuses.as_ref().is_some_and(|all| !all.is_empty())
}

/// `http://<pod IP>:<streamer port>`, once the pod has an address.
pub fn endpoint(pod: &Pod) -> Option<String> {
    let ip: std::net::IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    let port = pod.spec.as_ref()?.containers.first()?.ports.as_ref()?.first()?.container_port;
    Some(format!("http://{}", std::net::SocketAddr::new(ip, u16::try_from(port).ok()?)))
}

/// The progress a kubelet event on the session's pod shows. The kubelet reports a pull's start and end, not
/// its bytes, so a pull is 0 % until the image is there.
pub fn event_progress(reason: &str) -> Option<ActualState> {
    match reason {
        "Scheduled" => Some(starting(SessionPhase::Creating)),
        "Pulling" => Some(ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(0) }),
        "Pulled" => Some(ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(100) }),
        "Created" | "Started" => Some(starting(SessionPhase::Starting)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, ContainerState, ContainerStatus, PodCondition, PodSpec,
    };

    use super::*;

    fn pod(phase: &str, conditions: &[(&str, &str)], state: Option<ContainerState>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    ports: Some(vec![ContainerPort { container_port: 8080, ..ContainerPort::default() }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: Some("10.42.0.7".into()),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(kind, status)| PodCondition {
                            type_: kind.to_string(),
                            status: status.to_string(),
                            ..PodCondition::default()
                        })
                        .collect(),
                ),
                container_statuses: state.map(|state| {
                    vec![ContainerStatus { name: "session".into(), state: Some(state), ..ContainerStatus::default() }]
                }),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn waiting(reason: &str, message: &str) -> Option<ContainerState> {
        Some(ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: Some(message.into()) }),
            ..ContainerState::default()
        })
    }

    fn terminated(reason: &str, exit_code: i32) -> Option<ContainerState> {
        Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.into()),
                exit_code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        })
    }

    fn failed(reason: &str) -> ActualState {
        ActualState::Failed { reason: reason.into() }
    }

    #[test]
    fn pod_states_become_session_states() {
        let scheduled = [("PodScheduled", "True")];
        let table = [
            (pod("Pending", &[], None), starting(SessionPhase::Scheduling)),
            (pod("Pending", &[("PodScheduled", "False")], None), starting(SessionPhase::Scheduling)),
            (pod("Pending", &scheduled, None), starting(SessionPhase::Creating)),
            (pod("Pending", &scheduled, waiting("ContainerCreating", "")), starting(SessionPhase::Creating)),
            (pod("Running", &[("Ready", "False")], None), starting(SessionPhase::Starting)),
            (
                pod("Running", &[("Ready", "True")], None),
                ActualState::Running { endpoint: "http://10.42.0.7:8080".into() },
            ),
            (
                pod("Pending", &scheduled, waiting("ImagePullBackOff", "Back-off pulling image \"nope\"")),
                failed("the image cannot be pulled (ImagePullBackOff): Back-off pulling image \"nope\""),
            ),
            (
                pod("Pending", &scheduled, waiting("ErrImagePull", "")),
                failed("the image cannot be pulled (ErrImagePull)"),
            ),
            (
                pod(
                    "Pending",
                    &scheduled,
                    waiting("CreateContainerConfigError", "container has runAsNonRoot and image will run as root"),
                ),
                failed(
                    "the session's container cannot be started (CreateContainerConfigError): container has runAsNonRoot and image will run as root",
                ),
            ),
            (
                pod("Running", &scheduled, waiting("CrashLoopBackOff", "")),
                failed("the session keeps crashing (CrashLoopBackOff)"),
            ),
            (
                pod("Failed", &scheduled, terminated("OOMKilled", 137)),
                failed("the session ran out of memory and was killed (OOMKilled)"),
            ),
            (
                pod("Running", &[("Ready", "True")], terminated("Error", 137)),
                failed("the container exited unexpectedly with code 137 (killed by signal 9)"),
            ),
            (
                pod("Failed", &scheduled, terminated("Error", 1)),
                failed("the container exited unexpectedly with code 1"),
            ),
            (pod("Failed", &scheduled, None), failed("the pod stopped")),
        ];
        for (pod, want) in table {
            assert_eq!(pod_state(&pod), want, "{:?}", pod.status);
        }
        let mut evicted = pod("Failed", &scheduled, None);
        let status = evicted.status.as_mut().unwrap();
        (status.reason, status.message) = (Some("Evicted".into()), Some("low on memory".into()));
        assert_eq!(pod_state(&evicted), failed("the pod stopped (Evicted): low on memory"));
        assert_eq!(pod_state(&Pod::default()), starting(SessionPhase::Scheduling));
    }

    #[test]
    fn endpoints_are_the_pod_ip_and_the_streamer_port() {
        let mut pod = pod("Running", &[("Ready", "True")], None);
        assert_eq!(endpoint(&pod).as_deref(), Some("http://10.42.0.7:8080"));
        pod.status.as_mut().unwrap().pod_ip = Some("fd00::7".into());
        assert_eq!(endpoint(&pod).as_deref(), Some("http://[fd00::7]:8080"));
        pod.status.as_mut().unwrap().pod_ip = None;
        assert_eq!(endpoint(&pod), None);
        assert_eq!(pod_state(&pod), starting(SessionPhase::Starting), "ready without an address is not running");
    }

    #[test]
    fn kubelet_events_show_pull_progress() {
        let pulling = |progress| ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(progress) };
        let table = [
            ("Scheduled", Some(starting(SessionPhase::Creating))),
            ("Pulling", Some(pulling(0))),
            ("Pulled", Some(pulling(100))),
            ("Created", Some(starting(SessionPhase::Starting))),
            ("Started", Some(starting(SessionPhase::Starting))),
            ("BackOff", None),
        ];
        for (reason, want) in table {
            assert_eq!(event_progress(reason), want, "{reason}");
        }
    }
}

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

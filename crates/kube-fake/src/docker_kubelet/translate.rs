//! What a pod's container asks of the node, said to `docker run`: the translation a container runtime interface
//! does for a real kubelet, for the fields the agent's pods use. A field the stand-in cannot honour is an error
//! (the pod fails to start), never silently dropped, so a test never passes on hardening that was not applied.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The environment and the `docker run` options (everything before the image) of a pod's container, and what
/// follows the image. Environment values are passed to the docker CLI through its own environment, never on its
/// command line, so secrets do not show in `ps`.
#[derive(Debug, PartialEq)]
pub struct RunPlan {
    pub options: Vec<String>,
    pub env: Vec<(String, String)>,
    pub image: String,
    pub args: Vec<String>,
}

impl RunPlan {
    /// The arguments of the docker CLI.
    pub fn arguments(&self) -> Vec<String> {
        let mut arguments = vec!["run".to_string()];
        arguments.extend(self.options.iter().cloned());
        arguments.push(self.image.clone());
        arguments.extend(self.args.iter().cloned());
        arguments
    }
}

/// Why a container cannot be created as its pod says; a kubelet reports it as `CreateContainerConfigError`.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

/// What the node knows beyond the pod: where the container goes and who it is.
pub struct Placement<'a> {
    pub container_name: &'a str,
    pub network: &'a str,
    pub labels: &'a [(String, String)],
    /// The image's `USER`, as `docker image inspect` reports it (empty when the image sets none).
    pub image_user: &'a str,
}

/// Plans `docker run` for `container` of `pod`, with its environment already resolved (`env`).
pub fn plan(
    pod: &Pod,
    container: &Container,
    env: Vec<(String, String)>,
    placement: &Placement<'_>,
) -> Result<RunPlan, ConfigError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let mut options = vec![
        "--detach".to_string(),
        "--name".into(),
        placement.container_name.into(),
        "--hostname".into(),
        pod_name,
        "--network".into(),
        placement.network.into(),
        "--restart".into(),
        "no".into(),
    ];
    for (key, value) in placement.labels {
        options.extend(["--label".to_string(), format!("{key}={value}")]);
    }
    for (name, _) in &env {
        options.extend(["--env".to_string(), name.clone()]);
    }
    options.extend(security_options(pod, container, placement.image_user)?);
    options.extend(resource_options(container)?);
    options.extend(volume_options(pod, container)?);
    if let Some(dir) = &container.working_dir {
        options.extend(["--workdir".to_string(), dir.clone()]);
    }
    let mut args = Vec::new();
    if let Some(command) = container.command.as_ref().filter(|command| !command.is_empty()) {
        options.extend(["--entrypoint".to_string(), command[0].clone()]);
        args.extend(command[1..].iter().cloned());
    }
    args.extend(container.args.iter().flatten().cloned());
    let image = container.image.clone().ok_or_else(|| ConfigError("the container names no image".into()))?;
    Ok(RunPlan { options, env, image, args })
}

/// The container's security context over the pod's, as the kubelet merges them.
struct Effective<'a> {
    pod: Option<&'a PodSecurityContext>,
    container: Option<&'a SecurityContext>,
}

impl Effective<'_> {
    fn run_as_user(&self) -> Option<i64> {
        self.container.and_then(|c| c.run_as_user).or(self.pod.and_then(|p| p.run_as_user))
    }

    fn run_as_group(&self) -> Option<i64> {
        self.container.and_then(|c| c.run_as_group).or(self.pod.and_then(|p| p.run_as_group))
    }

    fn run_as_non_root(&self) -> bool {
        self.container.and_then(|c| c.run_as_non_root).or(self.pod.and_then(|p| p.run_as_non_root)) == Some(true)
    }

    fn seccomp_type(&self) -> Option<&str> {
        let container = self.container.and_then(|c| c.seccomp_profile.as_ref());
        container.or(self.pod.and_then(|p| p.seccomp_profile.as_ref())).map(|profile| profile.type_.as_str())
    }
}

fn security_options(pod: &Pod, container: &Container, image_user: &str) -> Result<Vec<String>, ConfigError> {
    let spec = pod.spec.as_ref();
    let effective = Effective {
        pod: spec.and_then(|spec| spec.security_context.as_ref()),
        container: container.security_context.as_ref(),
    };
    let context = container.security_context.clone().unwrap_or_default();
    let mut options = Vec::new();
    if effective.run_as_non_root() {
        verify_non_root(pod, container, effective.run_as_user(), image_user)?;
    }
    let image_uid = image_user.split(':').next().unwrap_or_default();
    match (effective.run_as_user(), effective.run_as_group()) {
        (Some(uid), Some(gid)) => options.extend(["--user".to_string(), format!("{uid}:{gid}")]),
        (Some(uid), None) => options.extend(["--user".to_string(), uid.to_string()]),
        (None, Some(gid)) => options.extend(["--user".to_string(), format!("{}:{gid}", or_root(image_uid))]),
        (None, None) => {}
    }
    for group in effective.pod.and_then(|p| p.supplemental_groups.as_ref()).into_iter().flatten() {
        options.extend(["--group-add".to_string(), group.to_string()]);
    }
    if context.privileged == Some(true) {
        options.push("--privileged".into());
    }
    // Kubernetes lets a process gain privileges unless told otherwise.
    if context.allow_privilege_escalation == Some(false) {
        options.extend(["--security-opt".to_string(), "no-new-privileges".into()]);
    }
    if context.read_only_root_filesystem == Some(true) {
        options.push("--read-only".into());
    }
    let capabilities = context.capabilities.unwrap_or_default();
    for drop in capabilities.drop.iter().flatten() {
        options.extend(["--cap-drop".to_string(), drop.clone()]);
    }
    for add in capabilities.add.iter().flatten() {
        options.extend(["--cap-add".to_string(), add.clone()]);
    }
    options.extend(seccomp_options(effective.seccomp_type())?);
    Ok(options)
}

fn or_root(uid: &str) -> &str {
    if uid.is_empty() { "0" } else { uid }
}

/// A kubelet's default is no seccomp filter at all (unless the node sets `seccompDefault`), so only an explicit
/// `RuntimeDefault` gets the runtime's filter here.
fn seccomp_options(profile: Option<&str>) -> Result<Vec<String>, ConfigError> {
    match profile {
        Some("RuntimeDefault") => Ok(Vec::new()),
        None | Some("Unconfined") => Ok(vec!["--security-opt".into(), "seccomp=unconfined".into()]),
        Some(other) => {
            Err(ConfigError(format!("seccomp profile type {other} is not supported by the kubelet stand-in")))
        }
    }
}

/// The kubelet's check of `runAsNonRoot`, with its messages.
fn verify_non_root(
    pod: &Pod,
    container: &Container,
    run_as_user: Option<i64>,
    image_user: &str,
) -> Result<(), ConfigError> {
    let pod_ref = format!(
        "pod: \"{}_{}({})\", container: {}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
        container.name
    );
    let uid = match run_as_user {
        Some(uid) => uid,
        None => {
            let image_uid = image_user.split(':').next().unwrap_or_default();
            match or_root(image_uid).parse::<i64>() {
                Ok(uid) => uid,
                Err(_) => {
                    return Err(ConfigError(format!(
                        "container has runAsNonRoot and image has non-numeric user ({image_uid}), cannot verify user is non-root ({pod_ref})"
                    )));
                }
            }
        }
    };
    if uid == 0 {
        return Err(ConfigError(format!("container has runAsNonRoot and image will run as root ({pod_ref})")));
    }
    Ok(())
}

fn resource_options(container: &Container) -> Result<Vec<String>, ConfigError> {
    let limits = container.resources.as_ref().and_then(|resources| resources.limits.as_ref());
    let mut options = Vec::new();
    if let Some(cpu) = limits.and_then(|limits| limits.get("cpu")) {
        options.extend(["--cpus".to_string(), format!("{}", cpu_cores(cpu)?)]);
    }
    if let Some(memory) = limits.and_then(|limits| limits.get("memory")) {
        let bytes = bytes(memory)?;
        // No swap beyond the limit, as on a kubelet's node.
        options.extend(["--memory".to_string(), bytes.to_string(), "--memory-swap".into(), bytes.to_string()]);
    }
    Ok(options)
}

/// emptyDir volumes become tmpfs mounts; one at `/dev/shm` sizes the shared memory instead. Other kinds of volume
/// are not the stand-in's to provide.
fn volume_options(pod: &Pod, container: &Container) -> Result<Vec<String>, ConfigError> {
    let volumes: &[Volume] = pod.spec.as_ref().and_then(|spec| spec.volumes.as_deref()).unwrap_or_default();
    let mut options = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|volume| volume.name == mount.name)
            .ok_or_else(|| ConfigError(format!("volume {} is mounted but not declared", mount.name)))?;
        let empty_dir = volume.empty_dir.as_ref().ok_or_else(|| {
            ConfigError(format!("volume {}: only emptyDir volumes are supported by the kubelet stand-in", volume.name))
        })?;
        let size = empty_dir.size_limit.as_ref().map(bytes).transpose()?;
        if mount.mount_path == "/dev/shm" {
            options.extend(["--shm-size".to_string(), size.unwrap_or(64 * 1024 * 1024).to_string()]);
            continue;
        }
        let mut tmpfs = format!("type=tmpfs,destination={}", mount.mount_path);
        if let Some(size) = size {
            tmpfs.push_str(&format!(",tmpfs-size={size}"));
        }
        options.extend(["--mount".to_string(), tmpfs]);
    }
    Ok(options)
}

/// A CPU quantity (`500m`, `2`, `0.5`) in cores.
fn cpu_cores(quantity: &Quantity) -> Result<f64, ConfigError> {
    let text = quantity.0.trim();
    let parsed = match text.strip_suffix('m') {
        Some(millis) => millis.parse::<f64>().map(|millis| millis / 1000.0),
        None => text.parse::<f64>(),
    };
    parsed.map_err(|_| ConfigError(format!("cannot read the CPU quantity {text:?}")))
}

/// A memory quantity (`256Mi`, `1G`, `134217728`) in bytes.
fn bytes(quantity: &Quantity) -> Result<u64, ConfigError> {
    const SUFFIXES: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    let text = quantity.0.trim();
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|number| (number, *scale)))
        .unwrap_or((text, 1.0));
    let value = number.parse::<f64>().map_err(|_| ConfigError(format!("cannot read the quantity {text:?}")))?;
    Ok((value * scale).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "ss-1", "namespace": "sessions", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn placement(image_user: &str) -> Placement<'_> {
        Placement { container_name: "k8s-ss-1", network: "pods", labels: &[], image_user }
    }

    fn plan_of(pod: &Pod, image_user: &str) -> Result<RunPlan, ConfigError> {
        let container = &pod.spec.as_ref().unwrap().containers[0];
        plan(pod, container, vec![("A".into(), "secret value".into())], &placement(image_user))
    }

    #[test]
    fn a_hardened_container_is_run_with_every_restriction_it_asks_for() {
        let pod = pod(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}}],
            "containers": [{
                "name": "session",
                "image": "streamspace/fixture:latest",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
            }],
        }));
        let plan = plan_of(&pod, "1000").unwrap();
        let options = plan.options.join(" ");
        for expected in [
            "--name k8s-ss-1",
            "--hostname ss-1",
            "--network pods",
            "--restart no",
            "--env A",
            "--security-opt no-new-privileges",
            "--read-only",
            "--cap-drop ALL",
            "--cpus 0.5",
            "--memory 268435456 --memory-swap 268435456",
            "--mount type=tmpfs,destination=/tmp",
            "--shm-size 134217728",
        ] {
            assert!(options.contains(expected), "{expected} in {options}");
        }
        assert!(!options.contains("seccomp"), "RuntimeDefault is Docker's own filter: {options}");
        assert!(!options.contains("secret value"), "values stay off the command line");
        assert_eq!(plan.env, [("A".to_string(), "secret value".to_string())]);
        assert_eq!(plan.image, "streamspace/fixture:latest");
    }

    #[test]
    fn without_a_seccomp_profile_the_container_runs_unconfined_as_on_a_default_kubelet() {
        let pod = pod(json!({"containers": [{"name": "session", "image": "x"}]}));
        let options = plan_of(&pod, "").unwrap().options.join(" ");
        assert!(options.contains("--security-opt seccomp=unconfined"), "{options}");
        assert!(!options.contains("no-new-privileges") && !options.contains("--read-only"), "{options}");
    }

    #[test]
    fn run_as_non_root_refuses_an_image_that_would_run_as_root() {
        let pod =
            pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "session", "image": "x"}]}));
        let expected =
            "container has runAsNonRoot and image will run as root (pod: \"ss-1_sessions(u-1)\", container: session)";
        assert_eq!(plan_of(&pod, ""), Err(ConfigError(expected.into())));
        assert_eq!(plan_of(&pod, "0:0").unwrap_err().0, expected);
        let named = plan_of(&pod, "fixture").unwrap_err().0;
        assert!(named.starts_with("container has runAsNonRoot and image has non-numeric user (fixture)"), "{named}");
        assert!(plan_of(&pod, "1000").is_ok());
    }

    #[test]
    fn run_as_user_overrides_the_image_user_and_the_container_overrides_the_pod() {
        let pod = pod(json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "runAsGroup": 3000},
            "containers": [{"name": "session", "image": "x", "securityContext": {"runAsUser": 2000}}],
        }));
        let options = plan_of(&pod, "").unwrap().options.join(" ");
        assert!(options.contains("--user 2000:3000"), "{options}");
    }

    #[test]
    fn command_and_args_replace_the_entrypoint_and_cmd() {
        let pod = pod(
            json!({"containers": [{"name": "session", "image": "x", "command": ["/bin/sh", "-c"], "args": ["exit 1"]}]}),
        );
        let plan = plan_of(&pod, "1").unwrap();
        assert!(plan.options.join(" ").contains("--entrypoint /bin/sh"));
        assert_eq!(plan.args, ["-c", "exit 1"]);
    }

    #[test]
    fn volumes_the_stand_in_cannot_provide_fail_the_container() {
        let pod = pod(json!({
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "ss-1"}}],
            "containers": [{"name": "session", "image": "x", "volumeMounts": [{"name": "home", "mountPath": "/home"}]}],
        }));
        let error = plan_of(&pod, "1").unwrap_err().0;
        assert!(error.contains("only emptyDir volumes"), "{error}");
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        let quantity = |text: &str| Quantity(text.into());
        assert_eq!(cpu_cores(&quantity("250m")), Ok(0.25));
        assert_eq!(cpu_cores(&quantity("2")), Ok(2.0));
        assert_eq!(bytes(&quantity("1Gi")), Ok(1 << 30));
        assert_eq!(bytes(&quantity("1G")), Ok(1_000_000_000));
        assert_eq!(bytes(&quantity("4096")), Ok(4096));
        assert!(bytes(&quantity("lots")).is_err());
    }
}

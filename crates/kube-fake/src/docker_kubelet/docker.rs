//! The Docker engine, through its CLI: the only container runtime the stand-in has.

use std::process::Output;

use tokio::process::Command;

/// Why a docker command did not do what was asked: its stderr, or why it could not run.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerError(pub String);

impl std::fmt::Display for DockerError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Runs `docker args…` with `env` added to the CLI's own environment; its trimmed stdout on success.
pub async fn run_with_env(args: &[String], env: &[(String, String)]) -> Result<String, DockerError> {
    let output = Command::new("docker")
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| DockerError(format!("the docker CLI cannot run: {error}")))?;
    outcome(output)
}

pub async fn run(args: &[&str]) -> Result<String, DockerError> {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    run_with_env(&args, &[]).await
}

/// The same, for `Drop`, where nothing can be awaited.
pub fn run_blocking(args: &[&str]) -> Result<String, DockerError> {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .map_err(|error| DockerError(format!("the docker CLI cannot run: {error}")))?;
    outcome(output)
}

fn outcome(output: Output) -> Result<String, DockerError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(DockerError(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

/// What `docker inspect` says of a container's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub running: bool,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
}

pub async fn state(container: &str) -> Result<ContainerState, DockerError> {
    let format =
        "{{.State.Running}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.State.StartedAt}} {{.State.FinishedAt}}";
    let line = run(&["container", "inspect", "--format", format, container]).await?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [running, exit_code, oom_killed, started_at, finished_at] = fields[..] else {
        return Err(DockerError(format!("unexpected container state {line:?}")));
    };
    Ok(ContainerState {
        running: running == "true",
        exit_code: exit_code.parse().unwrap_or(-1),
        oom_killed: oom_killed == "true",
        started_at: started_at.into(),
        finished_at: finished_at.into(),
    })
}

/// The containers carrying every one of `labels`, running ones only or all.
pub async fn containers_labelled(labels: &[(&str, &str)], running_only: bool) -> Result<Vec<String>, DockerError> {
    let mut args = vec!["ps".to_string(), "--quiet".into(), "--no-trunc".into()];
    if !running_only {
        args.push("--all".into());
    }
    for (key, value) in labels {
        args.extend(["--filter".to_string(), format!("label={key}={value}")]);
    }
    Ok(run_with_env(&args, &[]).await?.lines().map(str::to_string).collect())
}

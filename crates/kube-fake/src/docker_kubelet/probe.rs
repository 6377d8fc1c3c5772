//! Readiness probes, run from the node against the pod IP as a kubelet runs them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::docker;

/// How and how often to probe a container's readiness.
#[derive(Debug, Clone)]
pub struct Readiness {
    check: Check,
    pub period: Duration,
    pub initial_delay: Duration,
    timeout: Duration,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone)]
enum Check {
    HttpGet { port: u16, path: String },
    TcpSocket { port: u16 },
    Exec { command: Vec<String> },
}

/// Probes run at least once a second, even if the pod asks for less often: readiness comes sooner, never
/// differently.
const FASTEST_PERIOD: Duration = Duration::from_secs(1);

impl Readiness {
    /// The container's readiness probe, or None if it has none (it is ready as soon as it runs).
    pub fn of(container: &Container) -> Result<Option<Readiness>, String> {
        let Some(probe) = &container.readiness_probe else { return Ok(None) };
        let check = check(container, probe)?;
        let seconds = |value: Option<i32>, default: i32| Duration::from_secs(value.unwrap_or(default).max(0) as u64);
        Ok(Some(Readiness {
            check,
            period: seconds(probe.period_seconds, 10).min(FASTEST_PERIOD),
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            timeout: seconds(probe.timeout_seconds, 1),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }))
    }

    /// Whether the container at `pod_ip` (container id `container`) passes the probe now.
    pub async fn passes(&self, pod_ip: &str, container: &str) -> bool {
        match &self.check {
            Check::HttpGet { port, path } => {
                tokio::time::timeout(self.timeout, http_get(pod_ip, *port, path)).await.unwrap_or(false)
            }
            Check::TcpSocket { port } => {
                matches!(tokio::time::timeout(self.timeout, TcpStream::connect((pod_ip, *port))).await, Ok(Ok(_)))
            }
            Check::Exec { command } => {
                let args = [&["exec".to_string(), container.to_string()], command.as_slice()].concat();
                let run = docker::run_with_env(&args, &[]);
                matches!(tokio::time::timeout(self.timeout, run).await, Ok(Ok(_)))
            }
        }
    }
}

fn check(container: &Container, probe: &Probe) -> Result<Check, String> {
    if let Some(get) = &probe.http_get {
        if get.scheme.as_deref().is_some_and(|scheme| scheme != "HTTP") || get.host.is_some() {
            return Err("the kubelet stand-in probes plain HTTP on the pod IP only".into());
        }
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        return Ok(Check::HttpGet { port: port(container, &get.port)?, path });
    }
    if let Some(socket) = &probe.tcp_socket {
        return Ok(Check::TcpSocket { port: port(container, &socket.port)? });
    }
    if let Some(exec) = &probe.exec {
        return Ok(Check::Exec { command: exec.command.clone().unwrap_or_default() });
    }
    Err("the readiness probe has no handler the kubelet stand-in runs (httpGet, tcpSocket, exec)".into())
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|port| port.name.as_deref() == Some(name))
            .map(|port| port.container_port)
            .ok_or_else(|| format!("the probe names port {name:?}, which the container does not declare"))?,
    };
    u16::try_from(number).map_err(|_| format!("the probe's port {number} is out of range"))
}

/// A kubelet's HTTP probe: success is a status from 200 to 399.
async fn http_get(address: &str, port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect((address, port)).await else { return false };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).await.is_err() {
        return false;
    }
    let status = std::str::from_utf8(&head[9..12]).ok().and_then(|code| code.parse::<u16>().ok());
    head.starts_with(b"HTTP/1.") && status.is_some_and(|status| (200..400).contains(&status))
}

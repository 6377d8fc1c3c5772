//! The used space of persistent homes, by Docker's own accounting (`GET /system/df`).
//!
//! bollard's typed answer to `df` knows only the shape of API 1.52 and later (`VolumeUsage.Items`);
//! older engines (this machine's 20.10 speaks 1.41) answer with a top-level `Volumes` list, which
//! that type drops. So the engine's answer is read as plain JSON over its socket and both shapes
//! are understood.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// The sizes of the engine's volumes, by name.
#[async_trait]
pub(crate) trait VolumeSizes: Send + Sync {
    async fn volume_sizes(&self) -> anyhow::Result<HashMap<String, i64>>;
}

/// Where the Docker engine listens, as `DOCKER_HOST` says (bollard's local defaults read it the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    Unix(PathBuf),
    Tcp(String),
    /// A `DOCKER_HOST` this reader does not speak (ssh://, TLS): sessions still run, homes go unmeasured.
    Unreadable(String),
}

impl Engine {
    pub(crate) fn from_env() -> Engine {
        Engine::parse(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    fn parse(docker_host: Option<&str>) -> Engine {
        let host = docker_host.unwrap_or("unix:///var/run/docker.sock");
        if let Some(path) = host.strip_prefix("unix://") {
            return Engine::Unix(PathBuf::from(path));
        }
        match host.strip_prefix("tcp://") {
            Some(address) if !address.is_empty() => Engine::Tcp(address.trim_end_matches('/').to_owned()),
            _ => Engine::Unreadable(host.to_owned()),
        }
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        match self {
            Engine::Unix(socket) => {
                let stream = UnixStream::connect(socket)
                    .await
                    .with_context(|| format!("connecting to the Docker engine at {}", socket.display()))?;
                get_json(stream, path).await
            }
            Engine::Tcp(address) => {
                let stream = TcpStream::connect(address)
                    .await
                    .with_context(|| format!("connecting to the Docker engine at {address}"))?;
                get_json(stream, path).await
            }
            Engine::Unreadable(host) => {
                bail!("cannot measure home volumes through DOCKER_HOST {host:?}: only unix:// and tcp:// are read")
            }
        }
    }
}

#[async_trait]
impl VolumeSizes for Engine {
    async fn volume_sizes(&self) -> anyhow::Result<HashMap<String, i64>> {
        // `type` (API 1.42+) spares older engines nothing but newer ones the image and container walk;
        // `verbose` makes API 1.52+ list the volumes one by one.
        let answer = self.get_json("/system/df?type=volume&verbose=1").await.context("asking Docker for disk usage")?;
        Ok(sizes_in(&answer))
    }
}

/// One HTTP/1.1 GET on its own connection; the measurement runs once a minute at most.
async fn get_json<S>(stream: S, path: &str) -> anyhow::Result<Value>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path).header(hyper::header::HOST, "docker").body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    driver.abort();
    ensure!(status.is_success(), "GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).with_context(|| format!("GET {path} answered something other than JSON"))
}

/// The volume sizes in a `df` answer of either shape. Docker says -1 for a size it did not compute.
fn sizes_in(answer: &Value) -> HashMap<String, i64> {
    let legacy = answer.get("Volumes");
    let current = answer.get("VolumeUsage").and_then(|usage| usage.get("Items"));
    let volumes = [legacy, current].into_iter().flatten().filter_map(Value::as_array).flatten();
    volumes
        .filter_map(|volume| {
            let name = volume.get("Name")?.as_str()?;
            let size = volume.get("UsageData")?.get("Size")?.as_i64()?;
            (size >= 0).then(|| (name.to_owned(), size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn docker_host_names_a_socket_or_a_tcp_address_else_homes_go_unmeasured() {
        assert_eq!(Engine::parse(None), Engine::Unix("/var/run/docker.sock".into()));
        assert_eq!(
            Engine::parse(Some("unix:///run/user/1000/docker.sock")),
            Engine::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(Engine::parse(Some("tcp://10.0.0.5:2375/")), Engine::Tcp("10.0.0.5:2375".into()));
        for unread in ["ssh://me@host", "tcp://", "npipe:////./pipe/docker_engine"] {
            let engine = Engine::parse(Some(unread));
            assert_eq!(engine, Engine::Unreadable(unread.into()));
            let error = engine.volume_sizes().await.unwrap_err();
            assert!(format!("{error:#}").contains("only unix:// and tcp://"), "{error:#}");
        }
    }

    #[test]
    fn both_shapes_of_the_answer_give_the_sizes_docker_computed() {
        let volume = |name: &str, size: i64| json!({"Name": name, "UsageData": {"Size": size, "RefCount": 0}});
        let legacy = json!({"LayersSize": 0, "Volumes": [volume("ss-home-a", 4096), volume("other", -1)]});
        assert_eq!(sizes_in(&legacy), HashMap::from([("ss-home-a".to_owned(), 4096)]));
        let current = json!({"VolumeUsage": {"TotalSize": 10, "Items": [volume("ss-home-b", 10)]}});
        assert_eq!(sizes_in(&current), HashMap::from([("ss-home-b".to_owned(), 10)]));
        assert!(sizes_in(&json!({"VolumeUsage": {"TotalSize": 0}})).is_empty());
    }
}

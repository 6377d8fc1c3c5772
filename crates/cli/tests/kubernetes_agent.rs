//! The Kubernetes agent the control plane registers from its settings (what the Helm chart relies on): the
//! built binary registers it, its token authenticates as that agent, a new token re-keys it on the next start,
//! and no token reaches the log.

mod common;

use std::path::Path;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use streamspace_proto::hub::{AgentMessage, Capacity, Envelope, Platform, ServerMessage};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const FIRST_TOKEN: &str = "ssa_chart-generated-first-token-0123456789";
const SECOND_TOKEN: &str = "ssa_chart-generated-second-token-987654321";

/// A control plane with the settings the Helm chart gives it, as environment variables from its Secret.
async fn start(dir: &Path, token: &str, networks: &str) -> ControlPlane {
    let env =
        [("STREAMSPACE_KUBERNETES_AGENT_TOKEN", token), ("STREAMSPACE_KUBERNETES_AGENT_ENDPOINT_CIDRS", networks)];
    ControlPlane::start_with_env(dir, &["--heartbeat-interval", "1"], &env).await
}

/// Connects to the hub as an agent: the id the welcome names, or the HTTP status of the refusal.
async fn connect(plane: &ControlPlane, token: &str) -> Result<uuid::Uuid, u16> {
    let url = format!("{}/api/v1/agents/connect", plane.api.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tungstenite::Error::Http(response)) => return Err(response.status().as_u16()),
        Err(err) => panic!("connecting to the hub: {err}"),
    };
    let welcome = loop {
        if let Message::Text(text) = socket.next().await.expect("a welcome").unwrap() {
            break serde_json::from_str::<Envelope<ServerMessage>>(&text).unwrap().message;
        }
    };
    let ServerMessage::Welcome { agent_id, .. } = welcome else { panic!("the hub opens with a welcome") };
    let hello = AgentMessage::Hello {
        agent_version: "0.0.0-test".into(),
        platform: Platform::Kubernetes,
        capacity: Capacity { max_sessions: 10, cpu_millis: 4000, memory_mb: 8192 },
        labels: Default::default(),
        inventory: Vec::new(),
        epoch: None,
    };
    socket.send(Message::text(serde_json::to_string(&Envelope::new(hello)).unwrap())).await.unwrap();
    // The socket stays open (and the agent online) while the test looks.
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
    Ok(agent_id)
}

async fn the_kubernetes_agent(admin: &Api) -> Value {
    let agents = admin.get("/api/v1/agents").await;
    let items = agents["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the registered agent: {agents}");
    items[0].clone()
}

fn assert_no_token_in_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            for token in [FIRST_TOKEN, SECOND_TOKEN] {
                assert!(!log.contains(token), "{} holds an agent token", path.display());
            }
        }
    }
}

#[tokio::test]
async fn the_control_plane_registers_and_rekeys_the_kubernetes_agent_from_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut plane = start(dir.path(), FIRST_TOKEN, "10.244.0.0/16").await;
    let admin = plane.admin().await;
    let agent = the_kubernetes_agent(&admin).await;
    assert_eq!((agent["name"].as_str(), agent["platform"].as_str()), (Some("kubernetes"), Some("kubernetes")));
    assert_eq!(agent["endpoint_cidrs"], serde_json::json!(["10.244.0.0/16"]));
    let connected_as = connect(&plane, FIRST_TOKEN).await.expect("the first token is accepted");
    assert_eq!(connected_as.to_string(), agent["id"].as_str().unwrap());
    admin.wait_for_agent_online("kubernetes").await;
    plane.stop();
    // Each start writes server-1.log afresh.
    assert_no_token_in_logs(dir.path());

    // The Secret changed (a new token) and so did the pod network: the next start brings the agent in line.
    let plane = start(dir.path(), SECOND_TOKEN, "10.42.0.0/16,fd00:10:42::/56").await;
    let admin = plane.admin().await;
    let rekeyed = the_kubernetes_agent(&admin).await;
    assert_eq!(rekeyed["id"], agent["id"], "the same agent keeps its sessions");
    assert_eq!(rekeyed["endpoint_cidrs"], serde_json::json!(["10.42.0.0/16", "fd00:10:42::/56"]));
    assert_eq!(connect(&plane, FIRST_TOKEN).await, Err(401), "the old token is revoked");
    let connected_as = connect(&plane, SECOND_TOKEN).await.expect("the new token is accepted");
    assert_eq!(connected_as.to_string(), agent["id"].as_str().unwrap());
    admin.wait_for_agent_online("kubernetes").await;
    assert_no_token_in_logs(dir.path());
}

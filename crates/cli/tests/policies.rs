//! Session policies as the streamer enforces them (ADR 0032): the built binary as control plane
//! and Docker agent, the base session image's Selkies behind the session proxy. What a policy
//! closes is refused by the streamer, whatever the page in the viewer's browser does.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const STREAMER_IMAGE: &str = "streamspace/base:latest";

/// A signed-in member of an org whose admin set `org_policy`, with a Docker agent online.
struct Setup {
    plane: ControlPlane,
    _agent: Agent,
    admin: Api,
    member: Api,
    _dir: tempfile::TempDir,
}

async fn setup(org_policy: Value) -> Setup {
    require_docker();
    assert!(!docker(&["image", "inspect", "--format", "{{.Id}}", STREAMER_IMAGE]).is_empty(), "needs {STREAMER_IMAGE}");
    let dir = tempfile::tempdir().unwrap();
    let (plane, agent, admin) = Agent::docker_online(dir.path()).await;
    admin.post("/api/v1/users", json!({"username": "member", "password": "password-123", "role": "member"})).await;
    let member = Api::login(&plane.api, "member", "password-123").await;
    let org_id = member.get("/api/v1/me").await["org_id"].as_str().unwrap().to_owned();
    let patch = json!({"session_policy": org_policy});
    let (status, org) = admin.call(reqwest::Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(patch)).await;
    assert!(status.is_success(), "{status} {org}");
    Setup { plane, _agent: agent, admin, member, _dir: dir }
}

/// A template of the streamer image with its own policy.
async fn template(s: &Setup, name: &str, policy: Value) {
    let body = json!({"name": name, "display_name": name, "image": STREAMER_IMAGE, "cpu_millis": 500,
        "memory_mb": 512, "shm_mb": 64, "session_policy": policy});
    s.admin.post("/api/v1/templates", body).await;
}

/// Launches `template` as the member and waits until its streamer answers.
async fn launch(s: &Setup, template: &str) -> String {
    let created = s.member.post("/api/v1/sessions", json!({"template": template})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    s.member.wait_for_state(&id, "running", START).await;
    id
}

/// Opens the session's streamer WebSocket through the proxy as the member's browser would;
/// returns the socket and the policy the connect answer gave the UI.
async fn open_streamer(s: &Setup, id: &str) -> (tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, Value) {
    let connect = s.member.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await;
    let url = connect["url"].as_str().unwrap();
    let redirect = session_client().get(url).send().await.unwrap();
    let cookie = redirect.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let origin = s.plane.session_origin(id);
    let ws_url = format!("{}/api/v1/http/{id}/api/websockets", origin.replacen("http", "ws", 1));
    let socket = session_websocket(&ws_url, &[("cookie", &cookie), ("origin", &origin)]).await.unwrap();
    (socket, connect["policy"].clone())
}

/// The settings the streamer announces to its client: what it will and will not do.
async fn server_settings(socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Value {
    let wait = async {
        while let Some(message) = socket.next().await {
            if let Message::Text(text) = message.unwrap()
                && let Ok(parsed) = serde_json::from_str::<Value>(&text)
                && parsed["type"] == "server_settings"
            {
                return parsed["settings"].clone();
            }
        }
        panic!("the streamer closed the socket before announcing its settings");
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the streamer's settings within 20 s")
}

/// Pastes `text` from the viewer's browser: the Selkies client's clipboard message.
async fn paste(socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, text: &str) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    socket.send(Message::text(format!("cw,{encoded}"))).await.unwrap();
}

fn container_of(id: &str) -> String {
    format!("ss-{id}")
}

/// What an application in the session would paste now.
fn session_clipboard(id: &str) -> String {
    let script = include_str!("common/read_clipboard.py");
    let mut child = std::process::Command::new("docker")
        .args(["exec", "-i", &container_of(id), "sh", "-c"])
        .arg("PYTHONPATH=$(echo /opt/selkies/lib/python3*/site-packages/selkies) exec /opt/selkies/bin/python3 -")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn streamer_log(id: &str) -> String {
    let output = std::process::Command::new("docker").args(["logs", &container_of(id)]).output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

#[tokio::test]
async fn the_streamer_refuses_what_the_org_or_template_policy_closes() {
    // The org closes uploads; one template also keeps the clipboard one-way (out) and the sound off.
    let s = setup(json!({"file_upload": false})).await;
    template(&s, "open", json!({})).await;
    template(&s, "closed", json!({"clipboard": "out", "audio": false})).await;
    let open = launch(&s, "open").await;
    let closed = launch(&s, "closed").await;

    // The UI is told the stricter of both policies, to frame the session with it.
    let (mut open_socket, open_policy) = open_streamer(&s, &open).await;
    let (mut closed_socket, closed_policy) = open_streamer(&s, &closed).await;
    let expected = |clipboard: &str, audio: bool| json!({"clipboard": clipboard, "file_upload": false, "file_download": true, "audio": audio, "microphone": true});
    assert_eq!(open_policy, expected("both", true));
    assert_eq!(closed_policy, expected("out", false));

    // The streamers announce what they enforce; switches are locked against the client's menu.
    let open_settings = server_settings(&mut open_socket).await;
    let closed_settings = server_settings(&mut closed_socket).await;
    let switch = |settings: &Value, name: &str| (settings[name]["value"].clone(), settings[name]["locked"].clone());
    assert_eq!(switch(&open_settings, "audio_enabled"), (json!(true), json!(true)), "{open_settings}");
    assert_eq!(switch(&open_settings, "microphone_enabled"), (json!(true), json!(true)), "{open_settings}");
    assert_eq!(switch(&closed_settings, "audio_enabled"), (json!(false), json!(true)), "{closed_settings}");
    assert_eq!(
        switch(&closed_settings, "microphone_enabled"),
        (json!(false), json!(true)),
        "no microphone without sound"
    );
    assert_eq!(closed_settings["clipboard_in_enabled"]["value"], false, "{closed_settings}");
    assert_eq!(closed_settings["clipboard_out_enabled"]["value"], true, "{closed_settings}");
    assert_eq!(open_settings["clipboard_in_enabled"]["value"], true, "{open_settings}");
    for settings in [&open_settings, &closed_settings] {
        assert_eq!(settings["file_transfers"]["value"], json!(["download"]), "uploads closed by the org: {settings}");
    }

    // A paste from the browser reaches the open session's applications...
    paste(&mut open_socket, "pasted into the open session").await;
    eventually("the paste in the open session", Duration::from_secs(10), || async {
        (session_clipboard(&open) == "pasted into the open session").then_some(())
    })
    .await;
    // ...and the closed session's streamer refuses it, whatever the page sends.
    paste(&mut closed_socket, "pasted into the closed session").await;
    eventually("the closed session's streamer to refuse the paste", Duration::from_secs(10), || async {
        streamer_log(&closed).contains("Rejecting clipboard write: inbound clipboard disabled").then_some(())
    })
    .await;
    assert_eq!(session_clipboard(&closed), "", "nothing reached the closed session's clipboard");

    for id in [&open, &closed] {
        s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    }
    for id in [&open, &closed] {
        s.member.wait_for_state(id, "stopped", START).await;
    }
}

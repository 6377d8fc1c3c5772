//! A compromised agent against a real control plane: it speaks the hub protocol over a real
//! WebSocket and lies about endpoints, labels, capacity and other agents' commands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use streamspace_proto::hub::{
    ActualState, AgentMessage, Capacity, Command, CommandKind, Envelope, HomeUsage, InventoryItem, Platform,
    ServerMessage,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::harness::TestApp;

const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` every 20 ms until it returns `Some`, failing with `what` after `WAIT`.
pub async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent side of the hub protocol, driven by hand.
pub struct Peer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Peer {
    /// Connects, takes the welcome and says hello with an empty inventory.
    pub async fn hello(api: SocketAddr, token: &str, capacity: Capacity, labels: BTreeMap<String, String>) -> Peer {
        Peer::hello_as(api, token, capacity, labels, None).await
    }

    /// As [`Peer::hello`], announcing `epoch` as an HA group's leader.
    pub async fn hello_as(
        api: SocketAddr,
        token: &str,
        capacity: Capacity,
        labels: BTreeMap<String, String>,
        epoch: Option<u64>,
    ) -> Peer {
        let mut request = format!("ws://{api}/api/v1/agents/connect").into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        // A small read buffer: tungstenite's 128 KiB default, zeroed on the first read, would make peers weigh on
        // the memory of this process, where `hub_memory` measures the control plane's.
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false).await.unwrap();
        let mut peer = Peer { ws };
        assert!(matches!(peer.recv().await, ServerMessage::Welcome { .. }));
        let hello = AgentMessage::Hello {
            agent_version: "0.0.0-hostile".into(),
            platform: Platform::Docker,
            capacity,
            labels,
            inventory: Vec::new(),
            epoch,
        };
        peer.send(hello).await;
        peer
    }

    /// Whether the control plane closes the socket within the wait, skipping what it sends before.
    pub async fn closed(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    pub async fn send(&mut self, message: AgentMessage) {
        let text = serde_json::to_string(&Envelope::new(message)).unwrap();
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a message").unwrap().unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str::<Envelope<ServerMessage>>(&text).unwrap().message;
            }
        }
    }

    /// The next command of `kind` for `session_id`, skipping others.
    pub async fn command(&mut self, kind: CommandKind, session_id: Uuid) -> Command {
        loop {
            if let ServerMessage::Command(command) = self.recv().await
                && command.kind == kind
                && command.session_id == session_id
            {
                return command;
            }
        }
    }

    pub async fn report(&mut self, session_id: Uuid, state: ActualState) {
        self.send(AgentMessage::SessionStatus { session_id, state, traceparent: None }).await;
    }
}

pub fn roomy() -> Capacity {
    Capacity { max_sessions: 50, cpu_millis: 64_000, memory_mb: 65_536 }
}

/// Registers an agent; returns its id and token.
pub async fn register(t: &TestApp, admin: &str, body: Value) -> (String, String) {
    let reply = t.post("/api/v1/agents", admin, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (reply.body["id"].as_str().unwrap().to_owned(), reply.body["token"].as_str().unwrap().to_owned())
}

pub async fn wait_online(t: &TestApp, admin: &str, agent_id: &str) -> Value {
    let path = format!("/api/v1/agents/{agent_id}");
    eventually("the agent to be online", || async {
        let agent = t.get(&path, admin).await.body;
        (agent["status"] == "online").then_some(agent)
    })
    .await
}

/// A Docker agent named `name`, registered, connected over `api` and online.
async fn online_peer(t: &TestApp, admin: &str, api: SocketAddr, name: &str) -> (String, Peer) {
    let (id, token) = register(t, admin, json!({"name": name, "platform": "docker"})).await;
    let peer = Peer::hello(api, &token, roomy(), BTreeMap::new()).await;
    wait_online(t, admin, &id).await;
    (id, peer)
}

pub async fn create_session(t: &TestApp, token: &str) -> Uuid {
    let created = t.post("/api/v1/sessions", token, json!({"template": "chromium"})).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    created.body["id"].as_str().unwrap().parse().unwrap()
}

pub async fn wait_for_state(t: &TestApp, token: &str, id: Uuid, state: &str) -> Value {
    let path = format!("/api/v1/sessions/{id}");
    eventually(&format!("session {id} to be {state}"), || async {
        let session = t.get(&path, token).await.body;
        (session["state"] == state).then_some(session)
    })
    .await
}

/// An address of this host other than loopback, as another host would dial it.
fn host_address() -> std::net::IpAddr {
    let interfaces = if_addrs::get_if_addrs().unwrap();
    let address = interfaces.iter().map(|i| i.ip()).find(|ip| ip.is_ipv4() && !ip.is_loopback());
    address.expect("this host has an IPv4 address besides loopback")
}

/// What the session proxy would dial for the session (the API does not show it).
pub async fn stored_endpoint(t: &TestApp, id: Uuid) -> Option<String> {
    t.app.store.get_session(streamspace_store::Scope::Platform, id).await.unwrap().unwrap().endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_an_agent_must_not_name_fail_the_session_and_are_never_dialed() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    // Stands for anything else on the control plane's host: it must never see a connection.
    let trap = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let registration = json!({"name": "hostile", "platform": "docker", "endpoint_cidrs": ["192.0.2.0/24", "fd00::/8"]});
    let (agent_id, token) = register(&t, &admin, registration).await;
    let mut peer = Peer::hello(served.api, &token, roomy(), BTreeMap::new()).await;
    wait_online(&t, &admin, &agent_id).await;

    let refused = [
        (format!("http://127.0.0.1:{}", served.api.port()), "loopback"),
        (format!("http://127.0.0.1:{}", served.sessions.port()), "loopback"),
        (format!("http://127.0.0.1:{trap_port}"), "loopback"),
        (format!("http://{}:{trap_port}", host_address()), "control plane's own host"),
        ("http://169.254.169.254:80".to_owned(), "link-local"),
        ("http://metadata.google.internal:80".to_owned(), "IP address and port"),
        ("http://192.0.2.10:8080/admin".to_owned(), "IP address and port"),
        ("http://user:secret@192.0.2.10:8080".to_owned(), "IP address and port"),
        ("http://198.51.100.7:8080".to_owned(), "outside the networks registered"),
    ];
    for (endpoint, why) in &refused {
        let id = create_session(&t, &admin).await;
        peer.command(CommandKind::Start, id).await;
        peer.report(id, ActualState::Running { endpoint: endpoint.clone() }).await;
        let failed = wait_for_state(&t, &admin, id, "failed").await;
        let reason = failed["failure_reason"].as_str().unwrap();
        assert!(reason.contains("does not dial") && reason.contains(why), "{endpoint}: {reason}");
        assert_eq!(stored_endpoint(&t, id).await, None, "{endpoint}");
        // What is left on the agent is removed.
        peer.command(CommandKind::Stop, id).await;
        // Nothing to open: the session origin has nowhere to send a browser.
        let connect = t.post(&format!("/api/v1/sessions/{id}/connect"), &admin, json!({})).await;
        assert!(connect.status.is_client_error(), "{endpoint}: {}", connect.body);
    }
    let audited = t.audit_actions().await;
    let refusals = audited.iter().filter(|(action, result)| action == "agent.endpoint_refused" && result == "failure");
    assert_eq!(refusals.count(), refused.len(), "{audited:?}");
    let records = t.app.store.list_audit(
        streamspace_store::Scope::Platform,
        Default::default(),
        streamspace_store::AuditPage { limit: 500, before_seq: None },
    );
    let records =
        serde_json::to_string(&records.await.unwrap().iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
    assert!(records.contains("http://***@192.0.2.10:8080") && !records.contains("secret"), "{records}");

    // An address the agent may name is kept in the form that was checked.
    let id = create_session(&t, &admin).await;
    peer.command(CommandKind::Start, id).await;
    peer.report(id, ActualState::Running { endpoint: "http://[::ffff:192.0.2.10]:8080".into() }).await;
    wait_for_state(&t, &admin, id, "running").await;
    assert_eq!(stored_endpoint(&t, id).await.as_deref(), Some("http://192.0.2.10:8080"));

    // Every session above has settled, and any dial the proxy made on the way would have been
    // made before its session reached its state: none reached the trap.
    let trapped = trap.accept();
    assert!(
        matches!(&trapped, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "the proxy dialed a refused endpoint: {trapped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_answer_for_a_command_sent_to_another() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let (a_id, mut a) = online_peer(&t, &admin, served.api, "agent-a").await;
    let id = create_session(&t, &admin).await;
    let start = a.command(CommandKind::Start, id).await;

    let (_, mut b) = online_peer(&t, &admin, served.api, "agent-b").await;
    b.send(AgentMessage::CommandResult {
        command_id: start.id,
        ok: false,
        error: Some("forged".into()),
        traceparent: None,
    })
    .await;
    // B's messages are handled in order: its claim on A's session, answered with a stop for B,
    // shows the forged answer before it was handled too.
    b.report(id, ActualState::Running { endpoint: "http://192.0.2.20:8080".into() }).await;
    b.command(CommandKind::Stop, id).await;

    let session = t.get(&format!("/api/v1/sessions/{id}"), &admin).await.body;
    assert_eq!(session["state"], "scheduled", "{session}");
    assert_eq!(stored_endpoint(&t, id).await, None);
    assert!(session["failure_reason"].is_null(), "{session}");
    let pending = t.app.store.pending_commands(a_id.parse().unwrap()).await.unwrap();
    assert!(pending.iter().any(|c| c.id == start.id && c.acked_at.is_none()), "A's command is still open");

    // A's own answer counts.
    a.send(AgentMessage::CommandResult {
        command_id: start.id,
        ok: false,
        error: Some("image missing".into()),
        traceparent: None,
    })
    .await;
    let failed = wait_for_state(&t, &admin, id, "failed").await;
    assert_eq!(failed["failure_reason"], "image missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_labels_are_ignored_and_capacity_is_capped_by_the_registration() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let invalid = [
        json!({"name": "bad-1", "platform": "docker", "capacity_limit": {"max_sessions": 0}}),
        json!({"name": "bad-2", "platform": "docker", "capacity_limit": {"memory_mb": -5}}),
        json!({"name": "bad-3", "platform": "docker", "endpoint_cidrs": ["not-a-network"]}),
    ];
    for body in invalid {
        let reply = t.post("/api/v1/agents", &admin, body.clone()).await;
        assert!(reply.status.is_client_error() && !reply.code().is_empty(), "{body}: {}", reply.body);
    }
    let registration = json!({
        "name": "greedy", "platform": "docker", "labels": {"zone": "eu"},
        "capacity_limit": {"max_sessions": 5, "cpu_millis": 4000},
    });
    let (agent_id, token) = register(&t, &admin, registration).await;
    let claims = BTreeMap::from([
        ("streamspace.builtin".to_owned(), "true".to_owned()),
        ("streamspace.io/trusted".to_owned(), "yes".to_owned()),
        ("zone".to_owned(), "us".to_owned()),
        ("gpu".to_owned(), "yes".to_owned()),
    ]);
    let greedy = Capacity { max_sessions: 1000, cpu_millis: 1_000_000, memory_mb: 0 };
    let _peer = Peer::hello(served.api, &token, greedy, claims).await;
    let agent = wait_online(&t, &admin, &agent_id).await;
    assert_eq!(agent["capacity"], json!({"max_sessions": 5, "cpu_millis": 4000, "memory_mb": 0}));
    assert_eq!(agent["labels"], json!({"zone": "eu"}));
    assert_eq!(agent["reported_labels"], json!({"gpu": "yes", "zone": "us"}));

    // The scheduler holds to the capped CPU: two 2-CPU sessions, not a third.
    for _ in 0..2 {
        let id = create_session(&t, &admin).await;
        wait_for_state(&t, &admin, id, "scheduled").await;
    }
    let third = create_session(&t, &admin).await;
    let failed = wait_for_state(&t, &admin, third, "failed").await;
    assert!(failed["failure_reason"].as_str().unwrap().contains("at capacity"), "{failed}");

    // The claimed built-in label gives it nothing: its token rotates like any agent's.
    let rotated = t.post(&format!("/api/v1/agents/{agent_id}/token"), &admin, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.body["status"], "offline", "disconnected at once: {}", rotated.body);
    assert_eq!(t.get(&format!("/api/v1/agents/{agent_id}"), &admin).await.body["status"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_an_agent_sends_changes_nothing_but_the_trace_a_report_joins() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let (agent_id, token) = register(&t, &admin, json!({"name": "tracer", "platform": "docker"})).await;
    let mut peer = Peer::hello(served.api, &token, roomy(), BTreeMap::new()).await;
    wait_online(&t, &admin, &agent_id).await;
    let id = create_session(&t, &admin).await;
    let start = peer.command(CommandKind::Start, id).await;

    for traceparent in ["garbage".to_owned(), format!("00-{}-00f067aa0ba902b7-01", "f".repeat(64 * 1024))] {
        let state = ActualState::Starting { phase: streamspace_proto::SessionPhase::Pulling, progress: None };
        peer.send(AgentMessage::SessionStatus { session_id: id, state, traceparent: Some(traceparent) }).await;
    }
    let valid = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
    let running = ActualState::Running { endpoint: "http://192.0.2.30:8080".into() };
    peer.send(AgentMessage::SessionStatus { session_id: id, state: running, traceparent: valid.clone() }).await;
    wait_for_state(&t, &admin, id, "running").await;
    peer.send(AgentMessage::CommandResult { command_id: start.id, ok: true, error: None, traceparent: valid }).await;
    eventually("the start to be acknowledged", || async {
        let pending = t.app.store.pending_commands(agent_id.parse().unwrap()).await.unwrap();
        pending.iter().all(|command| command.id != start.id).then_some(())
    })
    .await;
    assert_eq!(stored_endpoint(&t, id).await.as_deref(), Some("http://192.0.2.30:8080"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_agent_that_holds_a_home_reports_its_usage() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let (_, mut a) = online_peer(&t, &admin, served.api, "agent-a").await;
    // The catalog's Chromium keeps its user's home, which now lives on A.
    let id = create_session(&t, &admin).await;
    let home = a.command(CommandKind::Start, id).await.spec.and_then(|spec| spec.home).expect("a home");
    let running = ActualState::Running { endpoint: "http://192.0.2.10:8080".into() };
    a.report(id, running.clone()).await;
    wait_for_state(&t, &admin, id, "running").await;
    let usage = |used_bytes| vec![HomeUsage { home_id: home.id, used_bytes }];
    let my_home = || async { t.get("/api/v1/me/homes", &admin).await.body["items"][0].clone() };
    let unmeasured = my_home().await;
    assert_eq!((&unmeasured["used_bytes"], &unmeasured["usage_measured_at"]), (&Value::Null, &Value::Null));

    let (_, mut b) = online_peer(&t, &admin, served.api, "agent-b").await;
    b.send(AgentMessage::Heartbeat { inventory: Vec::new(), homes: usage(1 << 40) }).await;
    // B's messages are handled in order: the stop that answers its claim on A's session comes after
    // its heartbeat was handled.
    b.report(id, running.clone()).await;
    b.command(CommandKind::Stop, id).await;
    assert_eq!(my_home().await, unmeasured, "another agent's report about the home changes nothing");

    let inventory = vec![InventoryItem { session_id: id, state: running }];
    a.send(AgentMessage::Heartbeat { inventory: inventory.clone(), homes: usage(-1) }).await;
    a.send(AgentMessage::Heartbeat { inventory, homes: usage(3 << 20) }).await;
    let measured = eventually("A's measurement", || async {
        let home = my_home().await;
        (home["used_bytes"] != Value::Null).then_some(home)
    })
    .await;
    assert_eq!(measured["used_bytes"], 3 << 20, "a negative size is no measurement: {measured}");
    let measured_at = measured["usage_measured_at"].as_str().map(str::parse::<chrono::DateTime<chrono::Utc>>);
    assert!(matches!(measured_at, Some(Ok(_))), "{measured}");
    let listed = t.get("/api/v1/homes", &admin).await.body;
    assert_eq!(listed["items"][0]["used_bytes"], 3 << 20, "administrators see it too: {listed}");
}

//! The agent against a fake control-plane hub (a real WebSocket server) and a fake runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use streamspace_agent::{AgentConfig, Progress, Runtime};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::{
    ActualState, AgentMessage, Capacity, Command, CommandKind, Envelope, HomeUsage, InventoryItem, Platform,
    ServerMessage, SessionSpec,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use uuid::Uuid;

const TOKEN: &str = "good-token";
const WAIT: Duration = Duration::from_secs(5);
const CAPACITY: Capacity = Capacity { max_sessions: 7, cpu_millis: 4000, memory_mb: 8192 };

/// A runtime that keeps sessions in a map and records every call.
#[derive(Default)]
struct FakeRuntime {
    sessions: Mutex<BTreeMap<Uuid, ActualState>>,
    calls: Mutex<Vec<(&'static str, Uuid)>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<(Uuid, ActualState)>>>,
    homes: Mutex<Vec<HomeUsage>>,
}

impl FakeRuntime {
    fn with_events() -> (Arc<FakeRuntime>, mpsc::UnboundedSender<(Uuid, ActualState)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(FakeRuntime { events: Mutex::new(Some(rx)), ..FakeRuntime::default() }), tx)
    }

    fn set(&self, session_id: Uuid, state: ActualState) {
        self.sessions.lock().unwrap().insert(session_id, state);
    }

    fn record(&self, call: &'static str, session_id: Uuid) {
        self.calls.lock().unwrap().push((call, session_id));
    }

    fn calls(&self) -> Vec<(&'static str, Uuid)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn platform(&self) -> Platform {
        Platform::Docker
    }

    async fn capacity(&self) -> anyhow::Result<Capacity> {
        Ok(CAPACITY)
    }

    async fn inventory(&self) -> anyhow::Result<Vec<InventoryItem>> {
        let sessions = self.sessions.lock().unwrap();
        Ok(sessions.iter().map(|(id, state)| InventoryItem { session_id: *id, state: state.clone() }).collect())
    }

    async fn start(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.record("start", spec.session_id);
        progress(ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(50) });
        if spec.image == "missing" {
            anyhow::bail!("pulling image missing: not found");
        }
        progress(ActualState::Starting { phase: SessionPhase::Creating, progress: None });
        let endpoint = format!("http://fake/{}", spec.session_id);
        self.set(spec.session_id, ActualState::Running { endpoint: endpoint.clone() });
        Ok(endpoint)
    }

    async fn hibernate(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.record("hibernate", session_id);
        self.set(session_id, ActualState::Hibernated);
        Ok(())
    }

    async fn wake(&self, spec: &SessionSpec, progress: &Progress<'_>) -> anyhow::Result<String> {
        self.record("wake", spec.session_id);
        progress(ActualState::Starting { phase: SessionPhase::Starting, progress: None });
        Ok(format!("http://fake/{}", spec.session_id))
    }

    async fn stop(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.record("stop", session_id);
        self.sessions.lock().unwrap().remove(&session_id);
        Ok(())
    }

    async fn remove_home(&self, home_id: Uuid) -> anyhow::Result<()> {
        self.record("remove_home", home_id);
        Ok(())
    }

    async fn home_usage(&self) -> anyhow::Result<Vec<HomeUsage>> {
        Ok(self.homes.lock().unwrap().clone())
    }

    fn events(&self) -> BoxStream<'static, (Uuid, ActualState)> {
        match self.events.lock().unwrap().take() {
            Some(rx) => futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|e| (e, rx)) }).boxed(),
            None => futures::stream::pending().boxed(),
        }
    }
}

/// A fake hub: accepts WebSocket upgrades that carry the right bearer token.
struct Hub {
    listener: TcpListener,
    server: String,
}

impl Hub {
    async fn start() -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        Hub { listener, server }
    }

    /// Runs an agent against this hub with `token`; the returned sender shuts it down.
    fn run_agent(
        &self,
        runtime: Arc<FakeRuntime>,
        token: &str,
    ) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
        let mut config = AgentConfig::new(&self.server, token);
        config.labels.insert("zone".into(), "test".into());
        let (stop, stopped) = oneshot::channel::<()>();
        let agent = tokio::spawn(streamspace_agent::run(config, runtime, async {
            let _ = stopped.await;
        }));
        (stop, agent)
    }

    /// Accepts the next upgrade; a wrong token is answered 401 and `None` is returned.
    async fn accept(&self) -> Option<Peer> {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept()).await.expect("agent connects").unwrap();
        tokio_tungstenite::accept_hdr_async(stream, check_token).await.ok().map(|ws| Peer { ws })
    }

    /// Accepts a connection, sends `welcome`, reads `hello`.
    async fn connect(&self, heartbeat_interval_secs: u64) -> (Peer, AgentMessage) {
        let mut peer = self.accept().await.expect("the agent sends the right token");
        peer.send(ServerMessage::Welcome { agent_id: Uuid::new_v4(), heartbeat_interval_secs }).await;
        let hello = peer.recv().await;
        (peer, hello)
    }
}

/// The hub's upgrade check: only the right bearer token gets a WebSocket.
#[allow(clippy::result_large_err)] // the signature is tungstenite's `Callback`
fn check_token(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    assert_eq!(request.uri().path(), "/api/v1/agents/connect");
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    if authorization == Some(&format!("Bearer {TOKEN}")) {
        return Ok(response);
    }
    let mut refusal = ErrorResponse::new(None);
    *refusal.status_mut() = StatusCode::UNAUTHORIZED;
    Err(refusal)
}

struct Peer {
    ws: WebSocketStream<TcpStream>,
}

impl Peer {
    async fn send(&mut self, message: ServerMessage) {
        let text = serde_json::to_string(&Envelope::new(message)).unwrap();
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next protocol message, skipping control frames; `None` once the agent closed the socket.
    async fn next(&mut self) -> Option<AgentMessage> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a message within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let envelope: Envelope<AgentMessage> = serde_json::from_str(&text).unwrap();
                    assert_eq!(envelope.v, 1);
                    return Some(envelope.message);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn recv(&mut self) -> AgentMessage {
        self.next().await.expect("the agent keeps the connection open")
    }

    /// Messages up to and including the result of `command_id`, skipping heartbeats.
    async fn until_result(&mut self, command_id: Uuid) -> Vec<AgentMessage> {
        let mut got = Vec::new();
        loop {
            let message = self.recv().await;
            if matches!(message, AgentMessage::Heartbeat { .. }) {
                continue;
            }
            let done = matches!(message, AgentMessage::CommandResult { command_id: id, .. } if id == command_id);
            got.push(message);
            if done {
                return got;
            }
        }
    }
}

fn spec(session_id: Uuid, image: &str) -> SessionSpec {
    SessionSpec {
        session_id,
        org_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        image: image.into(),
        env: BTreeMap::new(),
        cpu_millis: 1000,
        memory_mb: 512,
        shm_mb: 64,
        port: 8080,
        egress_allow: Vec::new(),
        home: None,
    }
}

fn command(kind: CommandKind, spec: Option<SessionSpec>, session_id: Uuid) -> Command {
    Command { id: Uuid::new_v4(), kind, session_id, spec, traceparent: None }
}

fn status(session_id: Uuid, state: ActualState) -> AgentMessage {
    AgentMessage::SessionStatus { session_id, state, traceparent: None }
}

fn starting(phase: SessionPhase, progress: Option<i32>) -> ActualState {
    ActualState::Starting { phase, progress }
}

fn result(command_id: Uuid, error: Option<&str>) -> AgentMessage {
    AgentMessage::CommandResult { command_id, ok: error.is_none(), error: error.map(str::to_string), traceparent: None }
}

#[tokio::test]
async fn hello_announces_the_runtime_and_heartbeats_repeat_the_inventory() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let running = Uuid::new_v4();
    runtime.set(running, ActualState::Running { endpoint: "http://fake/1".into() });
    let (_stop, _agent) = hub.run_agent(runtime.clone(), TOKEN);

    let (mut peer, hello) = hub.connect(1).await;
    let inventory =
        vec![InventoryItem { session_id: running, state: ActualState::Running { endpoint: "http://fake/1".into() } }];
    assert_eq!(
        hello,
        AgentMessage::Hello {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            platform: Platform::Docker,
            capacity: CAPACITY,
            labels: BTreeMap::from([("zone".to_string(), "test".to_string())]),
            inventory: inventory.clone(),
            epoch: None,
        }
    );
    assert_eq!(peer.recv().await, AgentMessage::Heartbeat { inventory, homes: Vec::new() });
    runtime.set(running, ActualState::Hibernated);
    let next = peer.recv().await;
    assert_eq!(
        next,
        AgentMessage::Heartbeat {
            inventory: vec![InventoryItem { session_id: running, state: ActualState::Hibernated }],
            homes: Vec::new(),
        }
    );
}

/// The homes' usage of the next heartbeat.
async fn next_heartbeats_homes(peer: &mut Peer) -> Vec<HomeUsage> {
    loop {
        if let AgentMessage::Heartbeat { homes, .. } = peer.recv().await {
            return homes;
        }
    }
}

#[tokio::test]
async fn homes_are_measured_at_the_first_heartbeat_then_on_a_period_and_after_a_session_stops() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let home = Uuid::new_v4();
    *runtime.homes.lock().unwrap() = vec![HomeUsage { home_id: home, used_bytes: 4096 }];
    let (_stop, _agent) = hub.run_agent(runtime.clone(), TOKEN);
    let (mut peer, _) = hub.connect(1).await;
    assert_eq!(next_heartbeats_homes(&mut peer).await, [HomeUsage { home_id: home, used_bytes: 4096 }]);
    assert_eq!(next_heartbeats_homes(&mut peer).await, [], "measured once a minute, not at every heartbeat");

    *runtime.homes.lock().unwrap() = vec![HomeUsage { home_id: home, used_bytes: 1 << 20 }];
    let session = Uuid::new_v4();
    let stop = command(CommandKind::Stop, None, session);
    peer.send(ServerMessage::Command(stop.clone())).await;
    peer.until_result(stop.id).await;
    assert_eq!(
        next_heartbeats_homes(&mut peer).await,
        [HomeUsage { home_id: home, used_bytes: 1 << 20 }],
        "what the stopped session wrote shows at once"
    );
    assert_eq!(next_heartbeats_homes(&mut peer).await, []);
}

#[tokio::test]
async fn commands_stream_progress_then_a_result_and_resent_commands_are_not_reapplied() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let (_stop, _agent) = hub.run_agent(runtime.clone(), TOKEN);
    let (mut peer, _) = hub.connect(60).await;
    let session = Uuid::new_v4();

    let start = command(CommandKind::Start, Some(spec(session, "app")), session);
    peer.send(ServerMessage::Command(start.clone())).await;
    assert_eq!(
        peer.until_result(start.id).await,
        [
            status(session, starting(SessionPhase::Pulling, Some(50))),
            status(session, starting(SessionPhase::Creating, None)),
            status(session, ActualState::Running { endpoint: format!("http://fake/{session}") }),
            result(start.id, None),
        ]
    );

    // The control plane re-sends a command it did not see acknowledged: answered again, applied once.
    peer.send(ServerMessage::Command(start.clone())).await;
    assert_eq!(peer.until_result(start.id).await, [result(start.id, None)]);

    let hibernate = command(CommandKind::Hibernate, None, session);
    let wake = command(CommandKind::Wake, Some(spec(session, "app")), session);
    let stop = command(CommandKind::Stop, None, session);
    for command in [&hibernate, &wake, &stop] {
        peer.send(ServerMessage::Command(command.clone())).await;
    }
    let mut got = peer.until_result(hibernate.id).await;
    got.extend(peer.until_result(wake.id).await);
    got.extend(peer.until_result(stop.id).await);
    assert_eq!(
        got,
        [
            status(session, ActualState::Hibernated),
            result(hibernate.id, None),
            status(session, starting(SessionPhase::Starting, None)),
            status(session, ActualState::Running { endpoint: format!("http://fake/{session}") }),
            result(wake.id, None),
            status(session, ActualState::Stopped),
            result(stop.id, None),
        ],
        "commands of one session run in the order they came"
    );
    assert_eq!(runtime.calls(), [("start", session), ("hibernate", session), ("wake", session), ("stop", session)]);
}

#[tokio::test]
async fn failed_or_malformed_commands_report_failure() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let (_stop, _agent) = hub.run_agent(runtime.clone(), TOKEN);
    let (mut peer, _) = hub.connect(60).await;
    let session = Uuid::new_v4();

    let start = command(CommandKind::Start, Some(spec(session, "missing")), session);
    peer.send(ServerMessage::Command(start.clone())).await;
    let reason = "pulling image missing: not found";
    assert_eq!(
        peer.until_result(start.id).await,
        [
            status(session, starting(SessionPhase::Pulling, Some(50))),
            status(session, ActualState::Failed { reason: reason.into() }),
            result(start.id, Some(reason)),
        ]
    );

    let no_spec = command(CommandKind::Wake, None, session);
    peer.send(ServerMessage::Command(no_spec.clone())).await;
    assert_eq!(peer.until_result(no_spec.id).await, [result(no_spec.id, Some("a Wake command needs a session spec"))]);

    // Something this agent does not understand is skipped, not fatal.
    peer.ws.send(Message::text(r#"{"v":2,"type":"reticulate"}"#)).await.unwrap();
    let remove = command(CommandKind::Remove, None, session);
    peer.send(ServerMessage::Command(remove.clone())).await;
    assert_eq!(peer.until_result(remove.id).await, [status(session, ActualState::Stopped), result(remove.id, None)]);
}

#[tokio::test]
async fn runtime_events_become_session_status() {
    let hub = Hub::start().await;
    let (runtime, events) = FakeRuntime::with_events();
    let (_stop, _agent) = hub.run_agent(runtime, TOKEN);
    let (mut peer, _) = hub.connect(60).await;
    let session = Uuid::new_v4();
    let failed = ActualState::Failed { reason: "container exited with code 137".into() };
    events.send((session, failed.clone())).unwrap();
    assert_eq!(peer.recv().await, status(session, failed));
}

#[tokio::test]
async fn the_agent_reconnects_and_answers_a_resent_command_from_memory() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let (_stop, _agent) = hub.run_agent(runtime.clone(), TOKEN);
    let (mut peer, _) = hub.connect(60).await;
    let session = Uuid::new_v4();
    let start = command(CommandKind::Start, Some(spec(session, "app")), session);
    peer.send(ServerMessage::Command(start.clone())).await;
    peer.until_result(start.id).await;
    drop(peer);

    let (mut peer, hello) = hub.connect(60).await;
    let AgentMessage::Hello { inventory, .. } = hello else { panic!("expected hello, got {hello:?}") };
    assert_eq!(
        inventory,
        [InventoryItem {
            session_id: session,
            state: ActualState::Running { endpoint: format!("http://fake/{session}") }
        }]
    );
    peer.send(ServerMessage::Command(start.clone())).await;
    assert_eq!(peer.until_result(start.id).await, [result(start.id, None)]);
    assert_eq!(runtime.calls(), [("start", session)]);
}

#[tokio::test]
async fn losing_its_replica_the_agent_moves_to_the_next_url_within_five_seconds() {
    let (first, second) = (Hub::start().await, Hub::start().await);
    // A URL where nothing listens comes first after the lost replica: the agent must skip it at once.
    let nothing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", nothing.local_addr().unwrap());
    drop(nothing);
    let config = AgentConfig::with_servers(vec![first.server.clone(), dead, second.server.clone()], TOKEN);
    let runtime = Arc::new(FakeRuntime::default());
    let (_stop, stopped) = oneshot::channel::<()>();
    let _agent = tokio::spawn(streamspace_agent::run(config, runtime.clone(), async {
        let _ = stopped.await;
    }));
    let (mut peer, _) = first.connect(60).await;
    let session = Uuid::new_v4();
    let start = command(CommandKind::Start, Some(spec(session, "app")), session);
    peer.send(ServerMessage::Command(start.clone())).await;
    peer.until_result(start.id).await;

    // The replica dies (its process and listener go); the command is re-sent by the next one.
    drop(peer);
    drop(first);
    let lost = tokio::time::Instant::now();
    let (mut peer, hello) = second.connect(60).await;
    assert!(lost.elapsed() < Duration::from_secs(5), "reconnected after {:?}", lost.elapsed());
    assert!(matches!(hello, AgentMessage::Hello { ref inventory, .. } if inventory.len() == 1), "{hello:?}");
    peer.send(ServerMessage::Command(start.clone())).await;
    assert_eq!(peer.until_result(start.id).await, [result(start.id, None)]);
    assert_eq!(runtime.calls(), [("start", session)], "answered from memory, not applied twice");
}

#[tokio::test]
async fn shutdown_closes_the_socket_and_leaves_sessions_running() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let session = Uuid::new_v4();
    runtime.set(session, ActualState::Running { endpoint: "http://fake/1".into() });
    let (stop, agent) = hub.run_agent(runtime.clone(), TOKEN);
    let (mut peer, _) = hub.connect(60).await;

    stop.send(()).unwrap();
    assert_eq!(peer.next().await, None, "the agent closes the socket");
    tokio::time::timeout(WAIT, agent).await.expect("the agent stops").unwrap().unwrap();
    assert_eq!(runtime.calls(), [], "no session was touched");
}

/// Every log event on this thread from now on (tests run on one thread), as `name=value` pairs,
/// until the guard is dropped.
fn record_log() -> (tracing::subscriber::DefaultGuard, mpsc::UnboundedReceiver<String>) {
    use tracing_subscriber::layer::SubscriberExt;
    let (tx, rx) = mpsc::unbounded_channel();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(LogRecorder(tx)));
    (guard, rx)
}

struct LogRecorder(mpsc::UnboundedSender<String>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut line = String::new();
        event.record(&mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            line.push_str(&format!("{}={value:?} ", field.name()));
        });
        let _ = self.0.send(line);
    }
}

#[tokio::test]
async fn a_rejected_token_is_retried_until_shutdown() {
    let hub = Hub::start().await;
    let runtime = Arc::new(FakeRuntime::default());
    let (_recording, mut log) = record_log();
    let (stop, agent) = hub.run_agent(runtime, "revoked-token");
    assert!(hub.accept().await.is_none(), "the hub refuses the token");
    let rejection = tokio::time::timeout(WAIT, async {
        loop {
            let event = log.recv().await.expect("the log records");
            if event.contains("rejected the agent token") {
                return event;
            }
        }
    })
    .await
    .expect("the agent logs the rejection");
    // On this one thread, the agent ran on from its log line to its next wait before this test
    // runs again: had it given up, it would be finished now.
    assert!(!agent.is_finished(), "a rejected token is retried, not fatal");
    assert!(rejection.contains("retry_in_secs=") && !rejection.contains("retry_in_secs=0 "), "{rejection}");
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, agent).await.expect("shutdown interrupts the slow retry").unwrap().unwrap();
}

#[tokio::test]
async fn an_unusable_server_url_fails_at_once() {
    let runtime = Arc::new(FakeRuntime::default());
    let config = AgentConfig::new("localhost:8000", TOKEN);
    let error = streamspace_agent::run(config, runtime, std::future::pending()).await.unwrap_err();
    assert!(error.to_string().contains("no scheme"), "{error}");
}

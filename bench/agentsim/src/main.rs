//! agentsim: many simulated StreamSpace agents for `bench/scale.py`, each on a real WebSocket to the agent hub,
//! speaking the protocol of `streamspace-proto` as the Docker agent does: hello with a capacity and its
//! inventory after the welcome, a heartbeat with the inventory at the interval the welcome asks for, and every
//! command answered the way a runtime that starts containers instantly would (a `start` is reported `running`
//! with an endpoint, then acknowledged). No container is created: every session reports `ENDPOINT`, one real
//! HTTP server the driver runs (the control plane registers the streamer's tokens there when a session runs).
//!
//! ```text
//! agentsim SERVER TOKENS_FILE ENDPOINT [MAX_SESSIONS]
//! ```
//!
//! `SERVER` is the control plane's URL (`http://127.0.0.1:8000`), or several separated by commas: agent *i*
//! dials the *i*-th modulo their number. `TOKENS_FILE` holds one agent token per line (one agent each).
//! Lines on stdout, for the driver:
//!
//! ```text
//! ready N                  every agent has been welcomed and said hello once
//! start SESSION MICROS     a start command was read (first delivery only); MICROS since the Unix epoch
//! lost AGENT ERROR         a connection ended; the agent dials again a second later
//! ```
//!
//! Runs on one thread: its CPU time stays small and apart from the control plane's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use streamspace_proto::hub::{
    ActualState, AgentMessage, Capacity, Command, CommandKind, Envelope, InventoryItem, Platform, ServerMessage,
};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

const HUB_PATH: &str = "/api/v1/agents/connect";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const REDIAL_AFTER: Duration = Duration::from_secs(1);
/// Handshakes in flight at once, so a thousand agents do not overflow the listener's backlog together.
const CONCURRENT_DIALS: usize = 32;
const DEFAULT_MAX_SESSIONS: i64 = 100;
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// What one simulated agent remembers across its connections, as a real agent's runtime would.
struct Runtime {
    endpoint: String,
    sessions: BTreeMap<Uuid, ActualState>,
    /// Commands already applied: a re-sent one is acknowledged again, not applied twice.
    applied: HashSet<Uuid>,
}

impl Runtime {
    fn inventory(&self) -> Vec<InventoryItem> {
        self.sessions.iter().map(|(id, state)| InventoryItem { session_id: *id, state: state.clone() }).collect()
    }

    /// The state a command leaves its session in (`None`: the session is gone, or the command is not about one).
    fn apply(&mut self, command: &Command) -> Option<ActualState> {
        let state = match command.kind {
            CommandKind::Start | CommandKind::Wake => ActualState::Running { endpoint: self.endpoint.clone() },
            CommandKind::Hibernate => ActualState::Hibernated,
            CommandKind::Stop | CommandKind::Remove => {
                self.sessions.remove(&command.session_id);
                return Some(ActualState::Stopped);
            }
            CommandKind::RemoveHome => return None,
        };
        self.sessions.insert(command.session_id, state.clone());
        Some(state)
    }
}

struct Fleet {
    servers: Vec<String>,
    endpoint: String,
    max_sessions: i64,
    dials: Semaphore,
    welcomed: AtomicUsize,
    agents: usize,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, servers, tokens_file, endpoint, rest @ ..] = args.as_slice() else {
        return Err("usage: agentsim SERVER[,SERVER...] TOKENS_FILE ENDPOINT [MAX_SESSIONS]".into());
    };
    let max_sessions = rest.first().map(|n| n.parse()).transpose()?.unwrap_or(DEFAULT_MAX_SESSIONS);
    let tokens: Vec<String> = std::fs::read_to_string(tokens_file)?
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let servers = servers.split(',').map(hub_url).collect::<Result<Vec<_>, _>>()?;
    let fleet = Arc::new(Fleet {
        servers,
        endpoint: endpoint.clone(),
        max_sessions,
        dials: Semaphore::new(CONCURRENT_DIALS),
        welcomed: AtomicUsize::new(0),
        agents: tokens.len(),
    });
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async move {
        let agents: Vec<_> = tokens
            .into_iter()
            .enumerate()
            .map(|(index, token)| tokio::spawn(agent(fleet.clone(), index, token)))
            .collect();
        futures_util::future::join_all(agents).await;
    });
    Ok(())
}

fn hub_url(server: &str) -> Result<String, Error> {
    let base = server.trim().trim_end_matches('/');
    let rest = base.strip_prefix("http://").ok_or_else(|| format!("{server}: only http:// URLs are simulated"))?;
    Ok(format!("ws://{rest}{HUB_PATH}"))
}

/// One agent for the life of the process: connects, serves, and dials again when the connection ends.
async fn agent(fleet: Arc<Fleet>, index: usize, token: String) {
    let mut runtime = Runtime { endpoint: fleet.endpoint.clone(), sessions: BTreeMap::new(), applied: HashSet::new() };
    let mut welcomed_before = false;
    loop {
        let url = &fleet.servers[index % fleet.servers.len()];
        let ended = match dial(&fleet, url, &token, &runtime).await {
            Ok((socket, heartbeat)) => {
                if !welcomed_before {
                    welcomed_before = true;
                    if fleet.welcomed.fetch_add(1, Ordering::SeqCst) + 1 == fleet.agents {
                        println!("ready {}", fleet.agents);
                    }
                }
                serve(socket, heartbeat, &mut runtime).await
            }
            Err(error) => Err(error),
        };
        let why = ended.err().map_or_else(|| "closed by the control plane".to_owned(), |e| e.to_string());
        println!("lost {index} {}", why.replace('\n', " "));
        tokio::time::sleep(REDIAL_AFTER).await;
    }
}

/// Opens the socket, reads the welcome and says hello; answers the socket and the heartbeat interval.
async fn dial(fleet: &Fleet, url: &str, token: &str, runtime: &Runtime) -> Result<(Socket, Duration), Error> {
    let _permit = fleet.dials.acquire().await?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    // tungstenite's default read buffer, 128 KiB zeroed on the first read, would cost the simulator 125 MiB.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await??;
    let heartbeat = tokio::time::timeout(CONNECT_TIMEOUT, welcome(&mut socket)).await??;
    let capacity = Capacity { max_sessions: fleet.max_sessions, cpu_millis: 0, memory_mb: 0 };
    let hello = AgentMessage::Hello {
        agent_version: concat!("agentsim/", env!("CARGO_PKG_VERSION")).to_owned(),
        platform: Platform::Docker,
        capacity,
        labels: BTreeMap::new(),
        inventory: runtime.inventory(),
        epoch: None,
    };
    send(&mut socket, hello).await?;
    Ok((socket, heartbeat))
}

async fn welcome(socket: &mut Socket) -> Result<Duration, Error> {
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else { continue };
        let envelope: Envelope<ServerMessage> = serde_json::from_str(&text)?;
        let ServerMessage::Welcome { heartbeat_interval_secs, .. } = envelope.message else {
            return Err("a command before the welcome".into());
        };
        return Ok(Duration::from_secs(heartbeat_interval_secs.max(1)));
    }
    Err("closed before the welcome".into())
}

async fn serve(mut socket: Socket, every: Duration, runtime: &mut Runtime) -> Result<(), Error> {
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                send(&mut socket, AgentMessage::Heartbeat { inventory: runtime.inventory(), homes: Vec::new() }).await?;
            }
            frame = socket.next() => {
                let Some(frame) = frame else { return Ok(()) };
                match frame? {
                    Message::Text(text) => {
                        if let ServerMessage::Command(command) = serde_json::from_str::<Envelope<ServerMessage>>(&text)?.message {
                            execute(&mut socket, runtime, command).await?;
                        }
                    }
                    Message::Close(_) => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

/// Applies a command the first time it arrives, as the Docker agent reports it: the session's new state, then
/// the command's result.
async fn execute(socket: &mut Socket, runtime: &mut Runtime, command: Command) -> Result<(), Error> {
    if runtime.applied.insert(command.id) {
        if command.kind == CommandKind::Start {
            println!("start {} {}", command.session_id, SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros());
        }
        if let Some(state) = runtime.apply(&command) {
            send(socket, AgentMessage::SessionStatus { session_id: command.session_id, state, traceparent: None })
                .await?;
        }
    }
    let result = AgentMessage::CommandResult { command_id: command.id, ok: true, error: None, traceparent: None };
    send(socket, result).await
}

async fn send(socket: &mut Socket, message: AgentMessage) -> Result<(), Error> {
    socket.send(Message::text(serde_json::to_string(&Envelope::new(message))?)).await?;
    Ok(())
}

//! One connection to the control plane's agent hub: handshake, then heartbeats, status and commands.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use streamspace_proto::hub::{AgentMessage, Envelope, HomeUsage, PROTOCOL_VERSION, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::AgentConfig;
use crate::agent::Agent;
use crate::runtime::Runtime;

/// The version announced in `hello`.
const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Bounds the TCP, TLS and HTTP upgrade together; without it a black-holed SYN would stall reconnecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the control plane may take to answer `hello`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that heard nothing (not even a pong) for this many heartbeat intervals is dead. A half-open TCP
/// connection would otherwise accept heartbeats into its send buffer for many minutes.
const SILENT_INTERVALS: u32 = 3;
/// Listing sessions for a heartbeat must not take longer than this.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(30);
/// Measuring the homes' usage for a heartbeat must not take longer than this.
const HOME_USAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown waits for the control plane to answer the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection could not be established.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The control plane refused the token (401 or 403): it was revoked or is wrong.
    Rejected(StatusCode),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for ConnectError {
    fn from(error: anyhow::Error) -> ConnectError {
        ConnectError::Failed(error)
    }
}

/// How an established connection ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The agent is shutting down and closed the socket.
    Shutdown,
    /// The control plane closed the socket.
    Closed,
}

/// A connection that completed `hello` / `welcome`.
pub(crate) struct Connection {
    socket: Socket,
    outbox: mpsc::UnboundedReceiver<AgentMessage>,
    heartbeat: Duration,
}

/// Dials the hub, waits for the welcome (which names this agent), binds the runtime to it and
/// announces the agent with its full inventory.
pub(crate) async fn connect(config: &AgentConfig, url: &str, agent: &Agent) -> Result<Connection, ConnectError> {
    let request = request(url, &config.token)?;
    let (mut socket, _response) = timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| anyhow!("connecting to {url} timed out after {CONNECT_TIMEOUT:?}"))?
        .map_err(|error| classify(url, error))?;
    let outbox = agent.outbox.attach();
    let (agent_id, heartbeat) = timeout(WELCOME_TIMEOUT, welcome(&mut socket))
        .await
        .map_err(|_| anyhow!("the control plane sent no welcome within {WELCOME_TIMEOUT:?}"))??;
    agent.runtime.bind(agent_id);
    let hello = hello(config, agent.runtime.as_ref()).await?;
    send(&mut socket, hello).await?;
    Ok(Connection { socket, outbox, heartbeat })
}

impl Connection {
    /// Serves the connection until the control plane closes it, it fails, or `shutdown` completes.
    pub(crate) async fn serve<F>(mut self, agent: &Arc<Agent>, mut shutdown: Pin<&mut F>) -> anyhow::Result<Ended>
    where
        F: Future<Output = ()>,
    {
        let mut heartbeat = tokio::time::interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.as_mut() => {
                    self.close().await;
                    return Ok(Ended::Shutdown);
                }
                _ = heartbeat.tick() => {
                    let silence = last_heard.elapsed();
                    if silence > self.heartbeat * SILENT_INTERVALS {
                        bail!("heard nothing from the control plane for {}s", silence.as_secs());
                    }
                    spawn_heartbeat(agent);
                    // The pong (answered by the server's WebSocket layer) proves the path still works.
                    self.socket.send(Message::Ping(Default::default())).await?;
                }
                Some(message) = self.outbox.recv() => send(&mut self.socket, message).await?,
                frame = self.socket.next() => {
                    let Some(frame) = frame else { return Ok(Ended::Closed) };
                    last_heard = Instant::now();
                    match frame? {
                        Message::Text(text) => receive(agent, &text),
                        Message::Close(_) => return Ok(Ended::Closed),
                        // tungstenite answers pings itself; a pong only had to prove the path alive.
                        _ => {}
                    }
                }
            }
        }
    }

    /// Sends a close frame and waits briefly for the control plane's answer, so it sees a clean close.
    async fn close(&mut self) {
        let handshake = async {
            if self.socket.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.socket.next().await {}
            }
        };
        let _ = timeout(CLOSE_TIMEOUT, handshake).await;
    }
}

/// Acts on one message from the control plane.
fn receive(agent: &Arc<Agent>, text: &str) {
    match serde_json::from_str::<Envelope<ServerMessage>>(text) {
        Ok(Envelope { message: ServerMessage::Command(command), .. }) => agent.dispatch(command),
        Ok(Envelope { message: ServerMessage::Welcome { .. }, .. }) => tracing::debug!("ignoring a repeated welcome"),
        // A newer control plane may send messages this agent does not know; skipping them keeps it working.
        Err(error) => tracing::warn!(%error, "ignoring a message the agent does not understand"),
    }
}

/// The upgrade request, with the token marked sensitive so no HTTP layer logs it.
fn request(url: &str, token: &str) -> anyhow::Result<Request> {
    let mut request = url.into_client_request().with_context(|| format!("invalid hub URL {url}"))?;
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow!("the agent token contains characters that cannot be sent in an HTTP header"))?;
    authorization.set_sensitive(true);
    let headers = request.headers_mut();
    headers.insert(header::AUTHORIZATION, authorization);
    headers
        .insert(header::USER_AGENT, HeaderValue::from_static(concat!("streamspace-agent/", env!("CARGO_PKG_VERSION"))));
    Ok(request)
}

/// Tells a rejected token apart from every other failure to connect.
fn classify(url: &str, error: tungstenite::Error) -> ConnectError {
    match error {
        tungstenite::Error::Http(response) => match response.status() {
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ConnectError::Rejected(status),
            status => ConnectError::Failed(anyhow!("{url} answered {status} instead of upgrading to a WebSocket")),
        },
        error => ConnectError::Failed(anyhow::Error::new(error).context(format!("connecting to {url}"))),
    }
}

async fn hello(config: &AgentConfig, runtime: &dyn Runtime) -> anyhow::Result<AgentMessage> {
    Ok(AgentMessage::Hello {
        agent_version: AGENT_VERSION.to_string(),
        platform: runtime.platform(),
        capacity: runtime.capacity().await.context("reading the runtime's capacity")?,
        labels: config.labels.clone(),
        inventory: runtime.inventory().await.context("listing the runtime's sessions")?,
        epoch: config.epoch,
    })
}

/// Reads the control plane's `welcome`: this agent's id and the heartbeat interval it asks for.
async fn welcome(socket: &mut Socket) -> anyhow::Result<(Uuid, Duration)> {
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else { continue };
        let envelope: Envelope<ServerMessage> =
            serde_json::from_str(&text).context("the control plane's first message is not a welcome")?;
        let ServerMessage::Welcome { agent_id, heartbeat_interval_secs } = envelope.message else {
            bail!("the control plane sent a command before its welcome");
        };
        if envelope.v != PROTOCOL_VERSION {
            tracing::warn!(
                server = envelope.v,
                agent = PROTOCOL_VERSION,
                "the control plane speaks another protocol version"
            );
        }
        tracing::info!(%agent_id, heartbeat_interval_secs, "connected to the control plane");
        return Ok((agent_id, Duration::from_secs(heartbeat_interval_secs.max(1))));
    }
    bail!("the control plane closed the connection before its welcome")
}

async fn send(socket: &mut Socket, message: AgentMessage) -> anyhow::Result<()> {
    let text = serde_json::to_string(&Envelope::new(message)).context("encoding a message")?;
    socket.send(Message::text(text)).await.context("sending to the control plane")
}

/// Sends a heartbeat with the full inventory, and the homes' usage when a measurement is due. Listing runs in
/// its own task so a slow runtime never delays reading commands; a heartbeat is skipped rather than sent with a
/// wrong (empty) inventory.
fn spawn_heartbeat(agent: &Arc<Agent>) {
    let agent = Arc::clone(agent);
    tokio::spawn(async move {
        match timeout(INVENTORY_TIMEOUT, agent.runtime.inventory()).await {
            Ok(Ok(inventory)) => {
                let homes = measure_homes(&agent).await;
                agent.outbox.send(AgentMessage::Heartbeat { inventory, homes })
            }
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "skipping a heartbeat: cannot list sessions")
            }
            Err(_) => tracing::warn!("skipping a heartbeat: listing sessions timed out"),
        }
    });
}

/// The homes' usage if a measurement is due; a failed one is logged and tried again a period later (the
/// control plane keeps showing the last figure meanwhile).
async fn measure_homes(agent: &Agent) -> Vec<HomeUsage> {
    if !agent.home_meter.take_due() {
        return Vec::new();
    }
    match timeout(HOME_USAGE_TIMEOUT, agent.runtime.home_usage()).await {
        Ok(Ok(usage)) => usage,
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "cannot measure the homes' usage");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("measuring the homes' usage timed out");
            Vec::new()
        }
    }
}

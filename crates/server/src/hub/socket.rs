//! One agent connection: authenticate, hello and reconcile, then heartbeats, reports and
//! command results in, commands out.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use streamspace_proto::hub::{AgentMessage, Envelope, PROTOCOL_VERSION, ServerMessage};
use streamspace_store::{Agent, Scope};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::app::{App, AppState};
use crate::auth::secrets::sha256_hex;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::hub::trust;
use crate::lifecycle::{Detail, Trigger};
use crate::orchestrator::Cause;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// Unacknowledged commands are sent again after this long.
pub const RESEND_AFTER_SECS: i64 = 5;
/// Hub messages are small JSON; a larger one (a hello with a long inventory) grows the buffer while it is read.
/// tungstenite's default, 128 KiB, is zeroed on the first read and kept for the connection's life: with a thousand
/// agents that alone was 125 MiB of the control plane's memory.
const READ_BUFFER_BYTES: usize = 8 * 1024;

#[utoipa::path(get, path = "/api/v1/agents/connect", tag = "agents", security(()),
    params(("authorization" = String, Header, description = "`Bearer <agent token>`")),
    responses(
        (status = 101, description = "Switching to the agent protocol (WebSocket, JSON messages of streamspace_proto::hub)"),
        (status = 401, description = "Unknown or revoked agent token", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
    ))]
pub async fn connect(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let agent = authenticate(&app, &headers).await?;
    let upgrade = upgrade
        .map_err(|_| ApiError::new(StatusCode::UPGRADE_REQUIRED, "upgrade_required", "connect with a WebSocket"))?
        .read_buffer_size(READ_BUFFER_BYTES);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let agent_id = agent.id;
        if let Err(err) = serve(app, agent, socket).await {
            tracing::info!(%agent_id, error = %err, "agent connection ended");
        }
    }))
}

async fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Agent> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    app.store.find_agent_by_token(&sha256_hex(token.trim())).await?.ok_or_else(ApiError::unauthorized)
}

fn encode(message: ServerMessage) -> Message {
    let text = serde_json::to_string(&Envelope::new(message)).expect("hub messages serialise");
    Message::Text(text.into())
}

fn decode(message: &Message) -> anyhow::Result<Option<AgentMessage>> {
    let text = match message {
        Message::Text(text) => text.as_str(),
        Message::Binary(bytes) => std::str::from_utf8(bytes)?,
        Message::Close(_) => anyhow::bail!("closed by the agent"),
        Message::Ping(_) | Message::Pong(_) => return Ok(None),
    };
    let envelope: Envelope<AgentMessage> = serde_json::from_str(text)?;
    anyhow::ensure!(
        envelope.v == PROTOCOL_VERSION,
        "protocol version {} (this control plane speaks {PROTOCOL_VERSION})",
        envelope.v
    );
    Ok(Some(envelope.message))
}

async fn serve(app: AppState, agent: Agent, socket: WebSocket) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let welcome =
        ServerMessage::Welcome { agent_id: agent.id, heartbeat_interval_secs: app.config.heartbeat_interval_secs };
    sink.send(encode(welcome)).await?;
    let hello =
        tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await?.ok_or_else(|| anyhow::anyhow!("no hello"))??;
    let Some(AgentMessage::Hello { agent_version, platform, capacity, labels, inventory, epoch }) = decode(&hello)?
    else {
        anyhow::bail!("the first message must be a hello");
    };
    anyhow::ensure!(platform == agent.platform, "registered as {:?}, connected as {platform:?}", agent.platform);
    let fence = Fence::claim(&app, &agent, epoch).await?;
    let (labels, ignored) = trust::reported_labels(labels);
    if !ignored.is_empty() {
        tracing::warn!(agent = %agent.name, ?ignored, "ignored labels the agent may not set (reserved, too long or too many)");
    }
    let capacity = trust::capped_capacity(capacity, agent.capacity_limit);
    app.store.record_agent_hello(agent.id, &agent_version, capacity, &labels, app.clock.now()).await?;

    let (outbox, mut pending) = mpsc::unbounded_channel();
    let serial = app.hub.connect(agent.id, outbox);
    app.store.claim_agent_connection(agent.id, app.cluster.replica()).await?;
    metrics::gauge!("streamspace_agents_connected").set(app.hub.connected_count() as f64);
    tracing::info!(agent = %agent.name, version = %agent_version, sessions = inventory.len(), "agent connected");

    let mut writer = tokio::spawn(async move {
        while let Some(message) = pending.recv().await {
            if sink.send(encode(message)).await.is_err() {
                break;
            }
        }
        // The registry dropped this connection (kicked, or replaced): close it.
        let _ = sink.close().await;
    });

    let result = async {
        settle(&app, &agent, &inventory, chrono::Duration::zero()).await;
        app.publish_agent(agent.id).await;
        while let Some(message) = stream.next().await {
            let Some(message) = decode(&message?)? else { continue };
            fence.check(&app, &agent).await?;
            handle(&app, &agent, message).await;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = result => result,
        _ = &mut writer => Err(anyhow::anyhow!("disconnected by the control plane")),
    };
    app.hub.disconnect(agent.id, serial);
    // Unless a newer connection of the agent is held here (a reconnect that overtook this one).
    if !app.hub.is_connected(agent.id) {
        release(&app, &agent).await;
    }
    writer.abort();
    metrics::gauge!("streamspace_agents_connected").set(app.hub.connected_count() as f64);
    app.publish_agent(agent.id).await;
    result
}

/// The leader term of an agent in an HA group (ADR 0031): its hello's epoch, recorded as the newest unless a
/// newer one is; a connection of an overtaken term is dropped before it can report anything, on whichever
/// replica it is. An agent that runs alone announces no epoch and is not fenced.
struct Fence(Option<i64>);

impl Fence {
    async fn claim(app: &App, agent: &Agent, epoch: Option<u64>) -> anyhow::Result<Fence> {
        let Some(epoch) = epoch else { return Ok(Fence(None)) };
        let epoch = i64::try_from(epoch).map_err(|_| anyhow::anyhow!("epoch {epoch} is out of range"))?;
        anyhow::ensure!(
            app.store.advance_agent_epoch(agent.id, epoch).await?,
            "a stale leader (epoch {epoch}): a newer leader of the agent's HA group connected"
        );
        Ok(Fence(Some(epoch)))
    }

    async fn check(&self, app: &App, agent: &Agent) -> anyhow::Result<()> {
        let Some(epoch) = self.0 else { return Ok(()) };
        let newest = app.store.agent_epoch(agent.id).await?;
        anyhow::ensure!(newest <= epoch, "epoch {epoch} was overtaken by epoch {newest}: dropping a stale leader");
        Ok(())
    }
}

/// Records that this replica no longer holds the agent, unless another took it over meanwhile.
async fn release(app: &App, agent: &Agent) {
    if let Err(err) = app.store.release_agent_connection(agent.id, app.cluster.replica()).await {
        // Its heartbeats stop being recorded: it goes offline within three intervals anyway.
        tracing::warn!(agent = %agent.name, error = %err, "cannot record that the agent disconnected");
    }
}

/// Reconciles the inventory and sends what is owed; failures are logged, and the next
/// heartbeat tries again.
async fn settle(
    app: &App,
    agent: &Agent,
    inventory: &[streamspace_proto::hub::InventoryItem],
    resend_after: chrono::Duration,
) {
    if let Err(err) = app.reconcile(agent.id, inventory).await {
        tracing::warn!(agent = %agent.name, error = err.message, "reconciliation failed");
    }
    if let Err(err) = app.flush_commands(agent.id, resend_after).await {
        tracing::warn!(agent = %agent.name, error = err.message, "sending pending commands failed");
    }
}

async fn handle(app: &App, agent: &Agent, message: AgentMessage) {
    let result = match message {
        AgentMessage::Heartbeat { inventory, homes } => {
            let recorded = app.store.record_agent_heartbeat(agent.id, app.clock.now()).await;
            // Heals a release that raced with a reconnect to this replica.
            let recorded = match recorded {
                Ok(()) => app.store.claim_agent_connection(agent.id, app.cluster.replica()).await,
                failed => failed,
            };
            settle(app, agent, &inventory, chrono::Duration::seconds(RESEND_AFTER_SECS)).await;
            if let Err(err) = crate::homes::record_usage(app, agent.id, &homes).await {
                tracing::warn!(agent = %agent.name, error = err.message, "could not store home usage");
            }
            recorded.map_err(ApiError::from)
        }
        AgentMessage::SessionStatus { session_id, state, traceparent } => {
            let span = report_span(agent, "session status", traceparent.as_deref());
            app.on_report(agent.id, session_id, &state).instrument(span).await
        }
        AgentMessage::CommandResult { command_id, ok, error, traceparent } => {
            let span = report_span(agent, "command result", traceparent.as_deref());
            command_result(app, agent, command_id, ok, error).instrument(span).await
        }
        AgentMessage::Hello { .. } => Err(ApiError::bad_request("hello was already said")),
    };
    if let Err(err) = result {
        tracing::warn!(agent = %agent.name, error = err.message, "could not apply an agent message");
    }
}

/// The span of a report that continues a trace (the agent's work on a command); untraced reports,
/// such as heartbeats and the runtime's own observations, start no trace of their own.
fn report_span(agent: &Agent, name: &'static str, traceparent: Option<&str>) -> tracing::Span {
    let Some(traceparent) = traceparent else { return tracing::Span::none() };
    let span = tracing::info_span!("agent report", otel.name = name, agent = %agent.name);
    streamspace_trace::continue_trace(&span, traceparent);
    span
}

/// Applies an answer to a command sent to this agent; an answer to anything else changes nothing.
async fn command_result(
    app: &App,
    agent: &Agent,
    command_id: uuid::Uuid,
    ok: bool,
    error: Option<String>,
) -> ApiResult<()> {
    let error = if ok { None } else { Some(error.unwrap_or_else(|| "the agent reported a failure".to_owned())) };
    let Some(command) = app.store.ack_command(agent.id, command_id, error.clone(), app.clock.now()).await? else {
        return Ok(());
    };
    metrics::histogram!("streamspace_agent_command_latency_seconds")
        .record((app.clock.now() - command.created_at).num_milliseconds() as f64 / 1e3);
    let Some(reason) = error else { return Ok(()) };
    let session = app.store.get_session(Scope::Platform, command.session_id).await?;
    match session {
        Some(session) if !session.state.is_terminal() => {
            app.advance(&session, Trigger::Fail, Detail::reason(reason), &Cause::system()).await.map(drop)
        }
        _ => Ok(()),
    }
}

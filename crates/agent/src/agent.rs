//! The agent's state shared by its connections, command workers and event forwarder.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use streamspace_proto::hub::{ActualState, AgentMessage, Command, CommandKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::commands::{self, Admission, CommandLog, Outcome, SessionQueues};
use crate::runtime::Runtime;

/// How long to wait before subscribing again when a runtime's event stream ends.
const EVENTS_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
/// How often the agent measures the homes it holds: usage is for people to look at, and measuring walks
/// every home's files.
const HOME_USAGE_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) struct Agent {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) outbox: Outbox,
    pub(crate) home_meter: HomeMeter,
    log: Mutex<CommandLog>,
    queues: SessionQueues,
}

impl Agent {
    pub(crate) fn new(runtime: Arc<dyn Runtime>) -> Arc<Agent> {
        Arc::new(Agent {
            runtime,
            outbox: Outbox::default(),
            home_meter: HomeMeter::default(),
            log: Mutex::default(),
            queues: SessionQueues::default(),
        })
    }

    /// Executes a command unless its id was seen before; a finished one is answered again from memory.
    pub(crate) fn dispatch(self: &Arc<Agent>, command: Command) {
        let admission = self.log.lock().unwrap_or_else(PoisonError::into_inner).admit(command.id);
        match admission {
            Admission::Done(outcome) => {
                tracing::debug!(command_id = %command.id, "command re-sent: answering again without re-applying");
                self.outbox.send(outcome.message(command.id));
            }
            Admission::InFlight => {
                tracing::debug!(command_id = %command.id, "command re-sent while still in flight");
            }
            Admission::New => {
                let span = tracing::info_span!(
                    "command",
                    otel.name = format!("agent {:?}", command.kind).to_lowercase(),
                    command_id = %command.id,
                    kind = ?command.kind,
                    session_id = %command.session_id,
                    traceparent = command.traceparent.as_deref().unwrap_or_default(),
                );
                if let Some(traceparent) = &command.traceparent {
                    streamspace_trace::continue_trace(&span, traceparent);
                }
                let agent = Arc::clone(self);
                self.queues
                    .push(command.session_id, Box::pin(async move { agent.apply(command).await }.instrument(span)));
            }
        }
    }

    async fn apply(&self, command: Command) {
        tracing::info!("executing command");
        let report = |state: ActualState| self.outbox.status(command.session_id, state);
        let result = commands::execute(self.runtime.as_ref(), &command, &report).await;
        if let Err(error) = &result {
            tracing::warn!(error = format!("{error:#}"), "command failed");
        }
        if matches!(command.kind, CommandKind::Hibernate | CommandKind::Stop | CommandKind::Remove) {
            // What the session wrote into its home is final now: show it without waiting for the period.
            self.home_meter.measure_soon();
        }
        let outcome = Outcome::of(&result);
        self.log.lock().unwrap_or_else(PoisonError::into_inner).finish(command.id, outcome.clone());
        self.outbox.send(outcome.message(command.id));
    }

    /// Forwards the runtime's own observations (a container that died) for the agent's whole life.
    pub(crate) async fn forward_events(self: Arc<Agent>) {
        loop {
            let mut events = self.runtime.events();
            while let Some((session_id, state)) = events.next().await {
                tracing::info!(%session_id, ?state, "runtime reported a change");
                self.outbox.status(session_id, state);
            }
            tracing::warn!("the runtime's event stream ended; subscribing again");
            tokio::time::sleep(EVENTS_RESUBSCRIBE_DELAY).await;
        }
    }
}

/// When the homes are measured next: on a period, and at the next heartbeat after a session stopped.
#[derive(Default)]
pub(crate) struct HomeMeter {
    /// `None`: due now (at start, and after a session stopped).
    next: Mutex<Option<Instant>>,
}

impl HomeMeter {
    /// Whether a measurement is due; if so, the caller takes it and the next one is a period away, so
    /// heartbeats that overlap do not measure twice.
    pub(crate) fn take_due(&self) -> bool {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if next.is_some_and(|next| now < next) {
            return false;
        }
        *next = Some(now + HOME_USAGE_INTERVAL);
        true
    }

    fn measure_soon(&self) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Where messages for the control plane go: the current connection, or nowhere while disconnected. Nothing
/// produced while disconnected needs keeping: the next `hello` carries the full inventory, and the control
/// plane re-sends unacknowledged commands, which the command log answers.
#[derive(Default)]
pub(crate) struct Outbox {
    current: Mutex<Option<mpsc::UnboundedSender<AgentMessage>>>,
}

impl Outbox {
    /// Routes messages to a new connection. Called before the connection takes its inventory for `hello`, so
    /// no change after that snapshot is lost; the connection sends what queued up once `hello` is out.
    pub(crate) fn attach(&self) -> mpsc::UnboundedReceiver<AgentMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }

    pub(crate) fn send(&self, message: AgentMessage) {
        if let Some(tx) = self.current.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            // A closed channel means the connection is gone; see the type's docs for why dropping is fine.
            let _ = tx.send(message);
        }
    }

    pub(crate) fn status(&self, session_id: Uuid, state: ActualState) {
        let traceparent = streamspace_trace::current_traceparent();
        self.send(AgentMessage::SessionStatus { session_id, state, traceparent });
    }
}

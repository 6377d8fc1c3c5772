//! Executing the control plane's commands: at most once per command id, in order within a session.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use futures::FutureExt;
use streamspace_proto::hub::{ActualState, AgentMessage, Command, CommandKind, SessionSpec};
use uuid::Uuid;

use crate::runtime::{Progress, Runtime};

/// How many command ids the agent remembers. The control plane re-sends a command only until it is
/// acknowledged, so only recent ids matter; the bound keeps a long-running agent's memory flat.
const REMEMBERED_COMMANDS: usize = 4096;

/// The answer to a command, kept so a re-sent command can be answered again without being re-applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) ok: bool,
    pub(crate) error: Option<String>,
}

impl Outcome {
    pub(crate) fn of(result: &anyhow::Result<()>) -> Outcome {
        match result {
            Ok(()) => Outcome { ok: true, error: None },
            Err(error) => Outcome { ok: false, error: Some(format!("{error:#}")) },
        }
    }

    pub(crate) fn message(&self, command_id: Uuid) -> AgentMessage {
        AgentMessage::CommandResult {
            command_id,
            ok: self.ok,
            error: self.error.clone(),
            traceparent: streamspace_trace::current_traceparent(),
        }
    }
}

/// What to do with a command that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Never seen: execute it.
    New,
    /// Being executed: its result will be sent when it finishes.
    InFlight,
    /// Already executed: send the remembered result again.
    Done(Outcome),
}

/// Command ids seen recently and their outcomes.
#[derive(Debug)]
pub(crate) struct CommandLog {
    outcomes: HashMap<Uuid, Option<Outcome>>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl Default for CommandLog {
    fn default() -> CommandLog {
        CommandLog::with_capacity(REMEMBERED_COMMANDS)
    }
}

impl CommandLog {
    fn with_capacity(capacity: usize) -> CommandLog {
        CommandLog { outcomes: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Classifies a command id, recording a new one as in flight.
    pub(crate) fn admit(&mut self, id: Uuid) -> Admission {
        match self.outcomes.get(&id) {
            Some(Some(outcome)) => return Admission::Done(outcome.clone()),
            Some(None) => return Admission::InFlight,
            None => {}
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.outcomes.remove(&oldest);
        }
        self.order.push_back(id);
        self.outcomes.insert(id, None);
        Admission::New
    }

    /// Records a command's outcome (ignored if the id was forgotten meanwhile).
    pub(crate) fn finish(&mut self, id: Uuid, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(&id) {
            *slot = Some(outcome);
        }
    }
}

/// A unit of work for one session.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs jobs one after another per session and concurrently across sessions, so a `stop` never overtakes the
/// `start` before it while one slow image pull does not hold up every other session.
#[derive(Clone, Default)]
pub(crate) struct SessionQueues {
    /// A session has an entry exactly while a worker task drains its queue.
    queues: Arc<Mutex<HashMap<Uuid, VecDeque<Job>>>>,
}

impl SessionQueues {
    /// Queues a job behind the session's earlier jobs, starting a worker if the session has none.
    pub(crate) fn push(&self, session_id: Uuid, job: Job) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = queues.get_mut(&session_id) {
            queue.push_back(job);
            return;
        }
        queues.insert(session_id, VecDeque::new());
        tokio::spawn(self.clone().drain(session_id, job));
    }

    async fn drain(self, session_id: Uuid, first: Job) {
        let mut job = first;
        loop {
            // A panicking runtime must not wedge the session's queue forever.
            if AssertUnwindSafe(job).catch_unwind().await.is_err() {
                tracing::error!(%session_id, "a command panicked");
            }
            match self.next(session_id) {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// The session's next job, or `None` after removing the drained queue (under the same lock as `push`, so a
    /// job pushed concurrently either lands in this queue or starts a new worker).
    fn next(&self, session_id: Uuid) -> Option<Job> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let next = queues.get_mut(&session_id)?.pop_front();
        if next.is_none() {
            queues.remove(&session_id);
        }
        next
    }
}

/// Applies one command to the runtime, reporting the session's states along the way.
pub(crate) async fn execute(runtime: &dyn Runtime, command: &Command, report: &Progress<'_>) -> anyhow::Result<()> {
    let session_id = command.session_id;
    match command.kind {
        CommandKind::Start | CommandKind::Wake => {
            let spec = spec_of(command)?;
            let started = match command.kind {
                CommandKind::Wake => runtime.wake(spec, report).await,
                _ => runtime.start(spec, report).await,
            };
            match started {
                Ok(endpoint) => report(ActualState::Running { endpoint }),
                Err(error) => {
                    report(ActualState::Failed { reason: format!("{error:#}") });
                    return Err(error);
                }
            }
        }
        CommandKind::Hibernate => {
            runtime.hibernate(session_id).await?;
            report(ActualState::Hibernated);
        }
        CommandKind::Stop => {
            runtime.stop(session_id).await?;
            report(ActualState::Stopped);
        }
        CommandKind::Remove => {
            runtime.remove(session_id).await?;
            report(ActualState::Stopped);
        }
        // Not a session: nothing to report beyond the command's outcome.
        CommandKind::RemoveHome => runtime.remove_home(session_id).await?,
    }
    Ok(())
}

/// The spec a start or wake needs, checked against the command's session.
fn spec_of(command: &Command) -> anyhow::Result<&SessionSpec> {
    let spec = command.spec.as_ref().with_context(|| format!("a {:?} command needs a session spec", command.kind))?;
    if spec.session_id != command.session_id {
        bail!("the spec is for session {} but the command for session {}", spec.session_id, command.session_id);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    fn outcome(ok: bool) -> Outcome {
        Outcome { ok, error: (!ok).then(|| "boom".to_string()) }
    }

    #[test]
    fn a_command_is_new_once_then_in_flight_then_answered_from_the_log() {
        let mut log = CommandLog::default();
        let id = Uuid::new_v4();
        assert_eq!(log.admit(id), Admission::New);
        assert_eq!(log.admit(id), Admission::InFlight);
        log.finish(id, outcome(false));
        assert_eq!(log.admit(id), Admission::Done(outcome(false)));
        assert_eq!(log.admit(Uuid::new_v4()), Admission::New);
    }

    #[test]
    fn the_log_forgets_the_oldest_ids_beyond_its_capacity() {
        let mut log = CommandLog::with_capacity(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            assert_eq!(log.admit(*id), Admission::New);
            log.finish(*id, outcome(true));
        }
        assert_eq!(log.admit(ids[2]), Admission::Done(outcome(true)));
        assert_eq!(log.admit(ids[0]), Admission::New, "the oldest id was forgotten");
        log.finish(Uuid::new_v4(), outcome(true));
        assert!(log.outcomes.len() <= 2);
    }

    #[test]
    fn outcomes_carry_the_whole_error_chain() {
        let failed: anyhow::Result<()> = Err(anyhow::anyhow!("no such host").context("pulling image x"));
        assert_eq!(Outcome::of(&failed).error.as_deref(), Some("pulling image x: no such host"));
        let id = Uuid::new_v4();
        assert_eq!(
            Outcome::of(&Ok(())).message(id),
            AgentMessage::CommandResult { command_id: id, ok: true, error: None, traceparent: None }
        );
    }

    /// A job that records its start and end, taking `ms` in between.
    fn job(log: &mpsc::UnboundedSender<String>, name: &'static str, ms: u64) -> Job {
        let log = log.clone();
        Box::pin(async move {
            let _ = log.send(format!("{name} start"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = log.send(format!("{name} end"));
        })
    }

    async fn collect(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap());
        }
        got
    }

    #[tokio::test]
    async fn jobs_of_one_session_run_in_order_and_sessions_run_concurrently() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let queues = SessionQueues::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        queues.push(a, job(&tx, "a1", 100));
        queues.push(a, job(&tx, "a2", 0));
        queues.push(b, job(&tx, "b1", 0));
        let events = collect(&mut rx, 6).await;
        let at = |name: &str| events.iter().position(|e| e == name).unwrap();
        assert!(at("a1 end") < at("a2 start"), "{events:?}");
        assert!(at("b1 end") < at("a1 end"), "b does not wait for a: {events:?}");
        // The drained queues are gone, and a new job starts a new worker.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(queues.queues.lock().unwrap().is_empty());
        queues.push(a, job(&tx, "a3", 0));
        assert_eq!(collect(&mut rx, 2).await, ["a3 start", "a3 end"]);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_block_the_session() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let queues = SessionQueues::default();
        let a = Uuid::new_v4();
        queues.push(a, Box::pin(async { panic!("runtime bug") }));
        queues.push(a, job(&tx, "after", 0));
        assert_eq!(collect(&mut rx, 2).await, ["after start", "after end"]);
    }

    #[test]
    fn start_needs_a_spec_for_the_same_session() {
        let session_id = Uuid::new_v4();
        let mut command =
            Command { id: Uuid::new_v4(), kind: CommandKind::Start, session_id, spec: None, traceparent: None };
        assert!(format!("{:#}", spec_of(&command).unwrap_err()).contains("needs a session spec"));
        command.spec = Some(SessionSpec {
            session_id: Uuid::new_v4(),
            org_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            image: "x".into(),
            env: Default::default(),
            cpu_millis: 0,
            memory_mb: 0,
            shm_mb: 0,
            port: 8080,
            egress_allow: Vec::new(),
            home: None,
        });
        assert!(format!("{:#}", spec_of(&command).unwrap_err()).contains("the spec is for session"));
    }
}

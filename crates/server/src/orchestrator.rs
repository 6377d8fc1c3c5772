//! Drives sessions: scheduling, transitions with their effects (durable agent commands), agent
//! reports, reconciliation and timers. Decisions are made by `lifecycle::next` and
//! `scheduler::choose`; this module gathers their inputs and carries out their outputs.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use streamspace_proto::hub::{ActualState, Command, CommandKind, InventoryItem, ServerMessage, SessionSpec};
use streamspace_proto::security;
use streamspace_proto::{SessionPhase, SessionState};
use streamspace_store::{Agent, Scope, Session, SessionUpdate};
use uuid::Uuid;

use crate::api::sessions::SessionView;
use crate::app::App;
use crate::audit::{Actor, Event as AuditEvent, Outcome};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::events::Change;
use crate::hub::trust;
use crate::lifecycle::{self, Effect, Event};
use crate::scheduler::{self, Candidate, Requirements};

/// What a transition sets besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    pub agent_id: Option<Uuid>,
    pub endpoint: Option<String>,
    pub phase: Option<SessionPhase>,
    pub progress: Option<i32>,
    pub reason: Option<String>,
}

impl Detail {
    pub fn reason(reason: impl Into<String>) -> Detail {
        Detail { reason: Some(reason.into()), ..Detail::default() }
    }
}

/// Who caused a change, for the audit log.
pub struct Cause<'a> {
    pub actor: &'a Actor,
    pub meta: &'a RequestMeta,
}

impl Cause<'static> {
    /// Agents and timers act as the system.
    pub fn system() -> Cause<'static> {
        static ACTOR: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::system);
        static META: std::sync::LazyLock<RequestMeta> = std::sync::LazyLock::new(RequestMeta::internal);
        Cause { actor: &ACTOR, meta: &META }
    }
}

/// The lifecycle event an agent's report of `actual` stands for, given the stored state; `None`
/// when the report changes nothing or cannot be applied (a stale report).
pub fn event_for_report(current: SessionState, actual: &ActualState) -> Option<(Event, Detail)> {
    use SessionState::*;
    let detail = Detail::default();
    match actual {
        ActualState::Starting { phase, progress } => matches!(current, Scheduled | Starting)
            .then(|| (Event::AgentStarting, Detail { phase: Some(*phase), progress: *progress, ..detail })),
        ActualState::Running { endpoint } => match current {
            Scheduled | Starting => Some((Event::AgentRunning, Detail { endpoint: Some(endpoint.clone()), ..detail })),
            _ => None,
        },
        ActualState::Hibernated => match current {
            Hibernating => Some((Event::AgentHibernated, detail)),
            Running => Some((Event::Fail, Detail::reason("the application's container stopped unexpectedly"))),
            _ => None,
        },
        ActualState::Stopped => match current {
            Stopping => Some((Event::AgentStopped, detail)),
            Running | Hibernating | Hibernated => {
                Some((Event::Fail, Detail::reason("the session's container is gone")))
            }
            _ => None,
        },
        ActualState::Failed { reason } => {
            (!current.is_terminal()).then(|| (Event::Fail, Detail::reason(reason.clone())))
        }
    }
}

impl App {
    /// Applies `event` to the session: the state machine decides, the store records it with a
    /// compare-and-set, the agent is told what to do, watchers are told, and it is audited.
    pub async fn advance(
        &self,
        session: &Session,
        event: Event,
        detail: Detail,
        cause: &Cause<'_>,
    ) -> ApiResult<Session> {
        let transition = lifecycle::next(session.state, &event)
            .map_err(|err| ApiError::new(axum::http::StatusCode::CONFLICT, "invalid_state", err.to_string()))?;
        let now = self.clock.now();
        let mut update = SessionUpdate::transition(session.state, transition.to);
        if let Some(agent_id) = detail.agent_id {
            update.agent_id = Some(Some(agent_id));
        }
        match transition.to {
            SessionState::Starting | SessionState::Scheduled => {
                update.phase = Some(Some(detail.phase.unwrap_or(SessionPhase::Scheduling).as_str().to_owned()));
                update.progress = Some(detail.progress);
            }
            SessionState::Running => {
                update.endpoint = Some(detail.endpoint.clone().or(session.endpoint.clone()));
                update.phase = Some(None);
                update.progress = Some(None);
                // The first start: lifetimes and start latency count from it, not from a wake.
                if session.started_at.is_none() {
                    update.started_at = Some(Some(now));
                }
            }
            SessionState::Failed => update.failure_reason = Some(detail.reason.clone()),
            _ => {}
        }
        if matches!(transition.to, SessionState::Hibernated | SessionState::Stopped | SessionState::Failed) {
            update.endpoint = Some(None);
            update.phase = Some(None);
            update.progress = Some(None);
        }
        if transition.to.is_terminal() && !session.state.is_terminal() {
            update.stopped_at = Some(Some(now));
        }
        let updated = self.store.update_session(session.id, update).await?.ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::CONFLICT, "invalid_state", "the session changed meanwhile; try again")
        })?;
        if let Some(effect) = transition.effect {
            self.carry_out(&updated, effect, cause.meta.traceparent()).await?;
        }
        if updated.state == SessionState::Running
            && session.state != SessionState::Running
            && let Some(endpoint) = updated.endpoint.clone()
        {
            // A (re)started streamer has an empty token table.
            tokio::spawn(crate::proxy::streamer::provision(
                self.http.clone(),
                endpoint,
                self.master_token(session.id),
                self.viewer_token(session.id),
            ));
        }
        if updated.state != session.state {
            record_timing(session, &updated, now);
            let details = json!({"from": session.state, "to": updated.state, "reason": detail.reason});
            let outcome = if updated.state == SessionState::Failed { Outcome::Failure } else { Outcome::Success };
            let audit = AuditEvent::new("session.transition", format!("session:{}", session.id))
                .org(session.org_id)
                .outcome(outcome)
                .details(details);
            self.audit(cause.meta, cause.actor, audit).await?;
        }
        self.publish_session(&updated).await;
        Ok(updated)
    }

    pub async fn publish_session(&self, session: &Session) {
        self.routes.invalidate(session.id);
        match SessionView::load(self, session.clone()).await {
            Ok(view) => self.bus.publish(Change::Session(view)),
            Err(err) => tracing::warn!(session = %session.id, error = err.message, "cannot publish a session change"),
        }
    }

    async fn carry_out(&self, session: &Session, effect: Effect, traceparent: Option<String>) -> ApiResult<()> {
        let Some(agent_id) = session.agent_id else {
            // Never placed on an agent: nothing runs anywhere.
            return Ok(());
        };
        let kind = match effect {
            Effect::Start => CommandKind::Start,
            Effect::Hibernate => CommandKind::Hibernate,
            Effect::Wake => CommandKind::Wake,
            Effect::Stop => CommandKind::Stop,
            Effect::Remove => CommandKind::Remove,
        };
        let spec = match kind {
            CommandKind::Start | CommandKind::Wake => Some(self.spec_for(session).await?),
            _ => None,
        };
        let command = Command { id: Uuid::now_v7(), kind, session_id: session.id, spec, traceparent };
        self.dispatch(agent_id, command).await?;
        if kind == CommandKind::Start {
            // The first phase of a start: from the request to the command on its way to the agent.
            let seconds = (self.clock.now() - session.created_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            metrics::histogram!("session_start_dispatch_seconds").record(seconds);
        }
        Ok(())
    }

    /// Stores a command, then sends it if the agent is connected here. The store copy is what
    /// survives reconnects and restarts: it is re-sent until the agent acknowledges it.
    pub async fn dispatch(&self, agent_id: Uuid, command: Command) -> ApiResult<()> {
        let stored = self.store.enqueue_command(agent_id, command, self.clock.now()).await?;
        metrics::counter!("agent_commands_total", "kind" => format!("{:?}", stored.command.kind).to_lowercase())
            .increment(1);
        if self.hub.send(agent_id, ServerMessage::Command(stored.command.clone())) {
            self.store.mark_command_sent(stored.id, self.clock.now()).await?;
        }
        Ok(())
    }

    async fn spec_for(&self, session: &Session) -> ApiResult<SessionSpec> {
        let template = self
            .store
            .get_template(Scope::Platform, session.template_id)
            .await?
            .ok_or_else(|| ApiError::conflict("the session's template was deleted"))?;
        let org_allow = self.store.get_org(Scope::Platform, session.org_id).await?.map(|org| org.egress_allow);
        let egress_allow = security::merge_allow_lists(&template.egress_allow, &org_allow.unwrap_or_default());
        let mut env = template.env.clone();
        env.extend(self.streamer_env(session.id));
        Ok(SessionSpec {
            session_id: session.id,
            org_id: session.org_id,
            owner_id: session.owner_id,
            image: template.image,
            env,
            cpu_millis: template.cpu_millis,
            memory_mb: template.memory_mb,
            shm_mb: template.shm_mb,
            port: template.port,
            egress_allow,
        })
    }

    /// Places a pending session on the least loaded fitting agent and starts it there, or fails
    /// it with the reason none fits.
    pub async fn schedule(&self, session: &Session, cause: &Cause<'_>) -> ApiResult<Session> {
        let template = self.store.get_template(Scope::Platform, session.template_id).await?;
        let requirements = Requirements {
            platform: None,
            labels: Default::default(),
            cpu_millis: template.as_ref().map_or(0, |t| t.cpu_millis),
            memory_mb: template.as_ref().map_or(0, |t| t.memory_mb),
        };
        let candidates = self.candidates().await?;
        match scheduler::choose(&candidates, &requirements) {
            Ok(agent_id) => {
                let detail = Detail { agent_id: Some(agent_id), ..Detail::default() };
                self.advance(session, Event::Scheduled, detail, cause).await
            }
            Err(reason) => {
                self.advance(session, Event::Fail, Detail::reason(format!("cannot schedule: {reason}")), cause).await
            }
        }
    }

    async fn candidates(&self) -> ApiResult<Vec<Candidate>> {
        let agents = self.store.list_agents().await?;
        let mut load: HashMap<Uuid, (i64, i64, i64)> = HashMap::new();
        for session in self.store.list_active_sessions().await? {
            if let Some(agent_id) = session.agent_id {
                let entry = load.entry(agent_id).or_default();
                *entry = (entry.0 + 1, entry.1 + session.cpu_millis, entry.2 + session.memory_mb);
            }
        }
        Ok(agents
            .into_iter()
            .map(|agent| {
                let (sessions, cpu_millis, memory_mb) = load.get(&agent.id).copied().unwrap_or_default();
                Candidate {
                    online: self.agent_online(&agent),
                    id: agent.id,
                    platform: agent.platform,
                    labels: agent.effective_labels(),
                    capacity: agent.capacity,
                    sessions,
                    cpu_millis,
                    memory_mb,
                }
            })
            .collect())
    }

    /// Online: connected here and heard from within three heartbeat intervals.
    pub fn agent_online(&self, agent: &Agent) -> bool {
        let window = chrono::Duration::seconds(3 * self.config.heartbeat_interval_secs as i64);
        self.hub.is_connected(agent.id) && agent.last_heartbeat_at.is_some_and(|at| self.clock.now() - at <= window)
    }

    /// Applies one report from an agent about one session.
    pub async fn on_report(&self, agent_id: Uuid, session_id: Uuid, actual: &ActualState) -> ApiResult<()> {
        let session = self.store.get_session(Scope::Platform, session_id).await?;
        let Some(session) = session.filter(|s| s.agent_id == Some(agent_id)) else {
            return self.remove_unknown(agent_id, session_id, actual).await;
        };
        if session.state.is_terminal() && !matches!(actual, ActualState::Stopped) {
            // The store has ended it, the agent still holds something: clean up.
            return self.remove_unknown(agent_id, session_id, actual).await;
        }
        if let Some((event, detail)) = event_for_report(session.state, actual) {
            if let Some(endpoint) = detail.endpoint.as_deref() {
                return match self.vet_endpoint(agent_id, &session, endpoint).await? {
                    Ok(checked) => {
                        let detail = Detail { endpoint: Some(checked), ..detail };
                        self.advance(&session, event, detail, &Cause::system()).await.map(drop)
                    }
                    Err(reason) => {
                        self.advance(&session, Event::Fail, Detail::reason(reason), &Cause::system()).await?;
                        // What runs there cannot be reached: the agent removes it.
                        self.remove_unknown(agent_id, session_id, actual).await
                    }
                };
            }
            let changes_nothing = event == Event::AgentStarting
                && session.state == SessionState::Starting
                && session.phase.as_deref() == detail.phase.map(SessionPhase::as_str)
                && session.progress == detail.progress;
            if !changes_nothing {
                self.advance(&session, event, detail, &Cause::system()).await?;
            }
        }
        Ok(())
    }

    /// The endpoint in the form the proxy may dial (see `hub::trust`), or why it is refused; a
    /// refusal is logged and audited.
    async fn vet_endpoint(
        &self,
        agent_id: Uuid,
        session: &Session,
        endpoint: &str,
    ) -> ApiResult<Result<String, String>> {
        let agent = self.store.get_agent(agent_id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
        let (host, listeners) = (self.host_addresses(), self.listeners());
        let allowed = trust::parse_cidrs(&agent.endpoint_cidrs);
        match (trust::EndpointPolicy { host: &host, listeners: &listeners, allowed: &allowed }).check(endpoint) {
            Ok(address) => Ok(Ok(format!("http://{address}"))),
            Err(why) => {
                let endpoint = trust::for_the_record(endpoint);
                tracing::warn!(agent = %agent.name, session = %session.id, %endpoint, reason = %why, "refused an agent's session endpoint");
                metrics::counter!("agent_endpoints_refused_total").increment(1);
                let audit = AuditEvent::new("agent.endpoint_refused", format!("agent:{agent_id}"))
                    .org(session.org_id)
                    .outcome(Outcome::Failure)
                    .details(json!({"session": session.id, "endpoint": endpoint, "reason": why}));
                self.audit(&RequestMeta::internal(), &Actor::system(), audit).await?;
                Ok(Err(format!("the agent reported an endpoint the control plane does not dial ({why})")))
            }
        }
    }

    /// A session the store does not know (or has ended) is removed from the agent.
    async fn remove_unknown(&self, agent_id: Uuid, session_id: Uuid, actual: &ActualState) -> ApiResult<()> {
        if matches!(actual, ActualState::Stopped) {
            return Ok(());
        }
        let pending = self.store.pending_commands(agent_id).await?;
        if pending.iter().any(|c| c.session_id == session_id && c.command.kind == CommandKind::Stop) {
            return Ok(());
        }
        tracing::info!(%agent_id, %session_id, "removing a session the control plane does not run");
        let command =
            Command { id: Uuid::now_v7(), kind: CommandKind::Stop, session_id, spec: None, traceparent: None };
        self.dispatch(agent_id, command).await
    }

    /// Brings the store and an agent's inventory into agreement (on hello and every heartbeat).
    pub async fn reconcile(&self, agent_id: Uuid, inventory: &[InventoryItem]) -> ApiResult<()> {
        for item in inventory {
            self.on_report(agent_id, item.session_id, &item.state).await?;
        }
        let reported: HashSet<Uuid> = inventory.iter().map(|item| item.session_id).collect();
        let in_flight: HashSet<Uuid> =
            self.store.pending_commands(agent_id).await?.into_iter().map(|c| c.session_id).collect();
        for session in self.store.list_agent_sessions(agent_id).await? {
            if reported.contains(&session.id) || in_flight.contains(&session.id) {
                continue;
            }
            // The agent has nothing of a session the store places there.
            self.on_report(agent_id, session.id, &ActualState::Stopped).await?;
        }
        Ok(())
    }

    /// Sends every unacknowledged command of the agent not sent within `resend_after`.
    pub async fn flush_commands(&self, agent_id: Uuid, resend_after: chrono::Duration) -> ApiResult<()> {
        let now = self.clock.now();
        for pending in self.store.pending_commands(agent_id).await? {
            if pending.last_sent_at.is_some_and(|at| now - at < resend_after) {
                continue;
            }
            if !self.hub.send(agent_id, ServerMessage::Command(pending.command.clone())) {
                break;
            }
            if pending.attempts > 0 {
                metrics::counter!("agent_command_retries_total").increment(1);
            }
            self.store.mark_command_sent(pending.id, now).await?;
        }
        Ok(())
    }

    /// Timers: start timeout, idle timeout, maximum lifetime.
    pub async fn run_timers(&self, active: &[Session], now: DateTime<Utc>) {
        let settings = &self.config.sessions;
        for session in active {
            let since = |at: Option<DateTime<Utc>>| at.map(|at| now - at);
            let (event, detail) = match session.state {
                SessionState::Scheduled | SessionState::Starting
                    if now - session.updated_at > settings.start_timeout =>
                {
                    let reason = format!("did not start within {} s", settings.start_timeout.num_seconds());
                    (Event::Fail, Detail::reason(reason))
                }
                SessionState::Running
                    if settings
                        .max_lifetime
                        .is_some_and(|max| since(session.started_at).is_some_and(|age| age > max)) =>
                {
                    (Event::Stop, Detail::reason("maximum lifetime reached"))
                }
                // Quiet since the last proxied byte or since it (re)entered running, whichever is later
                // (a woken session's last activity predates its hibernation).
                SessionState::Running
                    if settings.idle_timeout.is_some_and(|idle| {
                        let quiet_since =
                            session.last_activity_at.map_or(session.updated_at, |at| at.max(session.updated_at));
                        since(Some(quiet_since)).is_some_and(|quiet| quiet > idle)
                    }) =>
                {
                    (Event::Hibernate, Detail::reason("idle"))
                }
                _ => continue,
            };
            if let Err(err) = self.advance(session, event, detail, &Cause::system()).await {
                tracing::debug!(session = %session.id, error = err.message, "timer transition skipped");
            }
        }
    }
}

/// Time spent in the state a session leaves, and for a first start the whole way from the request.
fn record_timing(before: &Session, after: &Session, now: DateTime<Utc>) {
    let seconds = |since: DateTime<Utc>| (now - since).num_microseconds().unwrap_or(0) as f64 / 1e6;
    metrics::histogram!("session_phase_duration_seconds", "phase" => before.state.as_str())
        .record(seconds(before.updated_at));
    if after.state == SessionState::Running && before.started_at.is_none() {
        metrics::histogram!("session_start_duration_seconds").record(seconds(before.created_at));
    }
}

/// Sessions by state, for the `sessions` gauge.
pub fn count_by_state(sessions: &[Session]) -> HashMap<SessionState, usize> {
    let mut counts: HashMap<SessionState, usize> = SessionState::ALL.iter().map(|s| (*s, 0)).collect();
    for session in sessions {
        *counts.entry(session.state).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    fn running(endpoint: &str) -> ActualState {
        ActualState::Running { endpoint: endpoint.into() }
    }

    #[test]
    fn starting_reports_carry_their_phase_and_progress() {
        let report = ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(30) };
        let (event, detail) = event_for_report(Scheduled, &report).unwrap();
        assert_eq!(event, Event::AgentStarting);
        assert_eq!((detail.phase, detail.progress), (Some(SessionPhase::Pulling), Some(30)));
        assert!(event_for_report(Running, &report).is_none(), "a stale starting report is ignored");
    }

    #[test]
    fn running_reports_set_the_endpoint_once() {
        let (event, detail) = event_for_report(Starting, &running("http://10.0.0.2:8080")).unwrap();
        assert_eq!((event, detail.endpoint.as_deref()), (Event::AgentRunning, Some("http://10.0.0.2:8080")));
        assert!(event_for_report(Running, &running("x")).is_none());
        assert!(event_for_report(Stopping, &running("x")).is_none());
    }

    #[test]
    fn a_container_that_vanishes_or_stops_by_itself_fails_the_session() {
        for state in [Running, Hibernated] {
            let (event, detail) = event_for_report(state, &ActualState::Stopped).unwrap();
            assert_eq!(event, Event::Fail);
            assert!(detail.reason.is_some());
        }
        assert_eq!(event_for_report(Running, &ActualState::Hibernated).unwrap().0, Event::Fail);
        assert_eq!(event_for_report(Stopping, &ActualState::Stopped).unwrap().0, Event::AgentStopped);
        assert_eq!(event_for_report(Hibernating, &ActualState::Hibernated).unwrap().0, Event::AgentHibernated);
    }

    #[test]
    fn failures_apply_to_active_sessions_only_and_keep_the_reason() {
        let failed = ActualState::Failed { reason: "exit code 137".into() };
        let (event, detail) = event_for_report(Running, &failed).unwrap();
        assert_eq!((event, detail.reason.as_deref()), (Event::Fail, Some("exit code 137")));
        assert!(event_for_report(Stopped, &failed).is_none());
        assert!(event_for_report(Failed, &failed).is_none());
    }

    #[test]
    fn every_mapped_report_is_a_valid_transition() {
        let reports = [
            ActualState::Starting { phase: SessionPhase::Creating, progress: None },
            running("http://x"),
            ActualState::Hibernated,
            ActualState::Stopped,
            ActualState::Failed { reason: "r".into() },
        ];
        for state in SessionState::ALL {
            for report in &reports {
                if let Some((event, _)) = event_for_report(state, report) {
                    assert!(lifecycle::next(state, &event).is_ok(), "{state} + {report:?} maps to {event:?}");
                }
            }
        }
    }
}

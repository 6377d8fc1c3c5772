//! Drives sessions: scheduling, transitions with their effects (durable agent commands), agent
//! reports, reconciliation and timers. Decisions are made by `lifecycle` and
//! `scheduler::choose`; this module gathers their inputs and carries out their outputs.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use streamspace_proto::SessionState;
use streamspace_proto::hub::{ActualState, Command, CommandKind, InventoryItem, ServerMessage, SessionSpec};
use streamspace_store::{Agent, Scope, Session};
use uuid::Uuid;

use crate::app::App;
use crate::audit::{Actor, Outcome, Record as AuditRecord};
use crate::bus::Change;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::hub::trust;
use crate::lifecycle::{self, Detail, Effect, Trigger};
use crate::pools;
use crate::replicas::Signal;
use crate::scheduler::{self, Candidate, Requirements};
use crate::views::SessionView;

/// How many times a change someone asked for is applied to the session as read anew, when the
/// agent's reports keep moving it (each report is one transition; a start has a few).
const REQUEST_ATTEMPTS: usize = 3;

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

impl App {
    /// Applies `trigger` to the session: `lifecycle::step` decides, the store records it with a
    /// compare-and-set (with its audit record, in one transaction), then its effects follow (the
    /// agent is told what to do, watchers are told). A session no longer as read is a conflict.
    pub async fn advance(
        &self,
        session: &Session,
        trigger: Trigger,
        detail: Detail,
        cause: &Cause<'_>,
    ) -> ApiResult<Session> {
        self.try_advance(session, trigger, detail, cause).await?.ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::CONFLICT, "invalid_state", "the session changed meanwhile; try again")
        })
    }

    /// [`App::advance`] for what a person asked of the session as they last read it. Should its agent's
    /// reports have moved it meanwhile, the trigger applies to the session as it is now: a stop asked
    /// while the session went from starting to running is not refused, and one the new state does not
    /// allow is refused for that reason.
    pub async fn advance_requested(&self, read: Session, trigger: Trigger, cause: &Cause<'_>) -> ApiResult<Session> {
        let mut session = read;
        for _ in 1..REQUEST_ATTEMPTS {
            if let Some(updated) = self.try_advance(&session, trigger.clone(), Detail::default(), cause).await? {
                return Ok(updated);
            }
            session = self
                .store
                .get_session(Scope::Platform, session.id)
                .await?
                .ok_or_else(|| ApiError::not_found("session"))?;
        }
        self.advance(&session, trigger, Detail::default(), cause).await
    }

    /// [`App::advance`], with `None` when the compare-and-set found the session in another state.
    async fn try_advance(
        &self,
        session: &Session,
        trigger: Trigger,
        detail: Detail,
        cause: &Cause<'_>,
    ) -> ApiResult<Option<Session>> {
        let now = self.clock.now();
        let step = lifecycle::step(session, &trigger, &detail, now)
            .map_err(|err| ApiError::new(axum::http::StatusCode::CONFLICT, "invalid_state", err.to_string()))?;
        let audit = step.effects.iter().find_map(|effect| match effect {
            Effect::Record { from, to, reason } => Some(transition_record(session, *from, *to, reason.as_deref())),
            _ => None,
        });
        let updated = match audit {
            // An audit chain that does not hold fails the change as an internal error (see `App::audit`).
            Some(record) => {
                let entry = self.audit_entry(cause.meta, cause.actor, record);
                let stored = self.store.update_session_audited(session.id, step.update, &self.audit_key, entry);
                stored.await.map_err(ApiError::internal)?
            }
            None => self.store.update_session(session.id, step.update).await?,
        };
        let Some(updated) = updated else { return Ok(None) };
        for effect in step.effects {
            self.carry_out(session, &updated, effect, cause, now).await?;
        }
        Ok(Some(updated))
    }

    /// One effect of the transition from `before` to `after`, decided at `now`.
    async fn carry_out(
        &self,
        before: &Session,
        after: &Session,
        effect: Effect,
        cause: &Cause<'_>,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        match effect {
            Effect::Command(kind) => {
                // The span at work (a request's, or an agent report's) when traces are exported.
                let traceparent = streamspace_trace::current_traceparent().or_else(|| cause.meta.traceparent());
                self.command(after, kind, traceparent).await?
            }
            Effect::ProvisionStreamer { endpoint } => {
                tokio::spawn(crate::proxy::streamer::provision(
                    self.http.clone(),
                    endpoint,
                    self.master_token(after.id),
                    crate::proxy::streamer::token_table(|role| self.streamer_token(after.id, role)),
                ));
            }
            // Audited with the change itself (see `advance`).
            Effect::Record { to, .. } => record_timing(before, to, now),
            Effect::Publish => self.publish_session(after).await,
        }
        Ok(())
    }

    /// Forgets cached routes and tells watchers, on every replica.
    pub async fn publish_session(&self, session: &Session) {
        self.publish_session_here(session).await;
        self.tell_replicas(Signal::Session(session.id)).await;
    }

    /// Forgets this replica's cached route and tells its watchers.
    pub async fn publish_session_here(&self, session: &Session) {
        self.session_cache.invalidate(session.id);
        match SessionView::load(self, session.clone()).await {
            Ok(view) => self.bus.publish(Change::Session(view)),
            Err(err) => tracing::warn!(session = %session.id, error = err.message, "cannot publish a session change"),
        }
    }

    /// Tells the session's agent, if it has one, durably.
    async fn command(&self, session: &Session, kind: CommandKind, traceparent: Option<String>) -> ApiResult<()> {
        let Some(agent_id) = session.agent_id else {
            // Never placed on an agent: nothing runs anywhere.
            return Ok(());
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
            metrics::histogram!("streamspace_session_start_dispatch_seconds").record(seconds);
        }
        Ok(())
    }

    /// Stores a command, then sends it if the agent is connected here, else tells the replica
    /// that holds it. The store copy is what survives reconnects, restarts and lost messages: it
    /// is re-sent until the agent acknowledges it.
    pub async fn dispatch(&self, agent_id: Uuid, command: Command) -> ApiResult<()> {
        let stored = self.store.enqueue_command(agent_id, command, self.clock.now()).await?;
        metrics::counter!("streamspace_agent_commands_total", "kind" => format!("{:?}", stored.command.kind).to_lowercase())
            .increment(1);
        if self.hub.send(agent_id, ServerMessage::Command(stored.command.clone())) {
            self.store.mark_command_sent(stored.id, self.clock.now()).await?;
        } else {
            self.tell_replicas(Signal::Commands(agent_id)).await;
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
        let policy = crate::session_policy::effective(self.store.as_ref(), session.org_id, session.template_id).await?;
        let home = match crate::homes::home_of(self, session, &template).await? {
            Some(home) => Some(crate::homes::volume_for(self, &home, session.agent_id).await?),
            None => None,
        };
        let portable = pools::portable_spec(&template, &org_allow.unwrap_or_default(), &policy);
        Ok(SessionSpec { home, ..self.identify(portable, session.id, session.org_id, session.owner_id) })
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
        let home = match &template {
            Some(template) => crate::homes::home_of(self, session, template).await?,
            None => None,
        };
        let candidates = crate::homes::near_home(home.as_ref(), self.candidates().await?);
        match scheduler::choose(&candidates, &requirements) {
            Ok(agent_id) => {
                let detail = Detail { agent_id: Some(agent_id), ..Detail::default() };
                self.advance(session, Trigger::Scheduled, detail, cause).await
            }
            Err(reason) => {
                self.advance(session, Trigger::Fail, Detail::reason(format!("cannot schedule: {reason}")), cause).await
            }
        }
    }

    /// Every agent with what its sessions and warm pool members reserve.
    pub(crate) async fn candidates(&self) -> ApiResult<Vec<Candidate>> {
        let agents = self.store.list_agents().await?;
        let mut load: HashMap<Uuid, (i64, i64, i64)> = HashMap::new();
        let mut add = |agent_id: Uuid, cpu_millis: i64, memory_mb: i64| {
            let entry = load.entry(agent_id).or_default();
            *entry = (entry.0 + 1, entry.1 + cpu_millis, entry.2 + memory_mb);
        };
        for session in self.store.list_active_sessions().await? {
            if let Some(agent_id) = session.agent_id {
                add(agent_id, session.cpu_millis, session.memory_mb);
            }
        }
        for member in self.store.list_pool_members().await? {
            add(member.agent_id, member.cpu_millis, member.memory_mb);
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

    pub(crate) fn heartbeat_interval(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.heartbeat_interval_secs as i64)
    }

    /// Online: connected to a replica (any) and heard from within three heartbeat intervals. A
    /// replica that dies leaves its agents marked connected, but their heartbeats stop being
    /// recorded, so they go offline within the window (and reconnect to another replica).
    pub fn agent_online(&self, agent: &Agent) -> bool {
        let window = self.heartbeat_interval() * 3;
        agent.connected_replica.is_some() && agent.last_heartbeat_at.is_some_and(|at| self.clock.now() - at <= window)
    }

    /// Applies one report from an agent about one session.
    pub async fn on_report(&self, agent_id: Uuid, session_id: Uuid, actual: &ActualState) -> ApiResult<()> {
        let session = self.store.get_session(Scope::Platform, session_id).await?;
        let known = session.is_some();
        let Some(session) = session.filter(|s| s.agent_id == Some(agent_id)) else {
            if !known && self.on_pool_report(agent_id, session_id, actual).await? {
                return Ok(());
            }
            return self.remove_unknown(agent_id, session_id, actual).await;
        };
        if session.state.is_terminal() && !matches!(actual, ActualState::Stopped) {
            // The store has ended it, the agent still holds something: clean up.
            return self.remove_unknown(agent_id, session_id, actual).await;
        }
        let Some((trigger, detail)) = lifecycle::trigger_for_report(&session, actual) else {
            return Ok(());
        };
        let Some(endpoint) = detail.endpoint.as_deref() else {
            return self.advance(&session, trigger, detail, &Cause::system()).await.map(drop);
        };
        match self.vet_endpoint(agent_id, session.id, Some(session.org_id), endpoint).await? {
            Ok(checked) => {
                let detail = Detail { endpoint: Some(checked), ..detail };
                self.advance(&session, trigger, detail, &Cause::system()).await.map(drop)
            }
            Err(reason) => {
                self.advance(&session, Trigger::Fail, Detail::reason(reason), &Cause::system()).await?;
                // What runs there cannot be reached: the agent removes it.
                self.remove_unknown(agent_id, session_id, actual).await
            }
        }
    }

    /// The endpoint in the form the proxy may dial (see `hub::trust`), or why it is refused; a
    /// refusal is logged and audited.
    pub(crate) async fn vet_endpoint(
        &self,
        agent_id: Uuid,
        session_id: Uuid,
        org_id: Option<Uuid>,
        endpoint: &str,
    ) -> ApiResult<Result<String, String>> {
        let agent = self.store.get_agent(agent_id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
        let (host, listeners) = (self.host_addresses(), self.listeners());
        let allowed = trust::parse_cidrs(&agent.endpoint_cidrs);
        match (trust::EndpointPolicy { host: &host, listeners: &listeners, allowed: &allowed }).check(endpoint) {
            Ok(address) => Ok(Ok(format!("http://{address}"))),
            Err(why) => {
                let endpoint = trust::for_the_record(endpoint);
                tracing::warn!(agent = %agent.name, session = %session_id, %endpoint, reason = %why, "refused an agent's session endpoint");
                metrics::counter!("streamspace_agent_endpoints_refused_total").increment(1);
                let audit = AuditRecord::new("agent.endpoint_refused", format!("agent:{agent_id}"))
                    .org(org_id)
                    .outcome(Outcome::Failure)
                    .details(json!({"session": session_id, "endpoint": endpoint, "reason": why}));
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

    /// Brings the store and an agent's inventory into agreement (on hello and every heartbeat). The
    /// inventory speaks only for sessions that have not changed lately (`lifecycle::inventory_speaks_for`).
    pub async fn reconcile(&self, agent_id: Uuid, inventory: &[InventoryItem]) -> ApiResult<()> {
        let now = self.clock.now();
        let placed: HashMap<Uuid, Session> =
            self.store.list_agent_sessions(agent_id).await?.into_iter().map(|session| (session.id, session)).collect();
        let speaks_for =
            |session: &Session| lifecycle::inventory_speaks_for(session.updated_at, self.heartbeat_interval(), now);
        for item in inventory {
            if placed.get(&item.session_id).is_none_or(speaks_for) {
                self.on_report(agent_id, item.session_id, &item.state).await?;
            }
        }
        let reported: HashSet<Uuid> = inventory.iter().map(|item| item.session_id).collect();
        let in_flight: HashSet<Uuid> =
            self.store.pending_commands(agent_id).await?.into_iter().map(|c| c.session_id).collect();
        for session in placed.values().filter(|session| speaks_for(session)) {
            if reported.contains(&session.id) || in_flight.contains(&session.id) {
                continue;
            }
            // The agent has nothing of a session the store places there.
            self.on_report(agent_id, session.id, &ActualState::Stopped).await?;
        }
        self.forget_vanished_members(agent_id, inventory).await
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
                metrics::counter!("streamspace_agent_command_retries_total").increment(1);
            }
            self.store.mark_command_sent(pending.id, now).await?;
        }
        Ok(())
    }

    /// Timers: start timeout, idle timeout, maximum lifetime.
    pub async fn run_timers(&self, active: &[Session], now: DateTime<Utc>) {
        for session in active {
            let Some((trigger, detail)) = lifecycle::timer_trigger(session, &self.config.sessions, now) else {
                continue;
            };
            if let Err(err) = self.advance(session, trigger, detail, &Cause::system()).await {
                tracing::debug!(session = %session.id, error = err.message, "timer transition skipped");
            }
        }
    }
}

/// Time spent in the state a session leaves, and for a first start the whole way from the request.
/// The audit record of a session's transition.
fn transition_record(session: &Session, from: SessionState, to: SessionState, reason: Option<&str>) -> AuditRecord {
    let outcome = if to == SessionState::Failed { Outcome::Failure } else { Outcome::Success };
    AuditRecord::new("session.transition", format!("session:{}", session.id))
        .org(session.org_id)
        .outcome(outcome)
        .details(json!({"from": from, "to": to, "reason": reason}))
}

fn record_timing(before: &Session, to: SessionState, now: DateTime<Utc>) {
    let seconds = |since: DateTime<Utc>| (now - since).num_microseconds().unwrap_or(0) as f64 / 1e6;
    metrics::histogram!("streamspace_session_phase_duration_seconds", "phase" => before.state.as_str())
        .record(seconds(before.updated_at));
    let first_start = before.started_at.is_none();
    if to == SessionState::Running && first_start {
        metrics::histogram!("streamspace_session_start_duration_seconds").record(seconds(before.created_at));
        metrics::counter!("streamspace_session_starts_total", "outcome" => "running").increment(1);
    }
    if to == SessionState::Failed && first_start {
        metrics::counter!("streamspace_session_starts_total", "outcome" => "failed").increment(1);
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

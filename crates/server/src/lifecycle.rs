//! The session state machine: the one place where session states change. The API, the agent
//! hub and the timers turn what happened into a `Trigger`; `step` decides, without any I/O, the
//! new state, what the store records and what must follow; `App::advance` carries that out.

use chrono::{DateTime, Utc};
use streamspace_proto::SessionPhase;
use streamspace_proto::SessionState::{self, *};
use streamspace_proto::hub::{ActualState, CommandKind};
use streamspace_store::{Session, SessionUpdate};

use crate::config::SessionTimers;

/// What happened to a session, or what someone asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The scheduler placed the session on an agent.
    Scheduled,
    /// The agent is preparing the session (pulling the image, creating the container).
    AgentStarting,
    /// The streamer answers its health check.
    AgentRunning,
    /// A person asked, or the idle timeout fired.
    Hibernate,
    AgentHibernated,
    Wake,
    /// A person asked, or the maximum lifetime passed.
    Stop,
    AgentStopped,
    /// The agent reported a failure, the start timed out, or the session's agent was lost.
    Fail,
}

impl Trigger {
    pub const ALL: [Trigger; 9] = [
        Trigger::Scheduled,
        Trigger::AgentStarting,
        Trigger::AgentRunning,
        Trigger::Hibernate,
        Trigger::AgentHibernated,
        Trigger::Wake,
        Trigger::Stop,
        Trigger::AgentStopped,
        Trigger::Fail,
    ];
}

/// What a transition sets besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    pub agent_id: Option<uuid::Uuid>,
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

/// What must follow a transition once the store has accepted it, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A durable command to the session's agent.
    Command(CommandKind),
    /// A (re)started streamer has an empty token table: hand it the session's tokens.
    ProvisionStreamer { endpoint: String },
    /// The state changed: time the state left and audit the change.
    Record { from: SessionState, to: SessionState, reason: Option<String> },
    /// Tell the proxy's cache and the people watching.
    Publish,
}

/// A decided transition: the store write (a compare-and-set on the state it was decided from)
/// and its effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub update: SessionUpdate,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session that is {from} cannot take {trigger:?}")]
pub struct InvalidTransition {
    pub from: SessionState,
    pub trigger: Trigger,
}

/// What `trigger` does to `session` at `now`, or why it cannot apply.
pub fn step(
    session: &Session,
    trigger: &Trigger,
    detail: &Detail,
    now: DateTime<Utc>,
) -> Result<Step, InvalidTransition> {
    let transition = next(session.state, trigger)?;
    let update = update(session, transition.to, detail, now);
    let mut effects: Vec<Effect> = transition.command.map(Effect::Command).into_iter().collect();
    if transition.to == Running
        && session.state != Running
        && let Some(Some(endpoint)) = &update.endpoint
    {
        effects.push(Effect::ProvisionStreamer { endpoint: endpoint.clone() });
    }
    if transition.to != session.state {
        effects.push(Effect::Record { from: session.state, to: transition.to, reason: detail.reason.clone() });
    }
    effects.push(Effect::Publish);
    Ok(Step { update, effects })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transition {
    to: SessionState,
    command: Option<CommandKind>,
}

const fn to(state: SessionState) -> Transition {
    Transition { to: state, command: None }
}

const fn with(state: SessionState, command: CommandKind) -> Transition {
    Transition { to: state, command: Some(command) }
}

/// The next state of a session in `from` that takes `trigger`, and what its agent must be told.
/// Reports from agents that repeat the current state are accepted as no-ops, since agents report
/// idempotently.
fn next(from: SessionState, trigger: &Trigger) -> Result<Transition, InvalidTransition> {
    let transition = match (from, trigger) {
        (Pending, Trigger::Scheduled) => with(Scheduled, CommandKind::Start),
        (Scheduled | Starting, Trigger::AgentStarting) => to(Starting),
        (Scheduled | Starting | Running, Trigger::AgentRunning) => to(Running),
        (Running, Trigger::Hibernate) => with(Hibernating, CommandKind::Hibernate),
        (Hibernating | Hibernated, Trigger::AgentHibernated) => to(Hibernated),
        (Hibernated, Trigger::Wake) => with(Starting, CommandKind::Wake),
        (Pending | Stopped, Trigger::Stop) => to(Stopped),
        (Scheduled | Starting | Running | Hibernating | Hibernated, Trigger::Stop) => with(Stopping, CommandKind::Stop),
        (Stopping, Trigger::Stop) => to(Stopping),
        (Failed, Trigger::Stop) => with(Stopped, CommandKind::Remove),
        (Stopping | Stopped, Trigger::AgentStopped) => to(Stopped),
        (state, Trigger::Fail) if !state.is_terminal() => to(Failed),
        _ => return Err(InvalidTransition { from, trigger: trigger.clone() }),
    };
    Ok(transition)
}

/// The store write for a session entering `to` at `now`: start progress while it starts, the
/// endpoint while it runs, a failure's reason, when it first ran and when it ended.
fn update(session: &Session, to: SessionState, detail: &Detail, now: DateTime<Utc>) -> SessionUpdate {
    let mut update = SessionUpdate { at: Some(now), ..SessionUpdate::transition(session.state, to) };
    if let Some(agent_id) = detail.agent_id {
        update.agent_id = Some(Some(agent_id));
    }
    match to {
        Starting | Scheduled => {
            update.phase = Some(Some(detail.phase.unwrap_or(SessionPhase::Scheduling).as_str().to_owned()));
            update.progress = Some(detail.progress);
        }
        Running => {
            update.endpoint = Some(detail.endpoint.clone().or(session.endpoint.clone()));
            update.phase = Some(None);
            update.progress = Some(None);
            // The first start: lifetimes and start latency count from it, not from a wake.
            if session.started_at.is_none() {
                update.started_at = Some(Some(now));
            }
        }
        Failed => update.failure_reason = Some(detail.reason.clone()),
        _ => {}
    }
    if matches!(to, Hibernated | Stopped | Failed) {
        update.endpoint = Some(None);
        update.phase = Some(None);
        update.progress = Some(None);
    }
    if to.is_terminal() && !session.state.is_terminal() {
        update.stopped_at = Some(Some(now));
    }
    update
}

/// The trigger an agent's report of `actual` stands for, given the stored session; `None` when
/// the report changes nothing or cannot be applied (a stale report).
pub fn trigger_for_report(session: &Session, actual: &ActualState) -> Option<(Trigger, Detail)> {
    let current = session.state;
    let detail = Detail::default();
    match actual {
        ActualState::Starting { phase, progress } => {
            let repeated = current == Starting
                && session.phase.as_deref() == Some(phase.as_str())
                && session.progress == *progress;
            (matches!(current, Scheduled | Starting) && !repeated)
                .then_some((Trigger::AgentStarting, Detail { phase: Some(*phase), progress: *progress, ..detail }))
        }
        ActualState::Running { endpoint } => matches!(current, Scheduled | Starting)
            .then(|| (Trigger::AgentRunning, Detail { endpoint: Some(endpoint.clone()), ..detail })),
        ActualState::Hibernated => match current {
            Hibernating => Some((Trigger::AgentHibernated, detail)),
            Running => Some((Trigger::Fail, Detail::reason("the application's container stopped unexpectedly"))),
            _ => None,
        },
        ActualState::Stopped => match current {
            Stopping => Some((Trigger::AgentStopped, detail)),
            Running | Hibernating | Hibernated => {
                Some((Trigger::Fail, Detail::reason("the session's container is gone")))
            }
            _ => None,
        },
        ActualState::Failed { reason } => {
            (!current.is_terminal()).then(|| (Trigger::Fail, Detail::reason(reason.clone())))
        }
    }
}

/// Whether an agent's inventory tells the truth about something that last changed at `last_change`,
/// by listing it (in some state) or by leaving it out (gone). The agent lists its containers before
/// the heartbeat goes out, and a start it finishes meanwhile is reported first, so an inventory may
/// predate a change the control plane has already seen (a container listed as created but not yet
/// running, or not listed at all); it counts only for what has not changed within one heartbeat
/// interval. A crash is not waited for: the runtime's own event reports it at once.
pub fn inventory_speaks_for(
    last_change: DateTime<Utc>,
    heartbeat_interval: chrono::Duration,
    now: DateTime<Utc>,
) -> bool {
    now - last_change > heartbeat_interval
}

/// The timer that has fired for `session` at `now`, if any: start timeout, maximum lifetime,
/// idle timeout, hibernated expiry.
pub fn timer_trigger(session: &Session, timers: &SessionTimers, now: DateTime<Utc>) -> Option<(Trigger, Detail)> {
    let since = |at: Option<DateTime<Utc>>| at.map(|at| now - at);
    match session.state {
        Scheduled | Starting if now - session.updated_at > timers.start_timeout => {
            let reason = format!("did not start within {} s", timers.start_timeout.num_seconds());
            Some((Trigger::Fail, Detail::reason(reason)))
        }
        Running if timers.max_lifetime.is_some_and(|max| since(session.started_at).is_some_and(|age| age > max)) => {
            Some((Trigger::Stop, Detail::reason("maximum lifetime reached")))
        }
        // Quiet since the last proxied byte or since it (re)entered running, whichever is later
        // (a woken session's last activity predates its hibernation).
        Running
            if timers.idle_timeout.is_some_and(|idle| {
                let quiet_since = session.last_activity_at.map_or(session.updated_at, |at| at.max(session.updated_at));
                since(Some(quiet_since)).is_some_and(|quiet| quiet > idle)
            }) =>
        {
            Some((Trigger::Hibernate, Detail::reason("idle")))
        }
        // A hibernated session changes nothing until it is woken, so its last change is when it
        // went to rest.
        Hibernated if timers.hibernated_expiry.is_some_and(|expiry| now - session.updated_at > expiry) => {
            Some((Trigger::Stop, Detail::reason("hibernated for too long")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;

    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    /// A session in `state`, placed on an agent, last changed at minute 0.
    fn session(state: SessionState) -> Session {
        Session {
            id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            owner_id: Uuid::from_u128(3),
            template_id: Uuid::from_u128(4),
            state,
            agent_id: Some(Uuid::from_u128(5)),
            endpoint: None,
            phase: None,
            progress: None,
            failure_reason: None,
            cpu_millis: 1000,
            memory_mb: 1024,
            created_at: at(0),
            updated_at: at(0),
            started_at: None,
            stopped_at: None,
            last_activity_at: None,
        }
    }

    const ENDPOINT: &str = "http://10.0.0.2:8080";

    fn command(kind: CommandKind) -> Effect {
        Effect::Command(kind)
    }

    fn record(from: SessionState, to: SessionState) -> Effect {
        Effect::Record { from, to, reason: None }
    }

    fn provision() -> Effect {
        Effect::ProvisionStreamer { endpoint: ENDPOINT.to_owned() }
    }

    /// Every (state, trigger) pair that applies, with the state it leads to and its effects in
    /// order; pairs not listed must be refused.
    fn expected(from: SessionState, trigger: &Trigger) -> Option<(SessionState, Vec<Effect>)> {
        use CommandKind as C;
        use Effect::Publish;
        use Trigger as T;
        let table: Vec<(SessionState, T, SessionState, Vec<Effect>)> = vec![
            (Pending, T::Scheduled, Scheduled, vec![command(C::Start), record(Pending, Scheduled), Publish]),
            (Pending, T::Stop, Stopped, vec![record(Pending, Stopped), Publish]),
            (Pending, T::Fail, Failed, vec![record(Pending, Failed), Publish]),
            (Scheduled, T::AgentStarting, Starting, vec![record(Scheduled, Starting), Publish]),
            (Scheduled, T::AgentRunning, Running, vec![provision(), record(Scheduled, Running), Publish]),
            (Scheduled, T::Stop, Stopping, vec![command(C::Stop), record(Scheduled, Stopping), Publish]),
            (Scheduled, T::Fail, Failed, vec![record(Scheduled, Failed), Publish]),
            (Starting, T::AgentStarting, Starting, vec![Publish]),
            (Starting, T::AgentRunning, Running, vec![provision(), record(Starting, Running), Publish]),
            (Starting, T::Stop, Stopping, vec![command(C::Stop), record(Starting, Stopping), Publish]),
            (Starting, T::Fail, Failed, vec![record(Starting, Failed), Publish]),
            (Running, T::AgentRunning, Running, vec![Publish]),
            (Running, T::Hibernate, Hibernating, vec![command(C::Hibernate), record(Running, Hibernating), Publish]),
            (Running, T::Stop, Stopping, vec![command(C::Stop), record(Running, Stopping), Publish]),
            (Running, T::Fail, Failed, vec![record(Running, Failed), Publish]),
            (Hibernating, T::AgentHibernated, Hibernated, vec![record(Hibernating, Hibernated), Publish]),
            (Hibernating, T::Stop, Stopping, vec![command(C::Stop), record(Hibernating, Stopping), Publish]),
            (Hibernating, T::Fail, Failed, vec![record(Hibernating, Failed), Publish]),
            (Hibernated, T::AgentHibernated, Hibernated, vec![Publish]),
            (Hibernated, T::Wake, Starting, vec![command(C::Wake), record(Hibernated, Starting), Publish]),
            (Hibernated, T::Stop, Stopping, vec![command(C::Stop), record(Hibernated, Stopping), Publish]),
            (Hibernated, T::Fail, Failed, vec![record(Hibernated, Failed), Publish]),
            (Stopping, T::Stop, Stopping, vec![Publish]),
            (Stopping, T::AgentStopped, Stopped, vec![record(Stopping, Stopped), Publish]),
            (Stopping, T::Fail, Failed, vec![record(Stopping, Failed), Publish]),
            (Stopped, T::Stop, Stopped, vec![Publish]),
            (Stopped, T::AgentStopped, Stopped, vec![Publish]),
            (Failed, T::Stop, Stopped, vec![command(C::Remove), record(Failed, Stopped), Publish]),
        ];
        table.into_iter().find(|(s, t, _, _)| *s == from && t == trigger).map(|(_, _, to, effects)| (to, effects))
    }

    #[test]
    fn every_state_and_trigger_pair_steps_as_the_table_says() {
        let detail = Detail { endpoint: Some(ENDPOINT.to_owned()), ..Detail::default() };
        for from in SessionState::ALL {
            for trigger in &Trigger::ALL {
                let got = step(&session(from), trigger, &detail, at(1));
                match expected(from, trigger) {
                    Some((to, effects)) => {
                        let got = got.unwrap_or_else(|err| panic!("{from} + {trigger:?}: {err}"));
                        assert_eq!((got.update.expected, got.update.state), (from, to), "{from} + {trigger:?}");
                        assert_eq!(got.effects, effects, "{from} + {trigger:?}");
                    }
                    None => assert_eq!(
                        got,
                        Err(InvalidTransition { from, trigger: trigger.clone() }),
                        "{from} + {trigger:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn any_active_session_can_fail_and_terminal_ones_only_stop() {
        for from in SessionState::ALL {
            if from.is_terminal() {
                assert!(next(from, &Trigger::Fail).is_err());
                assert!(
                    Trigger::ALL
                        .iter()
                        .filter(|t| next(from, t).is_ok())
                        .all(|t| matches!(t, Trigger::Stop | Trigger::AgentStopped))
                );
            } else {
                assert_eq!(next(from, &Trigger::Fail).map(|t| t.to), Ok(Failed));
            }
        }
    }

    #[test]
    fn a_stop_always_ends_in_stopped_once_the_agent_confirms() {
        for from in SessionState::ALL {
            let Ok(stop) = next(from, &Trigger::Stop) else { continue };
            let end = if stop.to == Stopping { next(Stopping, &Trigger::AgentStopped).unwrap().to } else { stop.to };
            assert_eq!(end, Stopped, "from {from}");
        }
    }

    /// The store write `trigger` makes from `from` with `detail`, at minute 1.
    fn write(from: Session, trigger: Trigger, detail: Detail) -> SessionUpdate {
        step(&from, &trigger, &detail, at(1)).unwrap().update
    }

    #[test]
    fn scheduling_records_the_agent_and_a_first_phase() {
        let agent = Uuid::from_u128(7);
        let update = write(session(Pending), Trigger::Scheduled, Detail { agent_id: Some(agent), ..Detail::default() });
        assert_eq!(update.at, Some(at(1)), "the timers count from the control plane's time of the change");
        assert_eq!(update.agent_id, Some(Some(agent)));
        assert_eq!((update.phase, update.progress), (Some(Some("scheduling".into())), Some(None)));
        assert_eq!((update.endpoint, update.started_at, update.stopped_at), (None, None, None));
    }

    #[test]
    fn starting_reports_set_phase_and_progress() {
        let detail = Detail { phase: Some(SessionPhase::Pulling), progress: Some(40), ..Detail::default() };
        let update = write(session(Scheduled), Trigger::AgentStarting, detail);
        assert_eq!((update.phase, update.progress), (Some(Some("pulling".into())), Some(Some(40))));
        assert_eq!(update.agent_id, None, "the placement stays");
    }

    #[test]
    fn the_first_run_sets_the_endpoint_and_the_start_time_and_a_wake_keeps_the_start_time() {
        let detail = Detail { endpoint: Some(ENDPOINT.into()), ..Detail::default() };
        let mut starting = session(Starting);
        starting.phase = Some("creating".into());
        let first = write(starting.clone(), Trigger::AgentRunning, detail.clone());
        assert_eq!(first.endpoint, Some(Some(ENDPOINT.into())));
        assert_eq!((first.phase, first.progress), (Some(None), Some(None)));
        assert_eq!(first.started_at, Some(Some(at(1))));

        starting.started_at = Some(at(0));
        assert_eq!(write(starting, Trigger::AgentRunning, detail).started_at, None);
    }

    #[test]
    fn a_repeated_running_report_without_an_endpoint_keeps_the_stored_one() {
        let mut running = session(Running);
        running.endpoint = Some(ENDPOINT.into());
        running.started_at = Some(at(0));
        let step = step(&running, &Trigger::AgentRunning, &Detail::default(), at(1)).unwrap();
        assert_eq!(step.update.endpoint, Some(Some(ENDPOINT.into())));
        assert_eq!(step.effects, [Effect::Publish], "no new provisioning of a streamer already running");
    }

    #[test]
    fn leaving_for_a_resting_state_clears_the_endpoint_and_a_failure_keeps_its_reason() {
        for (from, trigger, to) in [
            (Hibernating, Trigger::AgentHibernated, Hibernated),
            (Stopping, Trigger::AgentStopped, Stopped),
            (Running, Trigger::Fail, Failed),
        ] {
            let mut from = session(from);
            from.endpoint = Some(ENDPOINT.into());
            let update = write(from, trigger, Detail::reason("exit code 137"));
            assert_eq!(update.state, to);
            assert_eq!((update.endpoint, update.phase, update.progress), (Some(None), Some(None), Some(None)));
            let reason = (to == Failed).then(|| Some("exit code 137".to_owned()));
            assert_eq!(update.failure_reason, reason, "{to}");
            let ended = to.is_terminal().then_some(Some(at(1)));
            assert_eq!(update.stopped_at, ended, "{to}");
        }
    }

    #[test]
    fn removing_a_failed_session_keeps_when_it_ended() {
        let update = write(session(Failed), Trigger::Stop, Detail::default());
        assert_eq!((update.state, update.stopped_at), (Stopped, None));
    }

    #[test]
    fn a_transition_is_recorded_with_its_reason() {
        let step = step(&session(Running), &Trigger::Hibernate, &Detail::reason("idle"), at(1)).unwrap();
        let record = Effect::Record { from: Running, to: Hibernating, reason: Some("idle".into()) };
        assert_eq!(step.effects, [Effect::Command(CommandKind::Hibernate), record, Effect::Publish]);
    }

    fn report(state: SessionState, actual: &ActualState) -> Option<(Trigger, Detail)> {
        trigger_for_report(&session(state), actual)
    }

    fn running(endpoint: &str) -> ActualState {
        ActualState::Running { endpoint: endpoint.into() }
    }

    #[test]
    fn starting_reports_carry_their_phase_and_progress_and_a_repeat_changes_nothing() {
        let pulling = ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(30) };
        let (trigger, detail) = report(Scheduled, &pulling).unwrap();
        assert_eq!(trigger, Trigger::AgentStarting);
        assert_eq!((detail.phase, detail.progress), (Some(SessionPhase::Pulling), Some(30)));
        assert!(report(Running, &pulling).is_none(), "a stale starting report is ignored");

        let mut starting = session(Starting);
        (starting.phase, starting.progress) = (Some("pulling".into()), Some(30));
        assert!(trigger_for_report(&starting, &pulling).is_none());
        let further = ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(60) };
        assert_eq!(
            trigger_for_report(&starting, &further).map(|(t, d)| (t, d.progress)),
            Some((Trigger::AgentStarting, Some(60)))
        );
    }

    #[test]
    fn running_reports_set_the_endpoint_once() {
        let (trigger, detail) = report(Starting, &running(ENDPOINT)).unwrap();
        assert_eq!((trigger, detail.endpoint.as_deref()), (Trigger::AgentRunning, Some(ENDPOINT)));
        assert!(report(Running, &running("x")).is_none());
        assert!(report(Stopping, &running("x")).is_none());
    }

    #[test]
    fn a_container_that_vanishes_or_stops_by_itself_fails_the_session() {
        for state in [Running, Hibernated] {
            let (trigger, detail) = report(state, &ActualState::Stopped).unwrap();
            assert_eq!(trigger, Trigger::Fail);
            assert!(detail.reason.is_some());
        }
        assert_eq!(report(Running, &ActualState::Hibernated).unwrap().0, Trigger::Fail);
        assert_eq!(report(Stopping, &ActualState::Stopped).unwrap().0, Trigger::AgentStopped);
        assert_eq!(report(Hibernating, &ActualState::Hibernated).unwrap().0, Trigger::AgentHibernated);
    }

    #[test]
    fn failures_apply_to_active_sessions_only_and_keep_the_reason() {
        let failed = ActualState::Failed { reason: "exit code 137".into() };
        let (trigger, detail) = report(Running, &failed).unwrap();
        assert_eq!((trigger, detail.reason.as_deref()), (Trigger::Fail, Some("exit code 137")));
        assert!(report(Stopped, &failed).is_none());
        assert!(report(Failed, &failed).is_none());
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
            for actual in &reports {
                if let Some((trigger, _)) = report(state, actual) {
                    assert!(next(state, &trigger).is_ok(), "{state} + {actual:?} maps to {trigger:?}");
                }
            }
        }
    }

    fn timers() -> SessionTimers {
        SessionTimers {
            start_timeout: Duration::minutes(5),
            idle_timeout: Some(Duration::minutes(30)),
            max_lifetime: Some(Duration::hours(8)),
            hibernated_expiry: Some(Duration::days(7)),
        }
    }

    /// What the timers do to `session` at minute `now`.
    fn fired(session: &Session, timers: &SessionTimers, now: i64) -> Option<(Trigger, Option<String>)> {
        timer_trigger(session, timers, at(now)).map(|(trigger, detail)| (trigger, detail.reason))
    }

    #[test]
    fn a_start_that_takes_too_long_fails() {
        for state in [Scheduled, Starting] {
            assert_eq!(fired(&session(state), &timers(), 5), None);
            let failed = Some((Trigger::Fail, Some("did not start within 300 s".to_owned())));
            assert_eq!(fired(&session(state), &timers(), 6), failed, "{state}");
        }
    }

    #[test]
    fn a_running_session_hibernates_when_quiet_since_its_last_traffic_or_its_wake() {
        let mut running = session(Running);
        running.started_at = Some(at(0));
        let idle = Some((Trigger::Hibernate, Some("idle".to_owned())));
        assert_eq!(fired(&running, &timers(), 30), None);
        assert_eq!(fired(&running, &timers(), 31), idle);

        running.last_activity_at = Some(at(20));
        assert_eq!(fired(&running, &timers(), 50), None);
        assert_eq!(fired(&running, &timers(), 51), idle);

        // Woken at minute 40: traffic from before the hibernation does not count against it.
        running.updated_at = at(40);
        assert_eq!(fired(&running, &timers(), 70), None);
        assert_eq!(fired(&running, &timers(), 71), idle);

        let never = SessionTimers { idle_timeout: None, ..timers() };
        assert_eq!(fired(&running, &never, 400), None);
    }

    #[test]
    fn a_running_session_past_its_lifetime_stops_even_when_busy() {
        let mut running = session(Running);
        running.started_at = Some(at(0));
        running.last_activity_at = Some(at(480));
        running.updated_at = at(470);
        assert_eq!(fired(&running, &timers(), 480), None);
        assert_eq!(fired(&running, &timers(), 481), Some((Trigger::Stop, Some("maximum lifetime reached".to_owned()))));
        let unlimited = SessionTimers { max_lifetime: None, ..timers() };
        assert_eq!(fired(&running, &unlimited, 481), None);
    }

    #[test]
    fn a_session_hibernated_past_its_expiry_is_stopped() {
        let week = 7 * 24 * 60;
        let hibernated = session(Hibernated);
        assert_eq!(fired(&hibernated, &timers(), week), None);
        let expired = Some((Trigger::Stop, Some("hibernated for too long".to_owned())));
        assert_eq!(fired(&hibernated, &timers(), week + 1), expired);
        let kept = SessionTimers { hibernated_expiry: None, ..timers() };
        assert_eq!(fired(&hibernated, &kept, 10 * week), None);
    }

    #[test]
    fn resting_and_ended_sessions_have_no_timers() {
        let no_expiry = SessionTimers { hibernated_expiry: None, ..timers() };
        for state in [Pending, Hibernating, Hibernated, Stopping, Stopped, Failed] {
            assert_eq!(fired(&session(state), &no_expiry, 100_000), None, "{state}");
        }
    }

    #[test]
    fn an_inventory_speaks_only_for_what_has_not_changed_within_a_heartbeat_interval() {
        let interval = Duration::seconds(10);
        let changed = at(0);
        let cases = [(Duration::zero(), false), (Duration::seconds(10), false), (Duration::seconds(11), true)];
        for (later, speaks) in cases {
            assert_eq!(inventory_speaks_for(changed, interval, changed + later), speaks, "{later}");
        }
    }
}

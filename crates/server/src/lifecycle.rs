//! The session state machine: the one place where session states change. The API, the agent
//! hub and the timers only feed it triggers.

use streamspace_proto::SessionState::{self, *};

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

/// What the agent running the session must be told to do as a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Start,
    Hibernate,
    Wake,
    Stop,
    /// Remove what is left of a session that already ended.
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub to: SessionState,
    pub effect: Option<Effect>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session that is {from} cannot take {trigger:?}")]
pub struct InvalidTransition {
    pub from: SessionState,
    pub trigger: Trigger,
}

const fn to(state: SessionState) -> Transition {
    Transition { to: state, effect: None }
}

const fn with(state: SessionState, effect: Effect) -> Transition {
    Transition { to: state, effect: Some(effect) }
}

/// The next state of a session in `from` that takes `trigger`. Reports from agents that repeat
/// the current state are accepted as no-ops, since agents report idempotently.
pub fn next(from: SessionState, trigger: &Trigger) -> Result<Transition, InvalidTransition> {
    let transition = match (from, trigger) {
        (Pending, Trigger::Scheduled) => with(Scheduled, Effect::Start),
        (Scheduled | Starting, Trigger::AgentStarting) => to(Starting),
        (Scheduled | Starting | Running, Trigger::AgentRunning) => to(Running),
        (Running, Trigger::Hibernate) => with(Hibernating, Effect::Hibernate),
        (Hibernating | Hibernated, Trigger::AgentHibernated) => to(Hibernated),
        (Hibernated, Trigger::Wake) => with(Starting, Effect::Wake),
        (Pending | Stopped, Trigger::Stop) => to(Stopped),
        (Scheduled | Starting | Running | Hibernating | Hibernated, Trigger::Stop) => with(Stopping, Effect::Stop),
        (Stopping, Trigger::Stop) => to(Stopping),
        (Failed, Trigger::Stop) => with(Stopped, Effect::Remove),
        (Stopping | Stopped, Trigger::AgentStopped) => to(Stopped),
        (state, Trigger::Fail) if !state.is_terminal() => to(Failed),
        _ => return Err(InvalidTransition { from, trigger: trigger.clone() }),
    };
    Ok(transition)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, trigger) pair and its expected outcome; pairs not listed must be refused.
    fn expected(from: SessionState, trigger: &Trigger) -> Option<Transition> {
        let table: &[(SessionState, Trigger, Transition)] = &[
            (Pending, Trigger::Scheduled, with(Scheduled, Effect::Start)),
            (Pending, Trigger::Stop, to(Stopped)),
            (Pending, Trigger::Fail, to(Failed)),
            (Scheduled, Trigger::AgentStarting, to(Starting)),
            (Scheduled, Trigger::AgentRunning, to(Running)),
            (Scheduled, Trigger::Stop, with(Stopping, Effect::Stop)),
            (Scheduled, Trigger::Fail, to(Failed)),
            (Starting, Trigger::AgentStarting, to(Starting)),
            (Starting, Trigger::AgentRunning, to(Running)),
            (Starting, Trigger::Stop, with(Stopping, Effect::Stop)),
            (Starting, Trigger::Fail, to(Failed)),
            (Running, Trigger::AgentRunning, to(Running)),
            (Running, Trigger::Hibernate, with(Hibernating, Effect::Hibernate)),
            (Running, Trigger::Stop, with(Stopping, Effect::Stop)),
            (Running, Trigger::Fail, to(Failed)),
            (Hibernating, Trigger::AgentHibernated, to(Hibernated)),
            (Hibernating, Trigger::Stop, with(Stopping, Effect::Stop)),
            (Hibernating, Trigger::Fail, to(Failed)),
            (Hibernated, Trigger::AgentHibernated, to(Hibernated)),
            (Hibernated, Trigger::Wake, with(Starting, Effect::Wake)),
            (Hibernated, Trigger::Stop, with(Stopping, Effect::Stop)),
            (Hibernated, Trigger::Fail, to(Failed)),
            (Stopping, Trigger::Stop, to(Stopping)),
            (Stopping, Trigger::AgentStopped, to(Stopped)),
            (Stopping, Trigger::Fail, to(Failed)),
            (Stopped, Trigger::Stop, to(Stopped)),
            (Stopped, Trigger::AgentStopped, to(Stopped)),
            (Failed, Trigger::Stop, with(Stopped, Effect::Remove)),
        ];
        table.iter().find(|(s, e, _)| *s == from && e == trigger).map(|(_, _, t)| *t)
    }

    #[test]
    fn every_state_and_trigger_pair_behaves_as_the_table_says() {
        for from in SessionState::ALL {
            for trigger in &Trigger::ALL {
                let got = next(from, trigger);
                match expected(from, trigger) {
                    Some(transition) => assert_eq!(got, Ok(transition), "{from} + {trigger:?}"),
                    None => {
                        assert_eq!(
                            got,
                            Err(InvalidTransition { from, trigger: trigger.clone() }),
                            "{from} + {trigger:?}"
                        )
                    }
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
                        .filter(|e| next(from, e).is_ok())
                        .all(|e| matches!(e, Trigger::Stop | Trigger::AgentStopped))
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
}

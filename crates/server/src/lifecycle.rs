//! The session state machine: the one place where session states change. The API, the agent
//! hub and the timers only feed it events.

use streamspace_proto::SessionState::{self, *};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
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

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Scheduled,
        Event::AgentStarting,
        Event::AgentRunning,
        Event::Hibernate,
        Event::AgentHibernated,
        Event::Wake,
        Event::Stop,
        Event::AgentStopped,
        Event::Fail,
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
#[error("a session that is {from} cannot take {event:?}")]
pub struct InvalidTransition {
    pub from: SessionState,
    pub event: Event,
}

const fn to(state: SessionState) -> Transition {
    Transition { to: state, effect: None }
}

const fn with(state: SessionState, effect: Effect) -> Transition {
    Transition { to: state, effect: Some(effect) }
}

/// The next state of a session in `from` that takes `event`. Reports from agents that repeat
/// the current state are accepted as no-ops, since agents report idempotently.
pub fn next(from: SessionState, event: &Event) -> Result<Transition, InvalidTransition> {
    let transition = match (from, event) {
        (Pending, Event::Scheduled) => with(Scheduled, Effect::Start),
        (Scheduled | Starting, Event::AgentStarting) => to(Starting),
        (Scheduled | Starting | Running, Event::AgentRunning) => to(Running),
        (Running, Event::Hibernate) => with(Hibernating, Effect::Hibernate),
        (Hibernating | Hibernated, Event::AgentHibernated) => to(Hibernated),
        (Hibernated, Event::Wake) => with(Starting, Effect::Wake),
        (Pending | Stopped, Event::Stop) => to(Stopped),
        (Scheduled | Starting | Running | Hibernating | Hibernated, Event::Stop) => with(Stopping, Effect::Stop),
        (Stopping, Event::Stop) => to(Stopping),
        (Failed, Event::Stop) => with(Stopped, Effect::Remove),
        (Stopping | Stopped, Event::AgentStopped) => to(Stopped),
        (state, Event::Fail) if !state.is_terminal() => to(Failed),
        _ => return Err(InvalidTransition { from, event: event.clone() }),
    };
    Ok(transition)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, event) pair and its expected outcome; pairs not listed must be refused.
    fn expected(from: SessionState, event: &Event) -> Option<Transition> {
        let table: &[(SessionState, Event, Transition)] = &[
            (Pending, Event::Scheduled, with(Scheduled, Effect::Start)),
            (Pending, Event::Stop, to(Stopped)),
            (Pending, Event::Fail, to(Failed)),
            (Scheduled, Event::AgentStarting, to(Starting)),
            (Scheduled, Event::AgentRunning, to(Running)),
            (Scheduled, Event::Stop, with(Stopping, Effect::Stop)),
            (Scheduled, Event::Fail, to(Failed)),
            (Starting, Event::AgentStarting, to(Starting)),
            (Starting, Event::AgentRunning, to(Running)),
            (Starting, Event::Stop, with(Stopping, Effect::Stop)),
            (Starting, Event::Fail, to(Failed)),
            (Running, Event::AgentRunning, to(Running)),
            (Running, Event::Hibernate, with(Hibernating, Effect::Hibernate)),
            (Running, Event::Stop, with(Stopping, Effect::Stop)),
            (Running, Event::Fail, to(Failed)),
            (Hibernating, Event::AgentHibernated, to(Hibernated)),
            (Hibernating, Event::Stop, with(Stopping, Effect::Stop)),
            (Hibernating, Event::Fail, to(Failed)),
            (Hibernated, Event::AgentHibernated, to(Hibernated)),
            (Hibernated, Event::Wake, with(Starting, Effect::Wake)),
            (Hibernated, Event::Stop, with(Stopping, Effect::Stop)),
            (Hibernated, Event::Fail, to(Failed)),
            (Stopping, Event::Stop, to(Stopping)),
            (Stopping, Event::AgentStopped, to(Stopped)),
            (Stopping, Event::Fail, to(Failed)),
            (Stopped, Event::Stop, to(Stopped)),
            (Stopped, Event::AgentStopped, to(Stopped)),
            (Failed, Event::Stop, with(Stopped, Effect::Remove)),
        ];
        table.iter().find(|(s, e, _)| *s == from && e == event).map(|(_, _, t)| *t)
    }

    #[test]
    fn every_state_and_event_pair_behaves_as_the_table_says() {
        for from in SessionState::ALL {
            for event in &Event::ALL {
                let got = next(from, event);
                match expected(from, event) {
                    Some(transition) => assert_eq!(got, Ok(transition), "{from} + {event:?}"),
                    None => {
                        assert_eq!(got, Err(InvalidTransition { from, event: event.clone() }), "{from} + {event:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn any_active_session_can_fail_and_terminal_ones_only_stop() {
        for from in SessionState::ALL {
            if from.is_terminal() {
                assert!(next(from, &Event::Fail).is_err());
                assert!(
                    Event::ALL
                        .iter()
                        .filter(|e| next(from, e).is_ok())
                        .all(|e| matches!(e, Event::Stop | Event::AgentStopped))
                );
            } else {
                assert_eq!(next(from, &Event::Fail).map(|t| t.to), Ok(Failed));
            }
        }
    }

    #[test]
    fn a_stop_always_ends_in_stopped_once_the_agent_confirms() {
        for from in SessionState::ALL {
            let Ok(stop) = next(from, &Event::Stop) else { continue };
            let end = if stop.to == Stopping { next(Stopping, &Event::AgentStopped).unwrap().to } else { stop.to };
            assert_eq!(end, Stopped, "from {from}");
        }
    }
}

//! Reconnect delays.

use std::time::Duration;

/// The first reconnect waits about this long.
const BASE: Duration = Duration::from_millis(500);
/// No reconnect waits longer than this, so an agent notices a recovered control plane quickly.
const CAP: Duration = Duration::from_secs(30);
/// A rejected token will not become valid by retrying fast; an operator has to act, so retry slowly.
const REJECTED: Duration = Duration::from_secs(60);

/// Exponential backoff with jitter for reconnecting to the control plane.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt; each call doubles the step up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = jittered(step(self.attempt), rand::random());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The delay after the control plane rejected the agent's token.
    pub(crate) fn rejected_delay(&self) -> Duration {
        jittered(REJECTED, rand::random())
    }

    /// Called once a connection is established, so the next outage starts with short delays again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The exponential step for a 0-based attempt number, capped.
fn step(attempt: u32) -> Duration {
    // 2^6 * BASE already exceeds CAP; clamping the exponent keeps the multiplication from overflowing.
    BASE.saturating_mul(2u32.pow(attempt.min(6))).min(CAP)
}

/// "Equal jitter": half the step is fixed, half scaled by `jitter` in [0, 1], so agents that lost the control
/// plane at the same moment spread their reconnects while none retries immediately.
fn jittered(step: Duration, jitter: f64) -> Duration {
    let half = step / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_from_half_a_second_up_to_thirty_seconds() {
        let steps: Vec<u64> = (0..9).map(|attempt| step(attempt).as_millis() as u64).collect();
        assert_eq!(steps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(step(u32::MAX), CAP);
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_and_the_whole_step() {
        let step = Duration::from_secs(8);
        assert_eq!(jittered(step, 0.0), Duration::from_secs(4));
        assert_eq!(jittered(step, 1.0), step);
        assert_eq!(jittered(step, 0.5), Duration::from_secs(6));
        assert_eq!((jittered(step, 7.0), jittered(step, -1.0)), (step, step / 2), "out-of-range jitter is clamped");
    }

    #[test]
    fn reset_starts_over_and_delays_stay_in_range() {
        let mut backoff = Backoff::default();
        for attempt in 0..10 {
            let delay = backoff.next_delay();
            assert!(delay >= step(attempt) / 2 && delay <= step(attempt), "attempt {attempt}: {delay:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= BASE);
        let rejected = backoff.rejected_delay();
        assert!(rejected >= REJECTED / 2 && rejected <= REJECTED);
    }
}

//! The deadline for a request's head (hyper's `header_read_timeout`) on one timer per connection.
//!
//! hyper's HTTP/1 server asks its [`Timer`] for a new sleep each time it starts waiting for a head and
//! drops it once the head is in. With tokio's timer behind it, every request registered an entry in the
//! runtime's timer wheel and removed it again. Here those sleeps share the connection's one timer.
//! Heads come one after another, each deadline later than the last, and nearly all of them long before
//! it: the timer is left where it is until it fires, and only then moved on to the deadline of the
//! head awaited by then, if that one is later. A deadline that passes while a request is being answered
//! wakes the connection once, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// One connection's timer for hyper. It serves one deadline at a time, as hyper's HTTP/1 server
/// needs (the head it waits for).
pub(super) struct HeadDeadline {
    shared: Arc<Mutex<Shared>>,
}

struct Shared {
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The waker the timer wakes: the connection's, the same for every head.
    waker: Option<Waker>,
}

impl HeadDeadline {
    /// A timer first set `timeout` from now; within a tokio runtime.
    pub(super) fn new(timeout: Duration) -> HeadDeadline {
        let timer = Box::pin(tokio::time::sleep(timeout));
        HeadDeadline { shared: Arc::new(Mutex::new(Shared { timer, waker: None })) }
    }
}

impl Timer for HeadDeadline {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeadSleep { shared: self.shared.clone(), deadline: deadline.into() })
    }

    /// tokio's clock, which tests can pause and advance.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// Waiting for one head: done once the connection's timer fires at or after this deadline.
struct HeadSleep {
    shared: Arc<Mutex<Shared>>,
    deadline: tokio::time::Instant,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Shared { timer, waker } = &mut *shared;
        let mut ask = timer.is_elapsed() || !waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker()));
        if timer.deadline() > self.deadline {
            timer.as_mut().reset(self.deadline);
            ask = true;
        }
        if !ask {
            return Poll::Pending;
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => {
                    *waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(()) if timer.deadline() >= self.deadline => return Poll::Ready(()),
                // It fired for an earlier head: on to this one's deadline.
                Poll::Ready(()) => timer.as_mut().reset(self.deadline),
            }
        }
    }
}

impl Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(sleep: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        sleep.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    /// That `sleep` is still waiting `after` less a millisecond from now, and done at `after`.
    async fn ends_after(sleep: &mut Pin<Box<dyn Sleep>>, after: Duration) {
        assert!(poll(sleep).is_pending());
        tokio::time::advance(after - Duration::from_millis(1)).await;
        assert!(poll(sleep).is_pending(), "not before its deadline");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(poll(sleep).is_ready(), "at its deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_not_in_by_its_deadline_times_out_then() {
        let timer = HeadDeadline::new(Duration::from_secs(10));
        ends_after(&mut timer.sleep(Duration::from_secs(3)), Duration::from_secs(3)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn each_head_has_its_own_deadline_on_the_one_timer() {
        let timer = HeadDeadline::new(Duration::from_secs(10));
        let mut first = timer.sleep(Duration::from_secs(3));
        assert!(poll(&mut first).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(first);
        let mut second = timer.sleep(Duration::from_secs(3));
        assert!(poll(&mut second).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(poll(&mut second).is_pending(), "the first head's deadline is not the second's");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(poll(&mut second).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_is_woken_when_the_head_it_awaits_is_late() {
        let timer = HeadDeadline::new(Duration::from_secs(10));
        let start = tokio::time::Instant::now();
        let mut first = timer.sleep(Duration::from_secs(3));
        assert!(poll(&mut first).is_pending());
        drop(first);
        tokio::time::advance(Duration::from_secs(1)).await;
        // The timer first fires at the first head's deadline, then at this one's.
        timer.sleep(Duration::from_secs(3)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passed_while_answering_leaves_the_next_head_its_whole_time() {
        let timer = HeadDeadline::new(Duration::from_secs(10));
        let mut first = timer.sleep(Duration::from_secs(3));
        assert!(poll(&mut first).is_pending());
        drop(first);
        // A long answer: the first deadline passes with no head awaited.
        tokio::time::advance(Duration::from_secs(60)).await;
        ends_after(&mut timer.sleep(Duration::from_secs(3)), Duration::from_secs(3)).await;
    }
}

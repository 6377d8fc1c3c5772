//! One client connection's futures driven together in its task: the served connection and the
//! shutdown signal.
//!
//! Each is polled only when its own waker fired, and a wake that one of them causes in the other while
//! the task runs (the signal asking the connection to finish) is served in the same run of the task
//! rather than by scheduling it again. Polling both on every wake, as a plain select does, polled the
//! shutdown watch with every read and write of the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;

/// A served connection: it ends with a result, and can be asked to end after the request in flight.
pub(super) trait Served: Future<Output = Result<(), Self::Error>> {
    type Error;
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Served for C {
    type Error = <C as GracefulConnection>::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// Rounds of polling in one run of the task before it yields to the others on its worker.
const ROUNDS_PER_RUN: usize = 16;

/// The connection's result once it has ended.
pub(super) struct Together<C: Served> {
    connection: Part<C>,
    shutdown: Part<Pin<Box<dyn Future<Output = ()> + Send>>>,
    served: Option<Result<(), C::Error>>,
    task: Arc<Task>,
}

impl<C: Served> Together<C> {
    /// `connection` is shut down gracefully (it finishes the request in flight) once `shutdown` resolves.
    pub(super) fn new(connection: C, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let task = Arc::new(Task { running: AtomicBool::new(false), waker: AtomicWaker::new() });
        Together {
            connection: Part::new(connection, &task),
            shutdown: Part::new(Box::pin(shutdown), &task),
            served: None,
            task,
        }
    }

    fn woken(&self) -> bool {
        self.connection.woken() || self.shutdown.woken()
    }

    fn poll_parts(&mut self) {
        if self.shutdown.poll().is_some()
            && let Some(connection) = &mut self.connection.future
        {
            connection.as_mut().graceful_shutdown();
            self.connection.wake();
        }
        if let Some(served) = self.connection.poll() {
            self.served = Some(served);
            self.shutdown.future = None;
        }
    }
}

// Every part is boxed; the result is never pinned.
impl<C: Served> Unpin for Together<C> {}

impl<C: Served> Future for Together<C> {
    type Output = Result<(), C::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.task.waker.register(cx.waker());
        this.task.running.store(true, Ordering::SeqCst);
        for _ in 0..ROUNDS_PER_RUN {
            this.poll_parts();
            if !this.woken() {
                break;
            }
        }
        // A part woken after the last look but before `running` was cleared did not wake the task.
        this.task.running.store(false, Ordering::SeqCst);
        // `served` is there once the connection has ended.
        if let Some(served) = this.served.take() {
            return Poll::Ready(served);
        }
        if this.woken() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// What the parts' wakers share: the task's waker, and whether the task is polling them right now.
struct Task {
    running: AtomicBool,
    waker: AtomicWaker,
}

/// One future of the connection's task, with a waker of its own.
struct Part<F> {
    future: Option<Pin<Box<F>>>,
    wake: Arc<PartWake>,
    waker: Waker,
}

struct PartWake {
    woken: AtomicBool,
    task: Arc<Task>,
}

impl Wake for PartWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// Marks the part; the task is woken only if it is not running (it then looks at its parts again).
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.task.running.load(Ordering::SeqCst) {
            self.task.waker.wake();
        }
    }
}

impl<F: Future> Part<F> {
    /// A new part is woken: it has not been polled yet.
    fn new(future: F, task: &Arc<Task>) -> Self {
        let wake = Arc::new(PartWake { woken: AtomicBool::new(true), task: task.clone() });
        Part { future: Some(Box::pin(future)), waker: Waker::from(wake.clone()), wake }
    }

    fn woken(&self) -> bool {
        self.future.is_some() && self.wake.woken.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        self.wake.woken.store(true, Ordering::SeqCst);
    }

    /// Polls the future if its waker fired since it was last polled; its output once it is done.
    fn poll(&mut self) -> Option<F::Output> {
        let future = self.future.as_mut()?;
        if !self.wake.woken.load(Ordering::Relaxed) || !self.wake.woken.swap(false, Ordering::SeqCst) {
            return None;
        }
        let output = match future.as_mut().poll(&mut Context::from_waker(&self.waker)) {
            Poll::Ready(output) => output,
            Poll::Pending => return None,
        };
        self.future = None;
        Some(output)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// A connection stand-in: counts its polls and ends when `end` fires or once shut down.
    struct Connection {
        polls: Polls,
        end: oneshot::Receiver<()>,
        shut_down: bool,
    }

    impl Future for Connection {
        type Output = Result<(), std::io::Error>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.polls.0.0.fetch_add(1, Ordering::SeqCst);
            if self.shut_down || Pin::new(&mut self.end).poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            Poll::Pending
        }
    }

    impl Served for Connection {
        type Error = std::io::Error;

        fn graceful_shutdown(mut self: Pin<&mut Self>) {
            self.shut_down = true;
        }
    }

    /// Counts the times the task is woken.
    #[derive(Default)]
    struct TaskWakes(AtomicUsize);

    impl Wake for TaskWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How often the connection and the shutdown signal were polled.
    #[derive(Clone, Default)]
    struct Polls(Arc<(AtomicUsize, AtomicUsize)>);

    impl Polls {
        fn get(&self) -> (usize, usize) {
            (self.0.0.load(Ordering::SeqCst), self.0.1.load(Ordering::SeqCst))
        }
    }

    struct Stand {
        polls: Polls,
        end_connection: oneshot::Sender<()>,
        shut_down: oneshot::Sender<()>,
        wakes: Arc<TaskWakes>,
        waker: Waker,
    }

    fn together() -> (Together<Connection>, Stand) {
        let (end_connection, end) = oneshot::channel();
        let (shut_down, mut shutdown) = oneshot::channel::<()>();
        let polls = Polls::default();
        let connection = Connection { polls: polls.clone(), end, shut_down: false };
        let counted = polls.clone();
        let shutdown = std::future::poll_fn(move |cx| {
            counted.0.1.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut shutdown).poll(cx).map(|_| ())
        });
        let wakes = Arc::new(TaskWakes::default());
        let waker = Waker::from(wakes.clone());
        let stand = Stand { polls, end_connection, shut_down, wakes, waker };
        (Together::new(connection, shutdown), stand)
    }

    fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn each_part_is_polled_only_when_its_own_waker_fired() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        assert!(poll(&mut together, &waker).is_pending());
        assert_eq!(stand.polls.get(), (1, 1));
        assert!(poll(&mut together, &waker).is_pending(), "a spurious run");
        assert_eq!(stand.polls.get(), (1, 1));
        stand.end_connection.send(()).unwrap();
        assert_eq!(stand.wakes.0.load(Ordering::SeqCst), 1, "the connection's wake wakes the idle task");
        assert!(matches!(poll(&mut together, &waker), Poll::Ready(Ok(()))));
        assert_eq!(stand.polls.get(), (2, 1), "the shutdown signal was not woken");
    }

    #[test]
    fn the_shutdown_signal_asks_the_connection_to_finish_in_the_same_run() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        assert!(poll(&mut together, &waker).is_pending());
        stand.shut_down.send(()).unwrap();
        assert!(matches!(poll(&mut together, &waker), Poll::Ready(Ok(()))));
        assert_eq!(stand.polls.get(), (2, 2));
        assert_eq!(stand.wakes.0.load(Ordering::SeqCst), 1, "without scheduling the task again");
        drop(stand.end_connection);
    }

    /// A part woken from another thread while the task runs, over and over: no wake may be lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wake_from_another_thread_is_lost() {
        const MESSAGES: usize = 20_000;
        let (to_connection, mut messages) = mpsc::unbounded_channel();
        let receive = async move {
            for _ in 0..MESSAGES {
                messages.recv().await.expect("a message");
            }
        };
        let together = Together::new(Echo(Box::pin(receive)), std::future::pending());
        let sender = std::thread::spawn(move || {
            for i in 0..MESSAGES {
                to_connection.send(()).unwrap();
                if i % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), together).await;
        assert!(matches!(ended, Ok(Ok(()))), "every message was received");
        sender.join().unwrap();
    }

    /// A future as a connection that cannot be shut down.
    struct Echo(Pin<Box<dyn Future<Output = ()> + Send>>);

    impl Future for Echo {
        type Output = Result<(), std::io::Error>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.0.as_mut().poll(cx).map(Ok)
        }
    }

    impl Served for Echo {
        type Error = std::io::Error;

        fn graceful_shutdown(self: Pin<&mut Self>) {}
    }
}

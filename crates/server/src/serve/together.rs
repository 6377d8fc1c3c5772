//! One client connection's futures driven together in its task: the served connection, the work its
//! service handed out (the streamer connections of the session proxy) and the shutdown signal.
//!
//! Each is polled only when its own waker fired, and a wake that one of them causes in another while
//! the task runs (a request handed to a streamer connection, a response handed back) is served in the
//! same run of the task rather than by scheduling it again. Polling all of them on every wake, as a
//! plain join does, ran the task about five times per proxied request and polled hyper's connection
//! state machines and the shutdown watch each time.

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

/// The connection's result once it and its work have both ended.
pub(super) struct Together<C: Served, W> {
    connection: Part<C>,
    work: Part<W>,
    shutdown: Part<Pin<Box<dyn Future<Output = ()> + Send>>>,
    served: Option<Result<(), C::Error>>,
    task: Arc<Task>,
}

impl<C, W> Together<C, W>
where
    C: Served,
    W: Future<Output = ()>,
{
    /// `connection` is shut down gracefully (it finishes the request in flight) once `shutdown` resolves.
    pub(super) fn new(connection: C, work: W, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let task = Arc::new(Task { running: AtomicBool::new(false), waker: AtomicWaker::new() });
        Together {
            connection: Part::new(connection, &task),
            work: Part::new(work, &task),
            shutdown: Part::new(Box::pin(shutdown), &task),
            served: None,
            task,
        }
    }

    fn woken(&self) -> bool {
        self.connection.woken() || self.work.woken() || self.shutdown.woken()
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
        self.work.poll();
    }
}

// Every part is boxed; the result is never pinned.
impl<C: Served, W> Unpin for Together<C, W> {}

impl<C, W> Future for Together<C, W>
where
    C: Served,
    W: Future<Output = ()>,
{
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
        if this.work.future.is_none()
            && let Some(served) = this.served.take()
        {
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

    /// A connection stand-in: counts its polls and ends when `end` fires or once shut down. When
    /// `request` fires it sends `hand_over`, as a connection hands a request to its work.
    struct Connection {
        polls: Arc<AtomicUsize>,
        end: oneshot::Receiver<()>,
        request: oneshot::Receiver<()>,
        hand_over: Option<oneshot::Sender<()>>,
        shut_down: bool,
    }

    impl Future for Connection {
        type Output = Result<(), std::io::Error>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.hand_over.is_some() && Pin::new(&mut self.request).poll(cx).is_ready() {
                let _ = self.hand_over.take().map(|hand_over| hand_over.send(()));
            }
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

    struct Stand {
        request: oneshot::Sender<()>,
        connection_polls: Arc<AtomicUsize>,
        end_connection: oneshot::Sender<()>,
        work_polls: Arc<AtomicUsize>,
        end_work: oneshot::Sender<()>,
        shut_down: oneshot::Sender<()>,
        wakes: Arc<TaskWakes>,
        waker: Waker,
    }

    /// A connection that hands requests to its work beside work that ends on a signal.
    fn together() -> (Together<Connection, impl Future<Output = ()>>, Stand) {
        let (end_connection, end) = oneshot::channel();
        let (request, requested) = oneshot::channel();
        let (hand_over, handed) = oneshot::channel();
        let (end_work, work_ends) = oneshot::channel();
        let (shut_down, shutdown) = oneshot::channel::<()>();
        let connection_polls = Arc::new(AtomicUsize::new(0));
        let connection = Connection {
            polls: connection_polls.clone(),
            end,
            request: requested,
            hand_over: Some(hand_over),
            shut_down: false,
        };
        let work_polls = Arc::new(AtomicUsize::new(0));
        let counted = work_polls.clone();
        let mut handed = Some(handed);
        let mut work_ends = work_ends;
        let work = std::future::poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(handed_over) = &mut handed
                && Pin::new(handed_over).poll(cx).is_ready()
            {
                handed = None;
            }
            Pin::new(&mut work_ends).poll(cx).map(|_| ())
        });
        let wakes = Arc::new(TaskWakes::default());
        let waker = Waker::from(wakes.clone());
        let shutdown = async move {
            let _ = shutdown.await;
        };
        let stand = Stand { request, connection_polls, end_connection, work_polls, end_work, shut_down, wakes, waker };
        (Together::new(connection, work, shutdown), stand)
    }

    fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn each_part_is_polled_only_when_its_own_waker_fired() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        assert!(poll(&mut together, &waker).is_pending());
        assert_eq!((stand.connection_polls.load(Ordering::SeqCst), stand.work_polls.load(Ordering::SeqCst)), (1, 1));
        assert!(poll(&mut together, &waker).is_pending(), "a spurious run");
        assert_eq!((stand.connection_polls.load(Ordering::SeqCst), stand.work_polls.load(Ordering::SeqCst)), (1, 1));
        stand.end_work.send(()).unwrap();
        assert_eq!(stand.wakes.0.load(Ordering::SeqCst), 1, "the work's wake wakes the idle task");
        assert!(poll(&mut together, &waker).is_pending(), "the connection is still open");
        assert_eq!((stand.connection_polls.load(Ordering::SeqCst), stand.work_polls.load(Ordering::SeqCst)), (1, 2));
        stand.end_connection.send(()).unwrap();
        assert!(matches!(poll(&mut together, &waker), Poll::Ready(Ok(()))));
        assert_eq!(stand.connection_polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wake_one_part_causes_in_another_is_served_in_the_same_run() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        assert!(poll(&mut together, &waker).is_pending());
        stand.request.send(()).unwrap();
        assert_eq!(stand.wakes.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut together, &waker).is_pending());
        assert_eq!(stand.connection_polls.load(Ordering::SeqCst), 2);
        assert_eq!(stand.work_polls.load(Ordering::SeqCst), 2, "polled after the hand-over");
        assert_eq!(stand.wakes.0.load(Ordering::SeqCst), 1, "without scheduling the task again");
    }

    #[test]
    fn the_shutdown_signal_asks_the_connection_to_finish() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        assert!(poll(&mut together, &waker).is_pending());
        stand.shut_down.send(()).unwrap();
        stand.end_work.send(()).unwrap();
        assert!(matches!(poll(&mut together, &waker), Poll::Ready(Ok(()))));
        drop(stand.end_connection);
    }

    #[test]
    fn it_ends_only_once_the_connection_and_its_work_have_both_ended() {
        let (mut together, stand) = together();
        let waker = stand.waker.clone();
        stand.end_connection.send(()).unwrap();
        assert!(poll(&mut together, &waker).is_pending(), "the work still runs");
        stand.end_work.send(()).unwrap();
        assert!(matches!(poll(&mut together, &waker), Poll::Ready(Ok(()))));
    }

    /// Parts woken from other threads while the task runs, over and over: no wake may be lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wake_from_another_thread_is_lost() {
        const MESSAGES: usize = 20_000;
        let receive = |mut messages: mpsc::UnboundedReceiver<()>| async move {
            for _ in 0..MESSAGES {
                messages.recv().await.expect("a message");
            }
        };
        let (to_connection, connection_messages) = mpsc::unbounded_channel();
        let (to_work, work_messages) = mpsc::unbounded_channel();
        let connection = Echo(Box::pin(receive(connection_messages)));
        let together = Together::new(connection, receive(work_messages), std::future::pending());
        let senders = [to_connection, to_work].map(|sender| {
            std::thread::spawn(move || {
                for i in 0..MESSAGES {
                    sender.send(()).unwrap();
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        });
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), together).await;
        assert!(matches!(ended, Ok(Ok(()))), "every message was received");
        for sender in senders {
            sender.join().unwrap();
        }
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

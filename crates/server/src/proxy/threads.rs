//! The session listener's connections run on threads of their own, one single-threaded runtime per
//! core, the way nginx runs one worker per core.
//!
//! Everything one client connection does (its requests, the streamer connections it keeps, its
//! tunnels) stays in one task on one thread. The work-stealing runtime that serves the API would
//! move nothing here, yet charges every wake-up for being able to: atomic run queues, waking idle
//! workers, and the bookkeeping that tunes its fairness. Connections are dealt to the threads in
//! turn as they are accepted.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::serve::Spawn;

/// The proxy's threads; they stop when this is dropped, ending the connections still on them.
pub struct Threads {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping these ends each thread's wait, and with it the thread.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Threads {
    /// One thread per core this process may run on (its CPU affinity counts, so a proxy pinned to
    /// one core gets one).
    pub fn start() -> std::io::Result<Threads> {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let mut runtimes = Vec::with_capacity(count);
        let mut stop = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stopping, stopped) = oneshot::channel::<()>();
            runtimes.push(runtime.handle().clone());
            stop.push(stopping);
            std::thread::Builder::new().name(format!("session-proxy-{index}")).spawn(move || {
                // Drives the connections spawned onto this runtime until the proxy stops.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        }
        Ok(Threads { runtimes, next: AtomicUsize::new(0), _stop: stop })
    }
}

impl Spawn for Threads {
    fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len();
        self.runtimes[turn].spawn(connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_run_on_the_proxy_threads_in_turn_until_they_stop() {
        let threads = Threads::start().unwrap();
        let count = threads.runtimes.len();
        let mut names = Vec::new();
        for _ in 0..2 * count {
            let (sender, receiver) = oneshot::channel();
            threads.spawn(async move {
                let _ = sender.send(std::thread::current().name().map(str::to_owned));
            });
            names.push(receiver.await.unwrap().unwrap());
        }
        let expected: Vec<String> = (0..2 * count).map(|turn| format!("session-proxy-{}", turn % count)).collect();
        assert_eq!(names, expected);

        let (sender, receiver) = oneshot::channel::<()>();
        threads.spawn(async move {
            // Holds the sender until its runtime drops the task.
            std::future::pending::<()>().await;
            drop(sender);
        });
        drop(threads);
        assert!(receiver.await.is_err(), "stopping the threads ends the connections still on them");
    }
}

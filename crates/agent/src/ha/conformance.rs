//! What every [`Lease`] must do, run by the tests of each backend against the real thing (a file, Redis,
//! Docker Swarm), and a real Redis for those tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Lease;

/// Short, so expiry is observed quickly; long enough for a slow store's round trips.
const TTL: Duration = Duration::from_millis(1500);

/// Terms are exclusive and numbered; one ends on expiry (for good) or on release (at once).
pub async fn terms_are_exclusive_numbered_and_end_on_expiry_or_release(lease: &dyn Lease) {
    let first = lease.latest_epoch().await.unwrap();
    let a = lease.acquire("a", TTL).await.unwrap().expect("a free lease is taken");
    assert_eq!(a, first + 1, "a new term has the next epoch");
    assert_eq!(lease.acquire("b", TTL).await.unwrap(), None, "a holds it");
    assert_eq!(lease.acquire("a", TTL).await.unwrap(), None, "a term is not taken twice, even by its holder");
    assert!(lease.renew("a", a, TTL).await.unwrap());
    assert!(!lease.renew("b", a, TTL).await.unwrap(), "b never held it");
    assert!(!lease.renew("a", a + 1, TTL).await.unwrap(), "a holds no such term");
    // a stops renewing: its term expires and b takes the next one.
    let b = eventually_acquired(lease, "b").await;
    assert_eq!(b, a + 1);
    assert!(!lease.renew("a", a, TTL).await.unwrap(), "an expired term stays over for its holder");
    assert_eq!(lease.latest_epoch().await.unwrap(), b);
    lease.release("a", a).await.unwrap();
    assert_eq!(lease.acquire("a", TTL).await.unwrap(), None, "a cannot release b's term");
    lease.release("b", b).await.unwrap();
    assert_eq!(lease.acquire("a", TTL).await.unwrap(), Some(b + 1), "a released term is taken at once");
    lease.release("a", b + 1).await.unwrap();
}

/// Of many agents trying at once, one leads.
pub async fn racing_acquisitions_have_one_winner(lease: Arc<dyn Lease>) {
    let attempts: Vec<_> = (0..6)
        .map(|n| {
            let lease = Arc::clone(&lease);
            tokio::spawn(async move { lease.acquire(&format!("racer-{n}"), TTL).await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        winners.extend(attempt.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(lease.latest_epoch().await.unwrap(), winners[0]);
}

async fn eventually_acquired(lease: &dyn Lease, holder: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + TTL * 4;
    loop {
        if let Some(epoch) = lease.acquire(holder, TTL).await.unwrap() {
            return epoch;
        }
        assert!(tokio::time::Instant::now() < deadline, "{holder} never took the expired lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `redis-server` on a Unix socket of its own (no port to collide on), stopped when dropped.
pub struct RedisServer {
    child: Child,
    /// `unix:///...`, for [`crate::ha::redis::RedisLease::new`] and `--ha-redis-url`.
    pub url: String,
}

impl RedisServer {
    /// Starts one with its socket in `dir`; fails the test when `redis-server` is missing.
    pub fn start(dir: &Path) -> RedisServer {
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("these tests need redis-server: run scripts/ci/install-deps.sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "redis-server did not open its socket within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, url: format!("unix://{}", socket.display()) }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

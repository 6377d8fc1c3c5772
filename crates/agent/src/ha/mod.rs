//! High availability for agents that cannot share a Kubernetes Lease: of the agents of one HA group (processes
//! that share one agent token and one runtime, such as two Docker agents on a host), exactly one leads: it holds
//! a lease, connects to the control plane and touches sessions; the others wait and take over when the lease
//! expires (ADR 0031).
//!
//! Every term as leader has an epoch, one more than the term before. The leader announces it in its `hello`,
//! so the control plane refuses and drops a former leader's connection, and checks it before each mutation of
//! the runtime, so a former leader that was paused (SIGSTOP, a long GC, a frozen VM) and wakes up believing it
//! still leads changes nothing: these are fencing tokens.
//!
//! Timing as the Kubernetes agent's Lease: a term lasts [`LeaseTimings::ttl`] (10 s) from its last renewal;
//! the leader renews every [`LeaseTimings::renew_every`] (3 s) and stops acting when no renewal succeeded for
//! [`LeaseTimings::renew_deadline`] (7 s), before the lease can be taken over; a standby tries every 3 s, so it
//! leads at most about 13 s after the leader's last renewal.

#[cfg(feature = "conformance")]
pub mod conformance;
mod fenced;
pub mod file;
pub mod redis;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{AgentConfig, Runtime};
pub use fenced::FencedRuntime;

/// Where the lease of one HA group is kept: a file, Redis, Docker Swarm. Implementations decide races
/// atomically (a file lock, a Redis script, a Swarm object's version).
#[async_trait]
pub trait Lease: Send + Sync {
    /// Takes the lease for `holder` if nobody holds it or the holding expired, as a new term: `Some(epoch)`,
    /// the previous term's epoch plus one. `None` while another holder's term lasts.
    async fn acquire(&self, holder: &str, ttl: Duration) -> anyhow::Result<Option<u64>>;
    /// Extends `holder`'s term `epoch` by `ttl`; `false` when that term is over (it expired, or another holder
    /// took the lease), which a holder cannot undo: it must acquire a new term.
    async fn renew(&self, holder: &str, epoch: u64, ttl: Duration) -> anyhow::Result<bool>;
    /// Ends `holder`'s term `epoch` early (on shutdown), so a standby need not wait for it to expire.
    async fn release(&self, holder: &str, epoch: u64) -> anyhow::Result<()>;
    /// The newest term's epoch (0 before the first): a leader whose epoch is older was replaced.
    async fn latest_epoch(&self) -> anyhow::Result<u64>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a term lasts after its last renewal.
    pub ttl: Duration,
    /// How long a leader keeps acting without a successful renewal; shorter than `ttl`.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby tries.
    pub renew_every: Duration,
}

impl Default for LeaseTimings {
    fn default() -> LeaseTimings {
        LeaseTimings::for_ttl(Duration::from_secs(10))
    }
}

impl LeaseTimings {
    /// Timings in the default proportions for a term of `ttl`: the deadline at 70 %, renewals at 30 %.
    pub fn for_ttl(ttl: Duration) -> LeaseTimings {
        LeaseTimings { ttl, renew_deadline: ttl.mul_f64(0.7), renew_every: ttl.mul_f64(0.3) }
    }
}

/// What a term's work may check before it acts: whether the term still stands. It ends when the leader misses
/// its renew deadline, learns it was replaced, or steps down; a newer epoch in the lease ends it too.
pub struct Term {
    epoch: u64,
    lease: Arc<dyn Lease>,
    /// Past this instant the term is over unless a renewal moved it.
    valid_until: Mutex<Option<Instant>>,
}

impl Term {
    fn new(epoch: u64, lease: Arc<dyn Lease>, valid_until: Instant) -> Term {
        Term { epoch, lease, valid_until: Mutex::new(Some(valid_until)) }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn extend(&self, until: Instant) {
        if let Some(valid_until) = self.valid_until.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            *valid_until = (*valid_until).max(until);
        }
    }

    fn end(&self) {
        *self.valid_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Fails unless this term still stands: by this process's clock, and by the lease (no newer epoch).
    pub async fn check(&self) -> anyhow::Result<()> {
        let valid_until = *self.valid_until.lock().unwrap_or_else(PoisonError::into_inner);
        if valid_until.is_none_or(|until| Instant::now() >= until) {
            anyhow::bail!("this agent's term as leader (epoch {}) is over: refusing to touch sessions", self.epoch);
        }
        let latest = self.lease.latest_epoch().await?;
        if latest > self.epoch {
            anyhow::bail!(
                "another agent leads now (epoch {latest}, this one had {}): refusing to touch sessions",
                self.epoch
            );
        }
        Ok(())
    }
}

/// Contends for one HA group's lease as `identity`.
pub struct Elector {
    lease: Arc<dyn Lease>,
    identity: String,
    timings: LeaseTimings,
}

impl Elector {
    pub fn new(lease: Arc<dyn Lease>, identity: impl Into<String>, timings: LeaseTimings) -> Elector {
        Elector { lease, identity: identity.into(), timings }
    }

    /// Returns once this process leads, with its term.
    async fn acquire(&self) -> Arc<Term> {
        loop {
            let attempted = Instant::now();
            // Bounded: a lease store that hangs is retried like one that failed.
            match tokio::time::timeout(self.timings.renew_every, self.lease.acquire(&self.identity, self.timings.ttl))
                .await
            {
                Ok(Ok(Some(epoch))) => {
                    let term = Term::new(epoch, Arc::clone(&self.lease), attempted + self.timings.renew_deadline);
                    return Arc::new(term);
                }
                Ok(Ok(None)) => {}
                Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), "cannot read or take the lease"),
                Err(_) => tracing::warn!("the lease store did not answer in time"),
            }
            tokio::time::sleep(self.timings.renew_every).await;
        }
    }

    /// Renews the term while it lasts; returns when it is over: the lease says so, or no renewal succeeded
    /// within the renew deadline (however long the lease store takes to answer).
    async fn hold(&self, term: &Term) {
        let mut renewed = Instant::now();
        loop {
            let remaining = (renewed + self.timings.renew_deadline).saturating_duration_since(Instant::now());
            let renewal = async {
                tokio::time::sleep(self.timings.renew_every).await;
                let attempted = Instant::now();
                match self.lease.renew(&self.identity, term.epoch, self.timings.ttl).await {
                    Ok(held) => Some((held, attempted)),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "cannot renew the lease");
                        None
                    }
                }
            };
            match tokio::time::timeout(remaining, renewal).await {
                Err(_) | Ok(Some((false, _))) => return,
                // The lease counts from when the renewal was sent, so the deadline does too.
                Ok(Some((true, attempted))) => {
                    renewed = attempted;
                    term.extend(attempted + self.timings.renew_deadline);
                }
                Ok(None) => {}
            }
        }
    }

    /// Runs the agent whenever this process leads, until `shutdown` completes: each term connects afresh with
    /// its epoch, through a runtime that checks the term before every change. Losing the lease ends the term's
    /// connection at once; the process then waits as a standby.
    pub async fn run<S>(&self, config: AgentConfig, runtime: Arc<dyn Runtime>, shutdown: S) -> anyhow::Result<()>
    where
        S: Future<Output = ()>,
    {
        config.hub_urls()?;
        tokio::pin!(shutdown);
        tracing::info!(identity = %self.identity, "agent started as a standby; waiting for the lease");
        loop {
            let term = tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                term = self.acquire() => term,
            };
            tracing::info!(identity = %self.identity, epoch = term.epoch, "leading: this agent is the active one");
            let fenced: Arc<dyn Runtime> = Arc::new(FencedRuntime::new(Arc::clone(&runtime), Arc::clone(&term)));
            let config = AgentConfig { epoch: Some(term.epoch), ..config.clone() };
            let ended = tokio::select! {
                () = shutdown.as_mut() => Ok(()),
                result = crate::run(config, fenced, std::future::pending()) => result,
                () = self.hold(&term) => {
                    term.end();
                    tracing::warn!(
                        identity = %self.identity,
                        epoch = term.epoch,
                        "lost the lease: stepping down, this agent is a standby now"
                    );
                    continue;
                }
            };
            term.end();
            if let Err(error) = self.lease.release(&self.identity, term.epoch).await {
                tracing::warn!(error = format!("{error:#}"), "cannot release the lease; it expires by itself");
            }
            return ended;
        }
    }
}

/// A name for this process in its HA group: the host name and process id, which differ between two agents on
/// one host and between hosts.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "agent" } else { host };
    format!("{host}-{}", std::process::id())
}

/// Milliseconds since the Unix epoch, for leases whose expiry other hosts read (their clocks must agree to
/// well within the gap between the renew deadline and the term, as NTP keeps them).
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// A lease as data, for backends that store it and decide races by compare-and-swap (a locked file, a Swarm
/// config's version): the newest term's epoch, its holder (empty once released) and its expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holding {
    pub epoch: u64,
    pub holder: String,
    /// Unix milliseconds.
    pub expires_ms: u64,
}

impl Holding {
    pub fn is_held_at(&self, now_ms: u64) -> bool {
        !self.holder.is_empty() && now_ms < self.expires_ms
    }

    fn is_term_of(&self, holder: &str, epoch: u64) -> bool {
        self.holder == holder && self.epoch == epoch
    }

    /// What to write for `holder` to take the lease at `now_ms` as a new term; `None` while a term lasts.
    pub fn acquired(&self, holder: &str, ttl: Duration, now_ms: u64) -> Option<Holding> {
        let next = Holding { epoch: self.epoch + 1, holder: holder.to_owned(), expires_ms: now_ms + millis(ttl) };
        (!self.is_held_at(now_ms)).then_some(next)
    }

    /// What to write to extend `holder`'s term `epoch`; `None` when that term is over.
    pub fn renewed(&self, holder: &str, epoch: u64, ttl: Duration, now_ms: u64) -> Option<Holding> {
        let next = Holding { expires_ms: now_ms + millis(ttl), ..self.clone() };
        (self.is_term_of(holder, epoch) && self.is_held_at(now_ms)).then_some(next)
    }

    /// What to write to end `holder`'s term `epoch` early; `None` when it is not the current term.
    pub fn released(&self, holder: &str, epoch: u64) -> Option<Holding> {
        let next = Holding { holder: String::new(), expires_ms: 0, ..self.clone() };
        self.is_term_of(holder, epoch).then_some(next)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_stops_before_its_term_can_be_taken_and_a_standby_leads_within_fifteen_seconds() {
        let timings = LeaseTimings::default();
        assert!(timings.renew_deadline < timings.ttl);
        assert!(timings.renew_every < timings.renew_deadline);
        assert!(timings.ttl + timings.renew_every <= Duration::from_secs(15));
        let short = LeaseTimings::for_ttl(Duration::from_secs(2));
        assert_eq!(
            (short.renew_deadline, short.renew_every),
            (Duration::from_millis(1400), Duration::from_millis(600))
        );
    }

    #[test]
    fn a_holding_is_taken_when_free_or_expired_renewed_by_its_term_and_released_only_by_it() {
        let ttl = Duration::from_secs(10);
        let free = Holding::default();
        let a = free.acquired("a", ttl, 1000).unwrap();
        assert_eq!(a, Holding { epoch: 1, holder: "a".into(), expires_ms: 11_000 });
        assert_eq!(a.acquired("b", ttl, 10_999), None, "a's term lasts");
        assert_eq!(a.acquired("a", ttl, 5000), None, "not even a takes a lasting term again");
        assert_eq!(a.renewed("a", 1, ttl, 5000).unwrap().expires_ms, 15_000);
        assert_eq!(a.renewed("a", 2, ttl, 5000), None, "no such term");
        assert_eq!(a.renewed("b", 1, ttl, 5000), None, "not b's");
        assert_eq!(a.renewed("a", 1, ttl, 11_000), None, "an expired term is over for good");
        let b = a.acquired("b", ttl, 11_000).unwrap();
        assert_eq!((b.epoch, b.holder.as_str()), (2, "b"));
        assert_eq!(b.released("a", 1), None, "a cannot end b's term");
        let released = b.released("b", 2).unwrap();
        assert!(!released.is_held_at(11_001));
        assert_eq!(released.acquired("a", ttl, 11_001).unwrap().epoch, 3, "epochs never repeat");
    }
}

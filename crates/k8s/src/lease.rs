//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several agent replicas exactly one talks to
//! the control plane and runs the controller.
//!
//! Written here rather than taken from kube-lease-manager, which renews with server-side apply and strategic
//! merge patches; this uses only get, create and replace, with the Lease's `resourceVersion` deciding races.
//!
//! Timing: a Lease lasts [`LeaseTimings::duration`] (10 s) from its last renewal; the leader renews every
//! [`LeaseTimings::retry`] (3 s) and steps down when it has not renewed for [`LeaseTimings::renew_deadline`]
//! (7 s), before anyone may take the Lease over; a standby tries every 3 s, so it leads at most about 13 s after
//! the leader's last renewal. Expiry compares the holder's `renewTime` with the standby's clock, so replicas'
//! clocks must agree to well within the 3 s between deadline and duration (NTP does).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::api::{get_if_present, is_conflict};

/// Time behind a trait, so the election's decisions are tested without waiting.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.checked_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX)).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease holds after its last renewal.
    pub duration: Duration,
    /// How long a leader keeps acting without a successful renewal; shorter than `duration`.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby tries.
    pub retry: Duration,
}

impl Default for LeaseTimings {
    fn default() -> LeaseTimings {
        LeaseTimings {
            duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry: Duration::from_secs(3),
        }
    }
}

/// What the Lease says, as far as deciding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub holder: Option<String>,
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holding expired: take it (a new term).
    Acquire,
    /// It is ours: renew it.
    Renew,
    /// Someone else holds it and it has not expired.
    Wait { holder: String },
}

/// Who may write the Lease now. A Lease without a holder, without a renewal time, or renewed longer ago than
/// its duration is free.
pub fn decide(holding: &Holding, identity: &str, now: Timestamp) -> Decision {
    match (&holding.holder, holding.renewed) {
        (Some(holder), _) if holder == identity => Decision::Renew,
        (Some(holder), Some(renewed)) if !has_elapsed(renewed, holding.duration, now) => {
            Decision::Wait { holder: holder.clone() }
        }
        _ => Decision::Acquire,
    }
}

/// How much longer a leader whose last successful renewal was at `renewed` may act at `now`; zero: it must stop.
pub fn time_to_step_down(renewed: Timestamp, timings: &LeaseTimings, now: Timestamp) -> Duration {
    let elapsed = Duration::try_from(now.duration_since(renewed)).unwrap_or(Duration::ZERO);
    timings.renew_deadline.saturating_sub(elapsed)
}

fn has_elapsed(since: Timestamp, period: Duration, now: Timestamp) -> bool {
    let elapsed = now.duration_since(since);
    elapsed >= SignedDuration::try_from(period).unwrap_or(SignedDuration::MAX)
}

fn holding(lease: &Lease) -> Holding {
    let spec = lease.spec.clone().unwrap_or_default();
    Holding {
        holder: spec.holder_identity.filter(|holder| !holder.is_empty()),
        renewed: spec.renew_time.map(|MicroTime(time)| time),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
    }
}

/// Contends for one Lease as `identity`.
pub struct LeaderElector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    clock: Arc<dyn Clock>,
}

impl LeaderElector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> LeaderElector {
        LeaderElector::with_clock(client, namespace, name, identity, LeaseTimings::default(), Arc::new(SystemClock))
    }

    pub fn with_clock(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
        clock: Arc<dyn Clock>,
    ) -> LeaderElector {
        LeaderElector {
            leases: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
            clock,
        }
    }

    /// One attempt to take or renew the Lease; `Ok(true)` when this replica holds it afterwards. A race lost to
    /// another replica (409 Conflict) is `Ok(false)`.
    pub async fn try_lead(&self) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let Some(mut lease) = get_if_present(&self.leases, &self.name).await? else {
            let lease =
                Lease { metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() }, spec: None };
            let lease = Lease { spec: Some(self.term(now, 0)), ..lease };
            return self.written(self.leases.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        match decide(&holding(&lease), &self.identity, now) {
            Decision::Wait { .. } => return Ok(false),
            Decision::Acquire => {
                let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
                lease.spec = Some(self.term(now, transitions));
            }
            Decision::Renew => {
                lease.spec = Some(LeaseSpec {
                    renew_time: Some(MicroTime(now)),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    ..spec
                })
            }
        }
        // `metadata.resourceVersion` is the one read: a replica that wrote in between makes this a conflict.
        self.written(self.leases.replace(&self.name, &PostParams::default(), &lease).await)
    }

    fn term(&self, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(self.duration_seconds()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timings.duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn written(&self, result: kube::Result<Lease>) -> anyhow::Result<bool> {
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(anyhow::Error::new(error).context(format!("writing Lease {}", self.name))),
        }
    }

    /// One attempt that logs its failure instead of returning it.
    async fn attempt(&self) -> bool {
        match self.try_lead().await {
            Ok(leading) => leading,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), lease = %self.name, "cannot read or write the Lease");
                false
            }
        }
    }

    /// Returns once this replica leads.
    pub async fn acquire(&self) {
        loop {
            // Bounded: an API call that hangs is retried like one that failed.
            if let Ok(true) = tokio::time::timeout(self.timings.retry, self.attempt()).await {
                return;
            }
            tokio::time::sleep(self.timings.retry).await;
        }
    }

    /// Renews while leading; returns when leadership is lost: another replica holds the Lease (or wrote it in
    /// between), or no renewal succeeded within the renew deadline, however long the API takes to answer.
    pub async fn hold(&self) {
        let mut renewed = self.clock.now();
        loop {
            let remaining = time_to_step_down(renewed, &self.timings, self.clock.now());
            let renewal = async {
                tokio::time::sleep(self.timings.retry).await;
                let attempted = self.clock.now();
                match self.try_lead().await {
                    Ok(leading) => Some((leading, attempted)),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), lease = %self.name, "cannot renew the Lease");
                        None
                    }
                }
            };
            match tokio::time::timeout(remaining, renewal).await {
                Err(_) | Ok(Some((false, _))) => return,
                // The Lease says it was renewed when the attempt began, so the deadline counts from then.
                Ok(Some((true, attempted))) => renewed = attempted,
                Ok(None) => {}
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over at its next try instead of after expiry.
    pub async fn release(&self) -> anyhow::Result<()> {
        let Some(mut lease) = get_if_present(&self.leases, &self.name).await? else { return Ok(()) };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        lease.spec = Some(spec);
        self.leases.replace(&self.name, &PostParams::default(), &lease).await.context("releasing the Lease")?;
        Ok(())
    }

    /// Runs `work` whenever this replica leads, until `shutdown` completes or `work` ends. Losing the Lease drops
    /// (cancels) the running `work` at once; it starts again from scratch after the next acquisition.
    pub async fn lead<W, Fut, S>(&self, work: W, shutdown: S) -> anyhow::Result<()>
    where
        W: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
        S: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                () = self.acquire() => {}
            }
            tracing::info!(identity = %self.identity, lease = %self.name, "leading: this agent is the active one");
            let ended = tokio::select! {
                () = shutdown.as_mut() => Ok(()),
                result = work() => result,
                () = self.hold() => {
                    tracing::warn!(identity = %self.identity, "lost the Lease: stepping down, a standby takes over");
                    continue;
                }
            };
            if let Err(error) = self.release().await {
                tracing::warn!(error = format!("{error:#}"), "cannot release the Lease; it expires by itself");
            }
            return ended;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn held_by(holder: Option<&str>, renewed: Option<i64>) -> Holding {
        Holding { holder: holder.map(str::to_string), renewed: renewed.map(at), duration: Duration::from_secs(10) }
    }

    #[test]
    fn the_lease_is_taken_when_free_or_expired_renewed_when_ours_and_left_when_fresh() {
        let wait = |holder: &str| Decision::Wait { holder: holder.to_string() };
        let table = [
            (held_by(None, None), 0, Decision::Acquire),
            (held_by(None, Some(0)), 1, Decision::Acquire),
            (held_by(Some("a"), Some(0)), 1, Decision::Renew),
            (held_by(Some("a"), Some(0)), 60, Decision::Renew),
            (held_by(Some("b"), Some(0)), 0, wait("b")),
            (held_by(Some("b"), Some(0)), 9, wait("b")),
            (held_by(Some("b"), Some(0)), 10, Decision::Acquire),
            (held_by(Some("b"), Some(0)), 11, Decision::Acquire),
            (held_by(Some("b"), None), 0, Decision::Acquire),
            (held_by(Some("b"), Some(5)), 3, wait("b")),
        ];
        for (holding, now, want) in table {
            assert_eq!(decide(&holding, "a", at(now)), want, "{holding:?} at +{now}s");
        }
    }

    #[test]
    fn a_leader_steps_down_before_its_lease_can_be_taken() {
        let timings = LeaseTimings::default();
        assert!(timings.renew_deadline < timings.duration, "the leader stops before a standby may start");
        assert!(timings.duration + timings.retry <= Duration::from_secs(15), "a standby takes over within 15 s");
        let clock = ManualClock::new(at(0));
        let renewed = clock.now();
        assert_eq!(time_to_step_down(renewed, &timings, clock.now()), Duration::from_secs(7));
        clock.advance(Duration::from_secs(6));
        assert_eq!(time_to_step_down(renewed, &timings, clock.now()), Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(time_to_step_down(renewed, &timings, clock.now()), Duration::ZERO);
        clock.advance(Duration::from_secs(1));
        assert_eq!(time_to_step_down(renewed, &timings, clock.now()), Duration::ZERO, "past it: still zero");
        let holding = held_by(Some("a"), Some(0));
        assert_eq!(decide(&holding, "b", clock.now()), Decision::Wait { holder: "a".into() }, "not yet takeable");
        clock.advance(Duration::from_secs(3));
        assert_eq!(decide(&holding, "b", clock.now()), Decision::Acquire);
    }

    #[test]
    fn a_lease_is_read_as_holder_renewal_and_duration() {
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                renew_time: Some(MicroTime(at(4))),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        };
        assert_eq!(
            holding(&lease),
            Holding { holder: None, renewed: Some(at(4)), duration: Duration::from_secs(15) },
            "an empty holder is no holder"
        );
        assert_eq!(holding(&Lease::default()), Holding { holder: None, renewed: None, duration: Duration::ZERO });
    }
}

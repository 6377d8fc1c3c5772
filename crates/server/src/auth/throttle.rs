//! Login throttling: failures counted per account and per client IP within a window; reaching
//! the limit locks that key out for a while. Pure logic over a time the caller passes in.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Account(String),
    Ip(std::net::IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: DateTime<Utc>,
    failures: u32,
    locked_until: Option<DateTime<Utc>>,
}

/// What a recorded failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted,
    /// This failure reached the limit: the key is now locked out.
    LockedOut,
}

pub struct LoginThrottle {
    account: Policy,
    ip: Policy,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// Above this many tracked keys, stale ones are dropped on the next failure.
const PRUNE_ABOVE: usize = 10_000;

impl LoginThrottle {
    pub fn new(account: Policy, ip: Policy) -> LoginThrottle {
        LoginThrottle { account, ip, entries: Mutex::new(HashMap::new()) }
    }

    fn policy(&self, key: &Key) -> Policy {
        match key {
            Key::Account(_) => self.account,
            Key::Ip(_) => self.ip,
        }
    }

    /// Seconds until the longest lockout among `keys` ends, or `None` when none is locked.
    pub fn locked_for(&self, keys: &[Key], now: DateTime<Utc>) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|key| entries.get(key)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| u64::try_from((until - now).num_seconds()).unwrap_or(0).max(1))
            .max()
    }

    pub fn record_failure(&self, key: Key, now: DateTime<Utc>) -> FailureOutcome {
        let policy = self.policy(&key);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|k, e| is_live(e, self.policy(k), now));
        }
        let entry = entries.entry(key).or_insert(Entry { window_start: now, failures: 0, locked_until: None });
        if now - entry.window_start > policy.window || entry.locked_until.is_some_and(|until| until <= now) {
            *entry = Entry { window_start: now, failures: 0, locked_until: None };
        }
        entry.failures += 1;
        if entry.failures >= policy.max_failures && entry.locked_until.is_none() {
            entry.locked_until = Some(now + policy.lockout);
            FailureOutcome::LockedOut
        } else {
            FailureOutcome::Counted
        }
    }

    /// A successful login clears the account's failures (not the IP's: one good account must
    /// not reset the count of an address that is guessing at others).
    pub fn record_success(&self, account: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&Key::Account(account.to_owned()));
    }
}

fn is_live(entry: &Entry, policy: Policy, now: DateTime<Utc>) -> bool {
    entry.locked_until.is_some_and(|until| until > now) || now - entry.window_start <= policy.window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        let policy = |n| Policy { max_failures: n, window: Duration::minutes(15), lockout: Duration::minutes(5) };
        LoginThrottle::new(policy(3), policy(5))
    }

    fn account(name: &str) -> Key {
        Key::Account(name.to_owned())
    }

    #[test]
    fn an_account_locks_after_its_limit_and_unlocks_after_the_lockout() {
        let t = throttle();
        let now = Utc::now();
        assert_eq!(t.record_failure(account("a"), now), FailureOutcome::Counted);
        assert_eq!(t.record_failure(account("a"), now), FailureOutcome::Counted);
        assert_eq!(t.locked_for(&[account("a")], now), None);
        assert_eq!(t.record_failure(account("a"), now), FailureOutcome::LockedOut);
        assert_eq!(t.locked_for(&[account("a")], now), Some(300));
        assert_eq!(t.locked_for(&[account("b")], now), None);
        assert_eq!(t.locked_for(&[account("a")], now + Duration::minutes(5)), None);
        // After the lockout the count starts again.
        assert_eq!(t.record_failure(account("a"), now + Duration::minutes(5)), FailureOutcome::Counted);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let now = Utc::now();
        t.record_failure(account("a"), now);
        t.record_failure(account("a"), now);
        assert_eq!(t.record_failure(account("a"), now + Duration::minutes(16)), FailureOutcome::Counted);
    }

    #[test]
    fn success_clears_the_account_but_not_the_ip() {
        let t = throttle();
        let now = Utc::now();
        let ip = Key::Ip("10.0.0.1".parse().unwrap());
        for _ in 0..2 {
            t.record_failure(account("a"), now);
        }
        for _ in 0..4 {
            t.record_failure(ip.clone(), now);
        }
        t.record_success("a");
        assert_eq!(t.record_failure(account("a"), now), FailureOutcome::Counted);
        assert_eq!(t.record_failure(ip.clone(), now), FailureOutcome::LockedOut);
        assert!(t.locked_for(&[account("zzz"), ip], now).is_some());
    }
}

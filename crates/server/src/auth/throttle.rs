//! Login throttling as reservations: an attempt is counted against every key it touches *before*
//! its password is verified, so a concurrent burst gets no more guesses than the limits allow.
//! Pure logic over a time the caller passes in.
//!
//! Three keys per attempt: the account at this address (the tight limit, so one address cannot
//! lock the account out for everyone), the account alone (a slower limit against guessing from
//! many addresses) and the address alone (against one address spraying many accounts). IPv6
//! clients are keyed by their /64, which one subscriber usually holds whole.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Policies {
    pub account_address: Policy,
    pub account: Policy,
    pub address: Policy,
}

impl Default for Policies {
    fn default() -> Self {
        let policy = |max_failures, window, lockout| Policy { max_failures, window, lockout };
        Policies {
            account_address: policy(5, Duration::minutes(15), Duration::minutes(15)),
            account: policy(30, Duration::hours(1), Duration::minutes(30)),
            address: policy(50, Duration::minutes(15), Duration::minutes(15)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    AccountAddress(String, IpNet),
    Account(String),
    Address(IpNet),
}

/// The network a client address is counted under: the address itself for IPv4, its /64 for IPv6.
pub fn address_key(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::from(v4)),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, 64).map_or(Ipv6Net::from(v6), |net| net.trunc())),
    }
}

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A key has used up its attempts; it unlocks after this many seconds.
    LockedOut { retry_after_secs: u64 },
    /// Another attempt for the same account is being verified right now.
    InProgress,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: DateTime<Utc>,
    /// Attempts reserved in this window and not given back.
    counted: u32,
    /// Set exactly while `counted` has reached the policy's limit.
    locked_until: Option<DateTime<Utc>>,
    /// The lockout was reported for auditing: once per key and lockout.
    lockout_reported: bool,
}

impl Entry {
    fn fresh(now: DateTime<Utc>) -> Entry {
        Entry { window_start: now, counted: 0, locked_until: None, lockout_reported: false }
    }

    fn is_live(&self, policy: Policy, now: DateTime<Utc>) -> bool {
        match self.locked_until {
            Some(until) => until > now,
            None => self.counted > 0 && now - self.window_start <= policy.window,
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Accounts with an attempt between reservation and outcome.
    in_flight: HashSet<String>,
    last_prune: Option<DateTime<Utc>>,
}

pub struct LoginThrottle {
    policies: Policies,
    state: Mutex<State>,
}

/// Above this many tracked keys, stale ones are dropped, at most once a minute.
const PRUNE_ABOVE: usize = 10_000;

impl LoginThrottle {
    pub fn new(policies: Policies) -> LoginThrottle {
        LoginThrottle { policies, state: Mutex::new(State::default()) }
    }

    fn policy(&self, key: &Key) -> Policy {
        match key {
            Key::AccountAddress(..) => self.policies.account_address,
            Key::Account(_) => self.policies.account,
            Key::Address(_) => self.policies.address,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one attempt by `account` from `client` against every key, or refuses it without
    /// counting. The attempt stays counted unless its [`Attempt`] says it succeeded or was withdrawn.
    pub fn reserve(&self, account: &str, client: IpAddr, now: DateTime<Utc>) -> Result<Attempt<'_>, Refusal> {
        let address = address_key(client);
        let keys =
            [Key::AccountAddress(account.to_owned(), address), Key::Account(account.to_owned()), Key::Address(address)];
        let mut state = self.state();
        self.prune(&mut state, now);
        let locked_for = keys.iter().filter_map(|key| self.locked_until(&mut state, key, now)).max();
        if let Some(until) = locked_for {
            let retry_after_secs = u64::try_from((until - now).num_seconds()).unwrap_or(0).max(1);
            return Err(Refusal::LockedOut { retry_after_secs });
        }
        if !state.in_flight.insert(account.to_owned()) {
            return Err(Refusal::InProgress);
        }
        for key in &keys {
            let policy = self.policy(key);
            let entry = state.entries.entry(key.clone()).or_insert_with(|| Entry::fresh(now));
            entry.counted += 1;
            if entry.counted >= policy.max_failures {
                entry.locked_until = Some(now + policy.lockout);
            }
        }
        Ok(Attempt { throttle: self, account: account.to_owned(), keys, settled: false })
    }

    /// When `key` is locked, until when; restarts the key's count once its window or lockout is over.
    fn locked_until(&self, state: &mut State, key: &Key, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let policy = self.policy(key);
        let entry = state.entries.get_mut(key)?;
        let expired = match entry.locked_until {
            Some(until) => until <= now,
            None => now - entry.window_start > policy.window,
        };
        if expired {
            *entry = Entry::fresh(now);
        }
        entry.locked_until
    }

    fn prune(&self, state: &mut State, now: DateTime<Utc>) {
        let due = state.last_prune.is_none_or(|last| now - last >= Duration::minutes(1));
        if state.entries.len() > PRUNE_ABOVE && due {
            state.entries.retain(|key, entry| entry.is_live(self.policy(key), now));
            state.last_prune = Some(now);
        }
    }

    /// Gives back the attempt on `keys`, lifting a lockout that was reached by counting it.
    fn uncount(&self, state: &mut State, keys: &[Key]) {
        for key in keys {
            let max_failures = self.policy(key).max_failures;
            if let Some(entry) = state.entries.get_mut(key) {
                entry.counted = entry.counted.saturating_sub(1);
                if entry.counted < max_failures {
                    entry.locked_until = None;
                    entry.lockout_reported = false;
                }
            }
        }
    }
}

/// One reserved attempt. Dropped without an outcome (the request failed or was cancelled), it
/// stays counted: no way out of the accounting costs less than a wrong guess.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    keys: [Key; 3],
    settled: bool,
}

impl<'a> Attempt<'a> {
    /// Signed in: the account's count at this address starts over; the account's and the
    /// address's counts lose this attempt but keep the failures of others.
    pub fn succeeded(mut self) {
        let mut state = self.settle();
        let [account_address, shared @ ..] = &self.keys;
        state.entries.remove(account_address);
        self.throttle.uncount(&mut state, shared);
    }

    /// No guess was made (the verifier was busy, or the password was right and the second factor
    /// still has to be sent): the attempt is given back everywhere.
    pub fn withdraw(mut self) {
        let mut state = self.settle();
        self.throttle.uncount(&mut state, &self.keys);
    }

    /// A wrong guess: it stays counted. Returns the keys whose lockout this failure is the first to
    /// report, so each lockout is audited once.
    pub fn failed(mut self) -> Vec<Key> {
        let mut state = self.settle();
        let mut newly_locked = Vec::new();
        for key in &self.keys {
            if let Some(entry) = state.entries.get_mut(key)
                && entry.locked_until.is_some()
                && !entry.lockout_reported
            {
                entry.lockout_reported = true;
                newly_locked.push(key.clone());
            }
        }
        newly_locked
    }

    fn settle(&mut self) -> MutexGuard<'a, State> {
        self.settled = true;
        let throttle: &'a LoginThrottle = self.throttle;
        let mut state = throttle.state();
        state.in_flight.remove(&self.account);
        state
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.state().in_flight.remove(&self.account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn throttle() -> LoginThrottle {
        let policy = |n| Policy { max_failures: n, window: Duration::minutes(15), lockout: Duration::minutes(5) };
        LoginThrottle::new(Policies { account_address: policy(3), account: policy(6), address: policy(8) })
    }

    fn fail(t: &LoginThrottle, account: &str, client: &str, now: DateTime<Utc>) -> Vec<Key> {
        t.reserve(account, ip(client), now).expect("not refused").failed()
    }

    fn locked(t: &LoginThrottle, account: &str, client: &str, now: DateTime<Utc>) -> Option<u64> {
        match t.reserve(account, ip(client), now) {
            Ok(attempt) => {
                attempt.withdraw();
                None
            }
            Err(Refusal::LockedOut { retry_after_secs }) => Some(retry_after_secs),
            Err(Refusal::InProgress) => panic!("nothing is in flight"),
        }
    }

    #[test]
    fn addresses_are_keyed_by_ipv4_address_and_ipv6_64() {
        let cases = [
            ("192.0.2.7", "192.0.2.7/32"),
            ("::ffff:192.0.2.7", "192.0.2.7/32"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
            ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ];
        for (client, expected) in cases {
            assert_eq!(address_key(ip(client)), expected.parse::<IpNet>().unwrap(), "{client}");
        }
    }

    /// `account@address`
    fn split(attempt: &str) -> (&str, &str) {
        attempt.split_once('@').unwrap()
    }

    #[test]
    fn limits_per_key() {
        // (failed attempts, then this attempt, is locked for seconds)
        let cases = [
            ("a@10.0.0.1 a@10.0.0.1", "a@10.0.0.1", None),
            ("a@10.0.0.1 a@10.0.0.1 a@10.0.0.1", "a@10.0.0.1", Some(300)),
            // The account at one address is locked; elsewhere it is not, nor other accounts there.
            ("a@10.0.0.1 a@10.0.0.1 a@10.0.0.1", "a@10.0.0.2", None),
            ("a@10.0.0.1 a@10.0.0.1 a@10.0.0.1", "b@10.0.0.1", None),
            // The slower per-account limit, reached from two addresses, holds everywhere.
            ("a@10.0.0.1 a@10.0.0.1 a@10.0.0.1 a@10.0.0.2 a@10.0.0.2 a@10.0.0.2", "a@10.0.0.3", Some(300)),
            // The per-address limit, reached by spraying accounts.
            ("a@10.0.0.1 b@10.0.0.1 c@10.0.0.1 d@10.0.0.1 e@10.0.0.1 f@10.0.0.1 g@10.0.0.1", "z@10.0.0.1", None),
            (
                "a@10.0.0.1 b@10.0.0.1 c@10.0.0.1 d@10.0.0.1 e@10.0.0.1 f@10.0.0.1 g@10.0.0.1 h@10.0.0.1",
                "z@10.0.0.1",
                Some(300),
            ),
            // One /64 is one address.
            ("a@2001:db8::1 a@2001:db8::2 a@2001:db8::3", "a@2001:db8::ffff", Some(300)),
            ("a@2001:db8::1 a@2001:db8::2 a@2001:db8::3", "a@2001:db8:0:1::1", None),
            ("a@::ffff:10.0.0.1 a@10.0.0.1 a@::ffff:10.0.0.1", "a@10.0.0.1", Some(300)),
        ];
        for (failures, (account, client), expected) in cases.map(|(f, probe, e)| (f, split(probe), e)) {
            let t = throttle();
            let now = Utc::now();
            for (a, c) in failures.split(' ').map(split) {
                fail(&t, a, c, now);
            }
            assert_eq!(locked(&t, account, client, now), expected, "{failures} then {account}@{client}");
        }
    }

    #[test]
    fn a_lockout_ends_and_the_count_starts_over() {
        let t = throttle();
        let now = Utc::now();
        for _ in 0..3 {
            fail(&t, "a", "10.0.0.1", now);
        }
        assert_eq!(locked(&t, "a", "10.0.0.1", now + Duration::minutes(4)), Some(60));
        let later = now + Duration::minutes(5);
        assert_eq!(locked(&t, "a", "10.0.0.1", later), None);
        fail(&t, "a", "10.0.0.1", later);
        fail(&t, "a", "10.0.0.1", later);
        assert_eq!(locked(&t, "a", "10.0.0.1", later), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let now = Utc::now();
        fail(&t, "a", "10.0.0.1", now);
        fail(&t, "a", "10.0.0.1", now);
        fail(&t, "a", "10.0.0.1", now + Duration::minutes(16));
        assert_eq!(locked(&t, "a", "10.0.0.1", now + Duration::minutes(16)), None);
    }

    #[test]
    fn an_attempt_counts_from_its_reservation_and_one_per_account_is_in_flight() {
        let t = throttle();
        let now = Utc::now();
        fail(&t, "a", "10.0.0.1", now);
        fail(&t, "a", "10.0.0.1", now);
        let third = t.reserve("a", ip("10.0.0.1"), now).unwrap();
        // Not verified yet, and already the last one the limit allows.
        assert!(matches!(t.reserve("a", ip("10.0.0.1"), now), Err(Refusal::LockedOut { .. })));
        assert_eq!(t.reserve("a", ip("10.0.0.9"), now).err(), Some(Refusal::InProgress));
        assert!(t.reserve("b", ip("10.0.0.9"), now).is_ok());
        drop(third);
        // Dropped without an outcome: it stays counted, and the account is free again.
        assert!(matches!(t.reserve("a", ip("10.0.0.1"), now), Err(Refusal::LockedOut { .. })));
        assert!(t.reserve("a", ip("10.0.0.9"), now).is_ok());
    }

    #[test]
    fn success_clears_the_account_at_its_address_only() {
        let t = throttle();
        let now = Utc::now();
        for client in ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"] {
            fail(&t, "a", client, now);
        }
        t.reserve("a", ip("10.0.0.1"), now).unwrap().succeeded();
        // 10.0.0.1 starts over; 10.0.0.2 keeps its two failures; the account keeps all four.
        fail(&t, "a", "10.0.0.1", now);
        fail(&t, "a", "10.0.0.2", now);
        assert_eq!(locked(&t, "a", "10.0.0.2", now), Some(300));
        assert_eq!(locked(&t, "a", "10.0.0.1", now), Some(300), "the account's sixth failure");
    }

    #[test]
    fn a_success_on_the_last_allowed_attempt_lifts_its_own_lockout() {
        let t = throttle();
        let now = Utc::now();
        fail(&t, "a", "10.0.0.1", now);
        fail(&t, "a", "10.0.0.1", now);
        t.reserve("a", ip("10.0.0.1"), now).unwrap().succeeded();
        assert_eq!(locked(&t, "a", "10.0.0.1", now), None);
    }

    #[test]
    fn a_withdrawn_attempt_is_not_counted() {
        let t = throttle();
        let now = Utc::now();
        for _ in 0..10 {
            t.reserve("a", ip("10.0.0.1"), now).unwrap().withdraw();
        }
        assert_eq!(locked(&t, "a", "10.0.0.1", now), None);
    }

    #[test]
    fn each_lockout_is_reported_once() {
        let t = throttle();
        let now = Utc::now();
        assert!(fail(&t, "a", "10.0.0.1", now).is_empty());
        assert!(fail(&t, "a", "10.0.0.1", now).is_empty());
        let reported = fail(&t, "a", "10.0.0.1", now);
        assert_eq!(reported, vec![Key::AccountAddress("a".to_owned(), address_key(ip("10.0.0.1")))]);
        // The address keeps failing on other accounts after its lockout: reported once more only
        // when the address itself locks.
        let mut address_reports = 0;
        for account in ["b", "c", "d", "e", "f"] {
            address_reports +=
                fail(&t, account, "10.0.0.1", now).iter().filter(|k| matches!(k, Key::Address(_))).count();
        }
        assert_eq!(address_reports, 1);
    }
}

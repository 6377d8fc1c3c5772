//! Request budgets per client address, per user and per organization (GCRA token buckets from
//! `governor`), on the API and on the session proxy, each listener with budgets of its own so that
//! a busy session cannot starve the UI. A request over any budget gets `429 rate_limited` with
//! `Retry-After`. The address is the one [`crate::auth::client_ip`] resolves: behind trusted
//! proxies the client's, never an `X-Forwarded-For` an untrusted peer wrote.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;

/// A budget: requests per period on average, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub requests: NonZeroU32,
    pub per: Period,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
}

impl Budget {
    fn quota(self) -> Quota {
        let quota = match self.per {
            Period::Second => Quota::per_second(self.requests),
            Period::Minute => Quota::per_minute(self.requests),
        };
        quota.allow_burst(self.burst)
    }

    const fn new(requests: u32, per: Period, burst: u32) -> Budget {
        match (NonZeroU32::new(requests), NonZeroU32::new(burst)) {
            (Some(requests), Some(burst)) => Budget { requests, per, burst },
            _ => panic!("a budget allows at least one request"),
        }
    }
}

/// `<requests>/s` or `<requests>/min`, then `:<burst>` (default: one second's or minute's worth).
impl FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Budget, String> {
        let invalid =
            || format!("{text:?}: expected <requests>/s or <requests>/min, optionally :<burst>, e.g. 20/s:200");
        let (rate, burst) =
            text.trim().split_once(':').map_or((text.trim(), None), |(rate, burst)| (rate, Some(burst)));
        let (requests, per) = rate.split_once('/').ok_or_else(invalid)?;
        let requests: NonZeroU32 = requests.trim().parse().map_err(|_| invalid())?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Period::Second,
            "m" | "min" | "minute" => Period::Minute,
            _ => return Err(invalid()),
        };
        let burst = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| invalid())?,
            None => requests,
        };
        Ok(Budget { requests, per, burst })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match self.per {
            Period::Second => "s",
            Period::Minute => "min",
        };
        write!(f, "{}/{per}:{}", self.requests, self.burst)
    }
}

/// A budget as a setting: a [`Budget`], or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSetting(pub Option<Budget>);

impl FromStr for BudgetSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<BudgetSetting, String> {
        match text.trim() {
            "off" => Ok(BudgetSetting(None)),
            budget => budget.parse().map(|budget| BudgetSetting(Some(budget))),
        }
    }
}

impl fmt::Display for BudgetSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(budget) => budget.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// The budgets of each listener; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_address: Option<Budget>,
    pub per_user: Option<Budget>,
    pub per_org: Option<Budget>,
}

impl Default for RateLimits {
    /// Generous for people (a page load is tens of requests; a session's streamer a few a
    /// second), tight enough that one client cannot flood the control plane.
    fn default() -> Self {
        RateLimits {
            per_address: Some(Budget::new(100, Period::Second, 1000)),
            per_user: Some(Budget::new(50, Period::Second, 500)),
            per_org: Some(Budget::new(500, Period::Second, 5000)),
        }
    }
}

/// Whose budget ran out: the metric's `scope` label and the error's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Address,
    User,
    Org,
}

impl Scope {
    fn label(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::User => "user",
            Scope::Org => "org",
        }
    }

    fn whose(self) -> &'static str {
        match self {
            Scope::Address => "your network address",
            Scope::User => "your account",
            Scope::Org => "your organization",
        }
    }
}

/// A budget per key. Keys are hashed with aHash, keyed at random per map (addresses come from anyone):
/// SipHash, the standard one, cost the session proxy about 350 instructions per request.
type Keyed<K> = RateLimiter<K, DashMapStateStore<K, ahash::RandomState>, DefaultClock>;

/// One listener's limiters.
pub struct Limiters {
    listener: &'static str,
    address: Option<Keyed<IpAddr>>,
    user: Option<Keyed<Uuid>>,
    org: Option<Keyed<Uuid>>,
}

impl Limiters {
    pub fn new(limits: RateLimits, listener: &'static str) -> Limiters {
        Limiters {
            listener,
            address: keyed(limits.per_address),
            user: keyed(limits.per_user),
            org: keyed(limits.per_org),
        }
    }

    /// Spends one request of the client address's budget.
    pub fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.spend(&self.address, &address.to_canonical(), Scope::Address)
    }

    /// Spends one request of the user's budget and of their org's.
    pub fn check_principal(&self, user_id: Uuid, org_id: Uuid) -> Result<(), ApiError> {
        self.spend(&self.user, &user_id, Scope::User)?;
        self.spend(&self.org, &org_id, Scope::Org)
    }

    fn spend<K: Hash + Eq + Clone>(&self, limiter: &Option<Keyed<K>>, key: &K, scope: Scope) -> Result<(), ApiError> {
        let Some(limiter) = limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| {
            metrics::counter!("streamspace_rate_limited_total", "listener" => self.listener, "scope" => scope.label())
                .increment(1);
            rate_limited(scope, not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Forgets the keys whose buckets are full again, so memory follows the active clients.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.address {
            limiter.retain_recent();
        }
        for limiter in [&self.user, &self.org].into_iter().flatten() {
            limiter.retain_recent();
        }
    }
}

/// Probes and scrapes come from the platform itself, on a schedule: they spend no budget.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The API's per-address budget, spent before anything else is done with the request; the user's
/// and org's are spent once the caller is known ([`crate::auth::Principal`]).
pub async fn limit_api_by_address(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !is_probe(request.uri().path()) {
        let address = crate::context::client_ip(request.extensions(), request.headers(), &app);
        if let Err(limited) = app.api_limits.check_address(address) {
            return limited.into_response();
        }
    }
    next.run(request).await
}

fn keyed<K: Hash + Eq + Clone>(budget: Option<Budget>) -> Option<Keyed<K>> {
    budget.map(|budget| RateLimiter::dashmap_with_hasher(budget.quota(), ahash::RandomState::new()))
}

fn rate_limited(scope: Scope, wait: Duration) -> ApiError {
    // Whole seconds, rounded up: retrying at the advertised time must succeed.
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let message = format!("too many requests from {}; retry in {} s", scope.whose(), retry_after.max(1));
    ApiError {
        retry_after: Some(retry_after.max(1)),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_print() {
        assert_eq!("20/s:200".parse::<Budget>().unwrap(), Budget::new(20, Period::Second, 200));
        assert_eq!("600/min".parse::<Budget>().unwrap(), Budget::new(600, Period::Minute, 600));
        assert_eq!(Budget::new(5, Period::Minute, 2).to_string(), "5/min:2");
        for bad in ["", "20", "0/s", "20/h", "20/s:0", "x/s", "20/s:x"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
        assert_eq!("off".parse::<BudgetSetting>().unwrap(), BudgetSetting(None));
        let default = BudgetSetting(RateLimits::default().per_address);
        assert_eq!(default.to_string().parse::<BudgetSetting>().unwrap(), default);
    }

    #[test]
    fn a_budget_refuses_past_its_burst_and_says_when_to_retry() {
        let limits = RateLimits { per_address: Some(Budget::new(1, Period::Minute, 2)), per_user: None, per_org: None };
        let limiters = Limiters::new(limits, "api");
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(limiters.check_address(client).is_ok());
        assert!(limiters.check_address(client).is_ok());
        let refused = limiters.check_address(client).unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
        assert!((1..=60).contains(&refused.retry_after.unwrap()), "{:?}", refused.retry_after);
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert!(limiters.check_address(mapped).is_err(), "the same client on an IPv6 socket");
        assert!(limiters.check_address("203.0.113.10".parse().unwrap()).is_ok(), "another client");
        assert!(limiters.check_principal(Uuid::now_v7(), Uuid::now_v7()).is_ok(), "budgets turned off");
    }
}

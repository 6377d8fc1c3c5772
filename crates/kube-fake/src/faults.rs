//! Fault injection: failed requests and a paused server, the API server's misbehaviours a controller must survive.

use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use tokio::sync::watch;

use crate::status::ApiError;

/// Requests to fail: those whose method matches (any when None) and whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub method: Option<Method>,
    pub path_contains: String,
    /// How many requests to fail; None fails every matching request until the rules are cleared.
    pub remaining: Option<usize>,
    pub code: StatusCode,
    /// Only requests of the client made by `FakeApiServer::client_named` with this name (None: any client).
    pub client: Option<String>,
}

/// The header that names the client a request comes from (see `FakeApiServer::client_named`).
pub const CLIENT_HEADER: &str = "x-kube-fake-client";

impl FaultRule {
    /// Fails the next `count` requests whose path contains `path_contains`.
    pub fn next(count: usize, path_contains: &str, code: StatusCode) -> Self {
        FaultRule { method: None, path_contains: path_contains.into(), remaining: Some(count), code, client: None }
    }

    /// Fails every request whose path contains `path_contains` until the rules are cleared.
    pub fn always(path_contains: &str, code: StatusCode) -> Self {
        FaultRule { method: None, path_contains: path_contains.into(), remaining: None, code, client: None }
    }

    /// Restricts the rule to one HTTP method.
    pub fn for_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Restricts the rule to the requests of one named client, as if only its network failed.
    pub fn from_client(mut self, name: &str) -> Self {
        self.client = Some(name.into());
        self
    }

    fn matches(&self, method: &Method, path: &str, client: Option<&str>) -> bool {
        self.method.as_ref().is_none_or(|wanted| wanted == method)
            && self.client.as_deref().is_none_or(|wanted| Some(wanted) == client)
            && path.contains(&self.path_contains)
            && self.remaining != Some(0)
    }
}

/// The faults in force on one server.
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    paused: watch::Sender<bool>,
    /// Requests failed so far, so a test can tell its fault was hit.
    injected: Mutex<usize>,
    /// Requests held by a pause right now.
    held: watch::Sender<usize>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Mutex::new(Vec::new()),
            paused: watch::Sender::new(false),
            injected: Mutex::new(0),
            held: watch::Sender::new(0),
        }
    }
}

impl Faults {
    pub fn inject(&self, rule: FaultRule) {
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }

    /// How many requests the rules have failed.
    pub fn injected(&self) -> usize {
        *self.injected.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Holds every request (and every watch event) until `resume`, as an unreachable API server would.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Waits until `count` requests are held by the pause, so a test knows its request reached the server.
    pub async fn wait_for_held(&self, count: usize) {
        let mut held = self.held.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = held.wait_for(|held| *held >= count).await;
    }

    pub(crate) async fn wait_while_paused(&self) {
        let mut paused = self.paused.subscribe();
        if !*paused.borrow() {
            return;
        }
        let _held = Held::count(&self.held);
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = paused.wait_for(|paused| !paused).await;
    }

    /// The failure to answer this request with, if a rule catches it.
    pub(crate) fn check(&self, method: &Method, path: &str, client: Option<&str>) -> Option<ApiError> {
        let mut rules = self.rules.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let rule = rules.iter_mut().find(|rule| rule.matches(method, path, client))?;
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
        }
        *self.injected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) += 1;
        Some(ApiError::injected(rule.code))
    }
}

/// Counts a held request for as long as it waits, also when the client gives up and the wait is dropped.
struct Held<'a>(&'a watch::Sender<usize>);

impl<'a> Held<'a> {
    fn count(held: &'a watch::Sender<usize>) -> Self {
        held.send_modify(|held| *held += 1);
        Held(held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|held| *held -= 1);
    }
}

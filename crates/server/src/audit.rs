//! Writing audit events. Every mutating call and every auth event goes through here.

use serde_json::Value;
use streamspace_store::{NewAuditEvent, User};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Who did it. Unauthenticated events (a failed login) have a name but no id.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<Uuid>,
    pub name: String,
    pub org_id: Option<Uuid>,
}

impl Actor {
    pub fn anonymous(claimed_name: &str) -> Actor {
        Actor { id: None, name: claimed_name.chars().take(128).collect(), org_id: None }
    }

    pub fn system() -> Actor {
        Actor { id: None, name: "system".to_owned(), org_id: None }
    }
}

impl From<&User> for Actor {
    fn from(user: &User) -> Actor {
        Actor { id: Some(user.id), name: user.username.clone(), org_id: Some(user.org_id) }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Actor {
        Actor { id: Some(principal.user_id), name: principal.username.clone(), org_id: Some(principal.org_id) }
    }
}

/// One event to record. `org_id` is the organization the event concerns (whose admins may read
/// it); it defaults to the actor's.
pub struct Event {
    pub action: &'static str,
    pub target: String,
    pub outcome: Outcome,
    pub org_id: Option<Uuid>,
    pub details: Value,
}

impl Event {
    pub fn new(action: &'static str, target: impl Into<String>) -> Event {
        Event { action, target: target.into(), outcome: Outcome::Success, org_id: None, details: Value::Null }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Event {
        self.outcome = outcome;
        self
    }

    /// The org the event concerns; `None` (a global object) leaves it to the actor's org.
    pub fn org(mut self, org_id: impl Into<Option<Uuid>>) -> Event {
        self.org_id = org_id.into();
        self
    }

    pub fn details(mut self, details: Value) -> Event {
        self.details = details;
        self
    }
}

impl App {
    pub async fn audit(&self, meta: &RequestMeta, actor: &Actor, event: Event) -> ApiResult<()> {
        let record = NewAuditEvent {
            time: self.clock.now(),
            actor_id: actor.id,
            actor_name: actor.name.clone(),
            org_id: event.org_id.or(actor.org_id),
            action: event.action.to_owned(),
            target: event.target,
            result: event.outcome.as_str().to_owned(),
            client_ip: Some(meta.client_ip.to_string()),
            user_agent: meta.user_agent.clone(),
            trace_id: meta.trace_id.clone(),
            details: event.details,
        };
        // A head that does not hold is the operator's problem, not the caller's: it is logged and
        // the request fails as an internal error.
        self.store.append_audit(&self.audit_key, record).await.map_err(ApiError::internal)?;
        Ok(())
    }
}

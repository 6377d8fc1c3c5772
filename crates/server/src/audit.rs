//! Writing the audit log. Every mutating call and every auth event goes through here.

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

/// One record for the audit log: an action on a target, with its outcome. `org_id` is the
/// organization it concerns (whose admins may read it); it defaults to the actor's.
pub struct Record {
    pub action: &'static str,
    pub target: String,
    pub outcome: Outcome,
    pub org_id: Option<Uuid>,
    pub details: Value,
}

impl Record {
    pub fn new(action: &'static str, target: impl Into<String>) -> Record {
        Record { action, target: target.into(), outcome: Outcome::Success, org_id: None, details: Value::Null }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Record {
        self.outcome = outcome;
        self
    }

    /// The org the record concerns; `None` (a global object) leaves it to the actor's org.
    pub fn org(mut self, org_id: impl Into<Option<Uuid>>) -> Record {
        self.org_id = org_id.into();
        self
    }

    pub fn details(mut self, details: Value) -> Record {
        self.details = details;
        self
    }
}

impl App {
    pub async fn audit(&self, meta: &RequestMeta, actor: &Actor, record: Record) -> ApiResult<()> {
        let entry = self.audit_entry(meta, actor, record);
        // A head that does not hold is the operator's problem, not the caller's: it is logged and
        // the request fails as an internal error.
        self.store.append_audit(&self.audit_key, entry).await.map_err(ApiError::internal)?;
        Ok(())
    }

    /// What the audit chain gets for `record`, done by `actor` in the request `meta` describes, now.
    pub fn audit_entry(&self, meta: &RequestMeta, actor: &Actor, record: Record) -> NewAuditEvent {
        NewAuditEvent {
            time: self.clock.now(),
            actor_id: actor.id,
            actor_name: actor.name.clone(),
            org_id: record.org_id.or(actor.org_id),
            action: record.action.to_owned(),
            target: record.target,
            result: record.outcome.as_str().to_owned(),
            client_ip: Some(meta.client_ip.to_string()),
            user_agent: meta.user_agent.clone(),
            trace_id: meta.trace_id.clone(),
            details: record.details,
        }
    }
}

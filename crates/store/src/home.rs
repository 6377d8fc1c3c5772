//! Persistent homes (ADR 0032): which home a template's sessions mount, and the homes themselves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Which persistent home a template's sessions mount at their image's home directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HomeScope {
    /// None: the home lives and dies with the session (kept while it hibernates).
    #[default]
    None,
    /// The user's own home, shared by every template that mounts it.
    User,
    /// A home of the user's for this template alone.
    Template,
}

/// A template's home setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateHome {
    pub scope: HomeScope,
    /// The most a home created for this template may hold, where the agent's storage enforces it.
    pub size_mb: Option<i64>,
}

/// One user's persistent home. It lives on the agent whose session first mounted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Home {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    /// The template whose sessions alone mount it; `None`: the user's own home.
    pub template_id: Option<Uuid>,
    /// Where its volume is; `None` until a session has mounted it.
    pub agent_id: Option<Uuid>,
    pub size_mb: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set when its user was deleted: the home and its volume go at this time.
    pub delete_after: Option<DateTime<Utc>>,
    /// The space its files take, as last reported by the agent that holds it; `None`: not measured (yet, or
    /// ever: the Kubernetes runtime cannot read a claim's usage).
    pub used_bytes: Option<i64>,
    /// When the agent reported `used_bytes`.
    pub usage_measured_at: Option<DateTime<Utc>>,
}

/// A home to find or create: one per user and template scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHome {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub template_id: Option<Uuid>,
    pub size_mb: Option<i64>,
}

//! What the API and the live-update stream show of sessions and agents: the wire views, with the
//! names and counts they gather from the store.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use streamspace_proto::hub::{Capacity, Platform};
use streamspace_proto::{SessionPhase, SessionState};
use streamspace_store::{Agent, CapacityLimit, Scope, Session};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::recent::Recent;
use crate::timestamps;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub owner_username: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub state: SessionState,
    pub agent_id: Option<Uuid>,
    /// Start progress: how far the start has come, while `scheduled` or `starting`.
    pub phase: Option<SessionPhase>,
    /// Percent done within the phase, where known (image pulls).
    pub progress: Option<i32>,
    pub failure_reason: Option<String>,
    #[serde(serialize_with = "timestamps::write")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamps::write")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamps::write_optional")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamps::write_optional")]
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Resolves owner and template names for views, each at most once per request.
#[derive(Default)]
pub struct Names {
    users: HashMap<Uuid, String>,
    /// Name and display name.
    templates: HashMap<Uuid, (String, String)>,
}

impl Names {
    /// Names as `principal` sees them, who knows their own username already.
    pub fn for_caller(principal: &Principal) -> Names {
        Names { users: HashMap::from([(principal.user_id, principal.username.clone())]), ..Names::default() }
    }

    /// The user's username; empty for a user who is gone.
    pub async fn username(&mut self, app: &App, user_id: Uuid) -> ApiResult<String> {
        if let Entry::Vacant(slot) = self.users.entry(user_id) {
            let user = app.store.get_user(Scope::Platform, user_id).await?;
            slot.insert(user.map(|u| u.username).unwrap_or_default());
        }
        Ok(self.users[&user_id].clone())
    }

    pub async fn view(&mut self, app: &App, session: Session) -> ApiResult<SessionView> {
        let owner_username = self.username(app, session.owner_id).await?;
        if let Entry::Vacant(slot) = self.templates.entry(session.template_id) {
            let names = match app.template_names.get(&session.template_id) {
                Some(names) => names,
                None => {
                    let ticket = app.template_names.ticket();
                    let template = app.store.get_template(Scope::Platform, session.template_id).await?;
                    let names = template.map(|t| (t.name, t.display_name)).unwrap_or_default();
                    app.template_names.keep(ticket, session.template_id, names.clone());
                    names
                }
            };
            slot.insert(names);
        }
        Ok(SessionView {
            owner_username,
            template_name: self.templates[&session.template_id].0.clone(),
            template_display_name: self.templates[&session.template_id].1.clone(),
            id: session.id,
            org_id: session.org_id,
            owner_id: session.owner_id,
            template_id: session.template_id,
            state: session.state,
            agent_id: session.agent_id,
            phase: session.phase.as_deref().and_then(SessionPhase::parse),
            progress: session.progress,
            failure_reason: session.failure_reason,
            created_at: session.created_at,
            updated_at: session.updated_at,
            started_at: session.started_at,
            stopped_at: session.stopped_at,
        })
    }
}

/// How long views trust a template's names once read. Every page of sessions names their templates,
/// which are renamed rarely: a rename shows at once on the replica that made it and within this time
/// on the others.
pub const TEMPLATE_NAMES_FRESH_FOR: Duration = Duration::from_secs(5);

/// Templates' names (name, display name) as recently read, for views.
pub type TemplateNames = Recent<Uuid, (String, String)>;

impl SessionView {
    pub async fn load(app: &App, session: Session) -> ApiResult<SessionView> {
        Names::default().view(app, session).await
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Offline,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub platform: Platform,
    /// Set at registration; the scheduler matches these over `reported_labels`.
    pub labels: BTreeMap<String, String>,
    /// What the agent announced, without reserved (`streamspace.`) keys.
    pub reported_labels: BTreeMap<String, String>,
    pub status: AgentStatus,
    pub version: Option<String>,
    /// What the scheduler places within: the agent's report, capped by `capacity_limit`.
    pub capacity: Capacity,
    pub capacity_limit: CapacityLimit,
    /// Networks the agent's session endpoints must be in; empty for any allowed address.
    #[schema(value_type = Vec<String>)]
    pub endpoint_cidrs: Vec<String>,
    /// Sessions placed on the agent that have not ended.
    pub session_count: i64,
    #[serde(serialize_with = "timestamps::write_optional")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamps::write")]
    pub created_at: DateTime<Utc>,
}

impl AgentView {
    pub async fn load(app: &App, agent: Agent) -> ApiResult<AgentView> {
        let session_count = app.store.list_agent_sessions(agent.id).await?.len() as i64;
        Ok(AgentView::with_count(app, agent, session_count))
    }

    pub fn with_count(app: &App, agent: Agent, session_count: i64) -> AgentView {
        AgentView {
            status: if app.agent_online(&agent) { AgentStatus::Online } else { AgentStatus::Offline },
            id: agent.id,
            name: agent.name,
            platform: agent.platform,
            labels: agent.labels,
            reported_labels: agent.reported_labels,
            version: agent.version,
            capacity: agent.capacity,
            capacity_limit: agent.capacity_limit,
            endpoint_cidrs: agent.endpoint_cidrs,
            session_count,
            last_heartbeat_at: agent.last_heartbeat_at,
            created_at: agent.created_at,
        }
    }
}

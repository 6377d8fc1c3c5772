//! Agents: registration (a token shown once), status, token rotation and removal.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_proto::hub::Platform;
use streamspace_store::{Agent, CapacityLimit, NewAgent};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, List, Path, validate_slug};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::auth::secrets::{random_token, sha256_hex};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::hub::{AGENT_TOKEN_PREFIX, BUILTIN_LABEL};
use crate::lifecycle::{self, Detail};
use crate::orchestrator::Cause;
use crate::views::AgentView;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, delete_agent))
        .routes(routes!(rotate_token))
        .routes(routes!(crate::hub::socket::connect))
}

#[derive(Deserialize, ToSchema)]
pub struct NewAgentRequest {
    pub name: String,
    pub platform: Platform,
    /// Only an administrator sets labels under `streamspace.`: an agent's own are ignored.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The most the agent may claim of itself; without `max_sessions`, at most 100 sessions.
    #[serde(default)]
    pub capacity_limit: CapacityLimit,
    /// When set, session endpoints outside these networks are refused (e.g. `["10.213.0.0/16"]`).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub endpoint_cidrs: Vec<IpNet>,
}

fn validate_capacity_limit(limit: &CapacityLimit) -> ApiResult<()> {
    let fields =
        [("max_sessions", limit.max_sessions), ("cpu_millis", limit.cpu_millis), ("memory_mb", limit.memory_mb)];
    match fields.into_iter().find(|(_, value)| value.is_some_and(|v| v <= 0)) {
        Some((field, _)) => Err(ApiError::validation(format!("capacity_limit.{field} must be positive"))),
        None => Ok(()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgentWithToken {
    #[serde(flatten)]
    pub agent: AgentView,
    /// Give this to the agent (`--token`). Shown only now; only its hash is kept.
    pub token: String,
}

/// Agents are the platform's: to anyone else, a named agent does not exist.
async fn agent_or_404(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Agent> {
    let agent = if principal.may_see_agents() { app.store.get_agent(id).await? } else { None };
    agent.ok_or_else(|| ApiError::not_found("agent"))
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = List<AgentView>), (status = 403, body = ErrorBody)))]
async fn list_agents(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<List<AgentView>>> {
    principal.require_platform_admin()?;
    // One read of the active sessions counts them for every agent.
    let mut counts: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for agent_id in app.store.list_active_sessions().await?.into_iter().filter_map(|s| s.agent_id) {
        *counts.entry(agent_id).or_default() += 1;
    }
    let agents = app.store.list_agents().await?;
    let items = agents
        .into_iter()
        .map(|agent| {
            let count = counts.get(&agent.id).copied().unwrap_or(0);
            AgentView::with_count(&app, agent, count)
        })
        .collect();
    Ok(axum::Json(List::new(items, None::<String>)))
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = NewAgentRequest,
    responses((status = 201, body = AgentWithToken), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_agent(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewAgentRequest>,
) -> ApiResult<(StatusCode, axum::Json<AgentWithToken>)> {
    principal.require_platform_admin()?;
    validate_slug("name", &body.name)?;
    validate_capacity_limit(&body.capacity_limit)?;
    let token = random_token(AGENT_TOKEN_PREFIX, 32);
    let agent = app
        .store
        .create_agent(NewAgent {
            name: body.name,
            platform: body.platform,
            labels: body.labels,
            token_hash: sha256_hex(&token),
            capacity_limit: body.capacity_limit,
            endpoint_cidrs: body.endpoint_cidrs.iter().map(IpNet::to_string).collect(),
        })
        .await?;
    let record = Record::new("agent.create", format!("agent:{}", agent.id)).details(json!({"name": agent.name}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok((StatusCode::CREATED, axum::Json(AgentWithToken { agent: AgentView::load(&app, agent).await?, token })))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
async fn get_agent(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AgentView>> {
    let agent = agent_or_404(&app, &principal, id).await?;
    Ok(axum::Json(AgentView::load(&app, agent).await?))
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted and disconnected"), (status = 404, body = ErrorBody)))]
async fn delete_agent(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let agent = agent_or_404(&app, &principal, id).await?;
    app.store.delete_agent(id).await?;
    app.kick_agent(id).await;
    let actor = Actor::from(&principal);
    let cause = Cause { actor: &actor, meta: &meta };
    for session in app.store.list_agent_sessions(id).await? {
        // Nothing will run or stop these any more.
        app.advance(&session, lifecycle::Trigger::Fail, Detail::reason("its agent was deleted"), &cause).await?;
    }
    let record = Record::new("agent.delete", format!("agent:{id}")).details(json!({"name": agent.name}));
    app.audit(&meta, &actor, record).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/agents/{id}/token", tag = "agents", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "A new token; the old one is revoked and its connection closed", body = AgentWithToken),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The built-in agent of `streamspace up` is re-keyed by restarting it", body = ErrorBody),
    ))]
async fn rotate_token(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AgentWithToken>> {
    let agent = agent_or_404(&app, &principal, id).await?;
    if agent.labels.get(BUILTIN_LABEL).is_some_and(|v| v == "true") {
        return Err(ApiError::conflict(
            "this is the built-in agent of `streamspace up`: it gets a new token when `streamspace up` restarts \
             after its token file (local-agent.token in the data directory) is removed",
        ));
    }
    let token = random_token(AGENT_TOKEN_PREFIX, 32);
    app.store.set_agent_token(id, &sha256_hex(&token)).await?;
    app.kick_agent(id).await;
    app.audit(&meta, &Actor::from(&principal), Record::new("agent.token_rotate", format!("agent:{id}"))).await?;
    let agent = app.store.get_agent(id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(axum::Json(AgentWithToken { agent: AgentView::load(&app, agent).await?, token }))
}

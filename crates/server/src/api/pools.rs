//! Warm pools (ADR 0034): how many containers each agent keeps started for a template, and what
//! is warm now, for administrators.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{PoolMember, TemplatePool};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::templates::visible_template;
use super::{Json, Path};
use crate::app::AppState;
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// More warm containers per agent than this is a typo, not a plan.
pub const MAX_POOL_SIZE: i64 = 20;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_pools)).routes(routes!(set_pool))
}

#[derive(Deserialize, ToSchema)]
pub struct PoolRequest {
    /// Warm containers each fitting agent keeps for the template (0 removes the pool).
    pub size: i64,
}

/// One agent's part of a pool.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct PoolAgentView {
    pub agent_id: Uuid,
    /// Running and unclaimed: the next launches get these.
    pub ready: i64,
    /// Started, the streamer not answering yet.
    pub starting: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    pub template_id: Uuid,
    pub template_name: String,
    pub size: i64,
    pub agents: Vec<PoolAgentView>,
}

impl PoolView {
    fn new(pool: &TemplatePool, template_name: String, members: &[PoolMember]) -> PoolView {
        let mut agents: BTreeMap<Uuid, PoolAgentView> = BTreeMap::new();
        for member in members.iter().filter(|m| m.template_id == pool.template_id) {
            let agent = agents
                .entry(member.agent_id)
                .or_insert_with(|| PoolAgentView { agent_id: member.agent_id, ..Default::default() });
            if member.is_ready() {
                agent.ready += 1;
            } else {
                agent.starting += 1;
            }
        }
        PoolView {
            template_id: pool.template_id,
            template_name,
            size: pool.size,
            agents: agents.into_values().collect(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/pools", tag = "templates",
    responses((status = 200, description = "The pools of the templates the caller may manage", body = Vec<PoolView>), (status = 403, body = ErrorBody)))]
async fn list_pools(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<Vec<PoolView>>> {
    principal.require_admin()?;
    let members = app.store.list_pool_members().await?;
    let mut views = Vec::new();
    for pool in app.store.list_template_pools().await? {
        let template = app.store.get_template(principal.scope(), pool.template_id).await?;
        if let Some(template) = template.filter(|t| principal.require_template_manager(t.org_id).is_ok()) {
            views.push(PoolView::new(&pool, template.name, &members));
        }
    }
    Ok(axum::Json(views))
}

#[utoipa::path(put, path = "/api/v1/templates/{id}/pool", tag = "templates", params(("id" = Uuid, Path)), request_body = PoolRequest,
    responses((status = 200, body = PoolView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`template_keeps_home`: the template's sessions mount a home", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_pool(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<PoolRequest>,
) -> ApiResult<axum::Json<PoolView>> {
    let template = visible_template(&app, &principal, id).await?;
    principal.require_template_manager(template.org_id)?;
    if !(0..=MAX_POOL_SIZE).contains(&body.size) {
        return Err(ApiError::validation(format!("size must be from 0 to {MAX_POOL_SIZE}")));
    }
    if body.size > 0 && !crate::pools::poolable(&template) {
        let message = "a template that keeps a home cannot have a warm pool: a warm container cannot mount the home of a user it does not know yet";
        return Err(ApiError::new(StatusCode::CONFLICT, "template_keeps_home", message));
    }
    let pool = app.store.set_template_pool(template.id, body.size, app.clock.now()).await?;
    let record = Record::new("template.pool", format!("template:{id}"))
        .org(template.org_id)
        .details(json!({"name": template.name, "size": body.size}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    let members = app.store.list_pool_members().await?;
    Ok(axum::Json(PoolView::new(&pool, template.name, &members)))
}

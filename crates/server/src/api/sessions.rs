//! Sessions: one running application per person, driven through the lifecycle state machine.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_proto::SessionState;
use streamspace_store::{NewSession, Scope, Session, SessionFilter, Template, Ticket, Usage};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, List, PageQuery, Path, Query};
use crate::app::{App, AppState};
use crate::audit::{Actor, Outcome, Record};
use crate::auth::Principal;
use crate::auth::secrets::{random_token, sha256_hex};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::lifecycle;
use crate::orchestrator::Cause;
use crate::views::{Names, SessionView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, create_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(hibernate_session))
        .routes(routes!(wake_session))
        .routes(routes!(connect_session))
}

/// A session the caller may see: admins see their scope, members their own sessions.
pub async fn visible_session(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Session> {
    let session = app.store.get_session(principal.scope(), id).await?;
    session.filter(|s| principal.may_see_session(s.org_id, s.owner_id)).ok_or_else(|| ApiError::not_found("session"))
}

#[derive(Deserialize, ToSchema)]
pub struct NewSessionRequest {
    /// A template id or name, among the templates the caller's org can use.
    pub template: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    pub state: Option<SessionState>,
    /// Administrators: only this user's sessions.
    pub owner_id: Option<Uuid>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn resolve_template(app: &App, principal: &Principal, reference: &str) -> ApiResult<Template> {
    // Sessions run in the caller's own org, so only templates that org can use qualify.
    let scope = Scope::Org(principal.org_id);
    let template = match Uuid::parse_str(reference) {
        Ok(id) => app.store.get_template(scope, id).await?,
        Err(_) => app.store.get_template_by_name(scope, reference).await?,
    };
    // As in listings, people who cannot manage templates do not see disabled ones.
    let template = template
        .filter(|t| principal.may_see_template(t.org_id, t.enabled))
        .ok_or_else(|| ApiError::not_found("template"))?;
    if !template.enabled {
        return Err(ApiError::validation(format!("template {} is disabled", template.name)));
    }
    Ok(template)
}

/// The first quota the new session would break, if any.
fn quota_breach(quotas: &streamspace_store::Quotas, usage: &Usage, template: &Template) -> Option<String> {
    let checks = [
        (quotas.max_sessions, usage.org_sessions + 1, "sessions in the organization"),
        (quotas.max_sessions_per_user, usage.user_sessions + 1, "sessions per user"),
        (quotas.max_cpu_millis, usage.org_cpu_millis + template.cpu_millis, "CPU millicores in the organization"),
        (quotas.max_memory_mb, usage.org_memory_mb + template.memory_mb, "MiB of memory in the organization"),
    ];
    checks
        .into_iter()
        .find(|(limit, wanted, _)| limit.is_some_and(|limit| *wanted > limit))
        .map(|(limit, _, what)| format!("quota exceeded: at most {} {what}", limit.unwrap_or_default()))
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = NewSessionRequest,
    responses(
        (status = 202, description = "Accepted; the session starts in the background", body = SessionView),
        (status = 403, description = "`quota_exceeded`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn create_session(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewSessionRequest>,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    let template = resolve_template(&app, &principal, body.template.trim()).await?;
    let org = app.store.get_org(Scope::Platform, principal.org_id).await?.ok_or_else(ApiError::unauthorized)?;
    let usage = app.store.usage(principal.org_id, principal.user_id).await?;
    if let Some(message) = quota_breach(&org.quotas, &usage, &template) {
        let record = Record::new("session.create", format!("template:{}", template.id)).outcome(Outcome::Denied);
        app.audit(&meta, &Actor::from(&principal), record.details(json!({"reason": message}))).await?;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", message));
    }
    let new = NewSession {
        org_id: principal.org_id,
        owner_id: principal.user_id,
        template_id: template.id,
        cpu_millis: template.cpu_millis,
        memory_mb: template.memory_mb,
    };
    let actor = Actor::from(&principal);
    let session = app.launch(&template, new, &Cause { actor: &actor, meta: &meta }).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(SessionView::load(&app, session).await?)))
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, description = "Administrators see their scope, members their own sessions", body = List<SessionView>)))]
async fn list_sessions(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<SessionQuery>,
) -> ApiResult<axum::Json<List<SessionView>>> {
    let owner_id = principal.session_owner_filter(query.owner_id);
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.page()?;
    let found =
        app.store.list_sessions(principal.scope(), SessionFilter { owner_id, state: query.state }, page).await?;
    let mut names = Names::for_caller(&principal);
    let mut items = Vec::with_capacity(found.items.len());
    for session in found.items {
        items.push(names.view(&app, session).await?);
    }
    Ok(axum::Json(List::new(items, found.next)))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Also for the people the session is shared with", body = SessionView), (status = 404, body = ErrorBody)))]
async fn get_session(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<SessionView>> {
    let session = super::sharing::seen_session(&app, &principal, id).await?;
    Ok(axum::Json(Names::for_caller(&principal).view(&app, session).await?))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Stopping; the session is removed once its agent confirms", body = SessionView),
        (status = 404, body = ErrorBody),
    ))]
async fn delete_session(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    request(&app, &meta, &principal, id, lifecycle::Trigger::Stop).await
}

/// A person's request to stop, hibernate or wake a session they may see.
async fn request(
    app: &App,
    meta: &RequestMeta,
    principal: &Principal,
    id: Uuid,
    trigger: lifecycle::Trigger,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    let session = visible_session(app, principal, id).await?;
    let actor = Actor::from(principal);
    let action = match trigger {
        lifecycle::Trigger::Hibernate => "session.hibernate",
        lifecycle::Trigger::Wake => "session.wake",
        _ => "session.stop",
    };
    let org_id = session.org_id;
    let result = app.advance_requested(session, trigger, &Cause { actor: &actor, meta }).await;
    let audit = Record::new(action, format!("session:{id}")).org(org_id);
    let audit = match &result {
        Ok(_) => audit,
        Err(err) => audit.outcome(Outcome::Denied).details(json!({"reason": err.message})),
    };
    app.audit(meta, &actor, audit).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(SessionView::load(app, result?).await?)))
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/hibernate", tag = "sessions", params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Hibernating: the container is stopped and kept", body = SessionView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`invalid_state`: only running sessions hibernate", body = ErrorBody),
    ))]
async fn hibernate_session(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    request(&app, &meta, &principal, id, lifecycle::Trigger::Hibernate).await
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/wake", tag = "sessions", params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Starting again", body = SessionView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`invalid_state`: only hibernated sessions wake", body = ErrorBody),
    ))]
async fn wake_session(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    request(&app, &meta, &principal, id, lifecycle::Trigger::Wake).await
}

#[derive(Serialize, ToSchema)]
pub struct ConnectUrl {
    /// Open this (on the session's own origin) within a minute; it works once.
    pub url: String,
    /// What the session may exchange with this viewer's browser (the org's and the template's
    /// policies, and nothing that carries input or data for a guest who only watches): the UI grants
    /// the session's frame only these permissions.
    pub policy: streamspace_store::SessionPolicy,
    /// Viewers see the session and cannot type into it.
    pub role: crate::auth::policy::SessionRole,
}

/// How long a connect ticket stays valid.
pub const TICKET_TTL_SECS: i64 = 60;

#[utoipa::path(post, path = "/api/v1/sessions/{id}/connect", tag = "sessions", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "A single-use URL that opens the session", body = ConnectUrl),
        (status = 403, description = "`not_owner`: only the session's owner and its guests open it; administrators may stop or hibernate it", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session has ended", body = ErrorBody),
    ))]
async fn connect_session(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ConnectUrl>> {
    let (session, role) = super::sharing::openable_session(&app, &principal, id).await?;
    if session.state.is_terminal() {
        return Err(ApiError::new(StatusCode::CONFLICT, "invalid_state", format!("the session is {}", session.state)));
    }
    let ticket = random_token("sst_", 32);
    app.store
        .create_ticket(Ticket {
            token_hash: sha256_hex(&ticket),
            session_id: id,
            user_id: principal.user_id,
            expires_at: app.clock.now() + chrono::Duration::seconds(TICKET_TTL_SECS),
        })
        .await?;
    let record = Record::new("session.connect", format!("session:{id}")).org(session.org_id);
    let record = record.details(json!({"role": role.as_str()}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    let url = format!("{}?ticket={ticket}", crate::proxy::session_url(&app.urls, id));
    let policy = crate::session_policy::effective(app.store.as_ref(), session.org_id, session.template_id).await?;
    let policy = if role.has_input() { policy } else { policy.watching_only() };
    Ok(axum::Json(ConnectUrl { url, policy, role }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamspace_store::Quotas;

    fn template(cpu: i64, mem: i64) -> Template {
        Template {
            id: Uuid::now_v7(),
            org_id: None,
            name: "t".into(),
            display_name: "T".into(),
            description: String::new(),
            icon: String::new(),
            image: "img".into(),
            env: Default::default(),
            cpu_millis: cpu,
            memory_mb: mem,
            shm_mb: 64,
            port: 8080,
            tags: vec![],
            enabled: true,
            egress_allow: vec![],
            session_policy: Default::default(),
            home: Default::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn quotas_allow_up_to_the_limit_and_name_the_first_breach() {
        let usage = Usage { org_sessions: 2, user_sessions: 1, org_cpu_millis: 3000, org_memory_mb: 1024 };
        let unlimited = Quotas::default();
        assert_eq!(quota_breach(&unlimited, &usage, &template(1000, 512)), None);
        let exact = Quotas {
            max_sessions: Some(3),
            max_sessions_per_user: Some(2),
            max_cpu_millis: Some(4000),
            max_memory_mb: Some(1536),
        };
        assert_eq!(quota_breach(&exact, &usage, &template(1000, 512)), None);
        let breach = quota_breach(&exact, &usage, &template(1001, 512)).unwrap();
        assert!(breach.contains("CPU"), "{breach}");
        let per_user = Quotas { max_sessions_per_user: Some(1), ..Quotas::default() };
        assert!(quota_breach(&per_user, &usage, &template(1, 1)).unwrap().contains("per user"));
    }
}

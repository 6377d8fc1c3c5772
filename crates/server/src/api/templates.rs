//! Templates: what a session runs (image, limits, environment).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use streamspace_proto::security;
use streamspace_store::{NewTemplate, SessionPolicy, Template, TemplateHome, TemplatePatch};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, List, PageQuery, Path, Query, validate_slug};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::template_defaults;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_templates, create_template)).routes(routes!(
        get_template,
        update_template,
        delete_template
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewTemplateRequest {
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// A URL or a `data:` URL.
    #[serde(default)]
    pub icon: String,
    pub image: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_cpu")]
    pub cpu_millis: i64,
    #[serde(default = "default_memory")]
    pub memory_mb: i64,
    #[serde(default = "default_shm")]
    pub shm_mb: i64,
    #[serde(default = "default_port")]
    pub port: i32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Platform administrators only: networks (CIDRs) the template's sessions may reach although the platform's
    /// egress deny list (private, shared and link-local ranges) covers them.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub egress_allow: Vec<IpNet>,
    /// What the template's sessions may exchange with the viewer's browser, within the org's policy.
    #[serde(default)]
    pub session_policy: SessionPolicy,
    /// Which persistent home the template's sessions mount (none unless asked).
    #[serde(default)]
    pub home: TemplateHome,
    /// Platform administrators: the owning org, or absent for a global template. Org
    /// administrators always create templates in their own org.
    pub org_id: Option<Uuid>,
}

fn default_cpu() -> i64 {
    template_defaults::CPU_MILLIS
}
fn default_memory() -> i64 {
    template_defaults::MEMORY_MB
}
fn default_shm() -> i64 {
    template_defaults::SHM_MB
}
fn default_port() -> i32 {
    template_defaults::PORT
}
fn default_enabled() -> bool {
    true
}

/// Checks the fields people get wrong; returns the first problem found.
fn validate_fields(
    display_name: Option<&str>,
    image: Option<&str>,
    env: Option<&BTreeMap<String, String>>,
    limits: [(&str, Option<i64>); 4],
    port: Option<i32>,
    tags: Option<&[String]>,
) -> ApiResult<()> {
    if display_name.is_some_and(|d| d.trim().is_empty() || d.chars().count() > 100) {
        return Err(ApiError::validation("display_name must be 1-100 characters"));
    }
    if image.is_some_and(|i| i.trim().is_empty() || i.len() > 255 || i.chars().any(char::is_whitespace)) {
        return Err(ApiError::validation("image must be an image reference such as streamspace/chromium:latest"));
    }
    let valid_env_name = |k: &str| {
        !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if let Some(key) = env.and_then(|env| env.keys().find(|k| !valid_env_name(k))) {
        return Err(ApiError::validation(format!(
            "env name {key:?} must be letters, digits and '_', not starting with a digit"
        )));
    }
    if let Some((field, _)) = limits.iter().find(|(_, v)| v.is_some_and(|v| v <= 0)) {
        return Err(ApiError::validation(format!("{field} must be positive")));
    }
    if port.is_some_and(|p| !(1..=65535).contains(&p)) {
        return Err(ApiError::validation("port must be 1-65535"));
    }
    if tags.is_some_and(|tags| tags.len() > 20 || tags.iter().any(|t| t.is_empty() || t.chars().count() > 40)) {
        return Err(ApiError::validation("at most 20 tags of 1-40 characters"));
    }
    Ok(())
}

/// The most CIDRs one allow-list may hold: each is a firewall rule on every session.
const MAX_EGRESS_ALLOW: usize = 64;

/// Checks an egress allow-list. Only platform administrators set one: a tenant opening private ranges would
/// reach the platform's own network.
pub(crate) fn validate_egress_allow(principal: &Principal, allow: &[IpNet]) -> ApiResult<()> {
    principal.require_platform_admin()?;
    if allow.len() > MAX_EGRESS_ALLOW {
        return Err(ApiError::validation(format!("egress_allow holds at most {MAX_EGRESS_ALLOW} networks")));
    }
    for net in allow {
        security::check_allowed(*net).map_err(|error| ApiError::validation(format!("egress_allow: {error}")))?;
    }
    Ok(())
}

pub async fn visible_template(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Template> {
    let template = app.store.get_template(principal.scope(), id).await?;
    // People who cannot manage templates do not see disabled ones.
    template.filter(|t| principal.may_see_template(t.org_id, t.enabled)).ok_or_else(|| ApiError::not_found("template"))
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(PageQuery),
    responses((status = 200, description = "The caller's org's templates and the global ones", body = List<Template>)))]
async fn list_templates(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<List<Template>>> {
    let page = app.store.list_templates(principal.scope(), query.page()?).await?;
    let items = page.items.into_iter().filter(|t| principal.may_see_template(t.org_id, t.enabled)).collect();
    Ok(axum::Json(List::new(items, page.next)))
}

#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = NewTemplateRequest,
    responses((status = 201, body = Template), (status = 403, body = ErrorBody), (status = 404, description = "No such organization", body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_template(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewTemplateRequest>,
) -> ApiResult<(StatusCode, axum::Json<Template>)> {
    principal.require_admin()?;
    let org_id = principal.new_template_org(body.org_id);
    if let Some(org_id) = org_id {
        app.store.get_org(principal.scope(), org_id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    }
    validate_slug("name", &body.name)?;
    let limits = [
        ("cpu_millis", Some(body.cpu_millis)),
        ("memory_mb", Some(body.memory_mb)),
        ("shm_mb", Some(body.shm_mb)),
        ("home.size_mb", body.home.size_mb),
    ];
    validate_fields(
        Some(&body.display_name),
        Some(&body.image),
        Some(&body.env),
        limits,
        Some(body.port),
        Some(&body.tags),
    )?;
    if !body.egress_allow.is_empty() {
        validate_egress_allow(&principal, &body.egress_allow)?;
    }
    let template = app
        .store
        .create_template(NewTemplate {
            org_id,
            name: body.name,
            display_name: body.display_name,
            description: body.description,
            icon: body.icon,
            image: body.image,
            env: body.env,
            cpu_millis: body.cpu_millis,
            memory_mb: body.memory_mb,
            shm_mb: body.shm_mb,
            port: body.port,
            tags: body.tags,
            enabled: body.enabled,
            egress_allow: body.egress_allow,
            session_policy: body.session_policy,
            home: body.home,
        })
        .await?;
    let record = Record::new("template.create", format!("template:{}", template.id))
        .org(org_id)
        .details(json!({"name": template.name, "image": template.image}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok((StatusCode::CREATED, axum::Json(template)))
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    responses((status = 200, body = Template), (status = 404, body = ErrorBody)))]
async fn get_template(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Template>> {
    Ok(axum::Json(visible_template(&app, &principal, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)), request_body = TemplatePatch,
    responses((status = 200, body = Template), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_template(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(patch): Json<TemplatePatch>,
) -> ApiResult<axum::Json<Template>> {
    let current = visible_template(&app, &principal, id).await?;
    principal.require_template_manager(current.org_id)?;
    let limits = [
        ("cpu_millis", patch.cpu_millis),
        ("memory_mb", patch.memory_mb),
        ("shm_mb", patch.shm_mb),
        ("home.size_mb", patch.home.and_then(|home| home.size_mb)),
    ];
    validate_fields(
        patch.display_name.as_deref(),
        patch.image.as_deref(),
        patch.env.as_ref(),
        limits,
        patch.port,
        patch.tags.as_deref(),
    )?;
    if let Some(allow) = &patch.egress_allow {
        validate_egress_allow(&principal, allow)?;
    }
    let template = app
        .store
        .update_template(principal.scope(), id, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("template"))?;
    app.template_names.forget(&id);
    let record = Record::new("template.update", format!("template:{id}"))
        .org(template.org_id)
        .details(json!({"name": template.name}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(axum::Json(template))
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_template(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let current = visible_template(&app, &principal, id).await?;
    principal.require_template_manager(current.org_id)?;
    if !app.store.delete_template(principal.scope(), id).await? {
        return Err(ApiError::not_found("template"));
    }
    app.template_names.forget(&id);
    let record = Record::new("template.delete", format!("template:{id}"))
        .org(current.org_id)
        .details(json!({"name": current.name}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(StatusCode::NO_CONTENT)
}

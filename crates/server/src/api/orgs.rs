//! Organizations: the tenants.

use axum::extract::State;
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;
use streamspace_store::{Org, OrgPatch, Quotas, SessionPolicy, SsoMfaPolicy};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::templates::validate_egress_allow;
use super::{Json, List, PageQuery, Path, Query, double_option, validate_slug};
use crate::app::AppState;
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_orgs, create_org)).routes(routes!(get_org, update_org, delete_org))
}

#[derive(Deserialize, ToSchema)]
pub struct NewOrgRequest {
    pub name: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct OrgPatchRequest {
    /// Platform administrators only.
    pub name: Option<String>,
    pub mfa_required: Option<bool>,
    /// What the org's sessions may exchange with the viewer's browser; replaces the whole policy.
    pub session_policy: Option<SessionPolicy>,
    /// Quotas: platform administrators only; `null` means unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_sessions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_sessions_per_user: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_cpu_millis: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_memory_mb: Option<Option<i64>>,
    /// Platform administrators only: networks (CIDRs) every session of the org may reach although the platform's
    /// egress deny list covers them; merged with the template's. Replaces the whole list.
    #[schema(value_type = Option<Vec<String>>)]
    pub egress_allow: Option<Vec<IpNet>>,
    /// Whether an identity provider's assertion of a second factor counts as MFA (`trust_idp`) or
    /// users with TOTP are still asked for it after an SSO sign-in (`require_totp`).
    pub sso_mfa: Option<SsoMfaPolicy>,
}

impl OrgPatchRequest {
    fn touches_quotas(&self) -> bool {
        self.max_sessions.is_some()
            || self.max_sessions_per_user.is_some()
            || self.max_cpu_millis.is_some()
            || self.max_memory_mb.is_some()
    }

    fn quotas_over(&self, current: Quotas) -> ApiResult<Quotas> {
        let pick = |patch: Option<Option<i64>>, current: Option<i64>, field: &str| match patch {
            Some(Some(n)) if n < 0 => Err(ApiError::validation(format!("{field} must not be negative"))),
            Some(value) => Ok(value),
            None => Ok(current),
        };
        Ok(Quotas {
            max_sessions: pick(self.max_sessions, current.max_sessions, "max_sessions")?,
            max_sessions_per_user: pick(
                self.max_sessions_per_user,
                current.max_sessions_per_user,
                "max_sessions_per_user",
            )?,
            max_cpu_millis: pick(self.max_cpu_millis, current.max_cpu_millis, "max_cpu_millis")?,
            max_memory_mb: pick(self.max_memory_mb, current.max_memory_mb, "max_memory_mb")?,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(PageQuery),
    responses((status = 200, description = "Every org for platform administrators; the caller's own otherwise", body = List<Org>)))]
async fn list_orgs(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<List<Org>>> {
    let page = app.store.list_orgs(principal.scope(), query.page()?).await?;
    Ok(axum::Json(List::new(page.items, page.next)))
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = NewOrgRequest,
    responses((status = 201, body = Org), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_org(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewOrgRequest>,
) -> ApiResult<(StatusCode, axum::Json<Org>)> {
    principal.require_platform_admin()?;
    validate_slug("name", &body.name)?;
    let org = app.store.create_org(&body.name, app.config.default_quotas).await?;
    let record = Record::new("org.create", format!("org:{}", org.id)).org(org.id).details(json!({"name": org.name}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok((StatusCode::CREATED, axum::Json(org)))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 200, body = Org), (status = 404, body = ErrorBody)))]
async fn get_org(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Org>> {
    let org = app.store.get_org(principal.scope(), id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(axum::Json(org))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)), request_body = OrgPatchRequest,
    responses(
        (status = 200, body = Org),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: another organization has that name", body = ErrorBody),
    ))]
async fn update_org(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<OrgPatchRequest>,
) -> ApiResult<axum::Json<Org>> {
    let current = app.store.get_org(principal.scope(), id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_admin()?;
    if body.name.is_some() || body.touches_quotas() {
        principal.require_platform_admin()?;
    }
    if let Some(name) = &body.name {
        validate_slug("name", name)?;
    }
    if let Some(allow) = &body.egress_allow {
        validate_egress_allow(&principal, allow)?;
    }
    let patch = OrgPatch {
        name: body.name.clone(),
        mfa_required: body.mfa_required,
        session_policy: body.session_policy,
        quotas: if body.touches_quotas() { Some(body.quotas_over(current.quotas)?) } else { None },
        egress_allow: body.egress_allow.clone(),
        sso_mfa: body.sso_mfa,
    };
    let org =
        app.store.update_org(principal.scope(), id, patch).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    if body.mfa_required.is_some() {
        app.forget_org_callers(id).await;
    }
    let details = json!({
        "name": org.name,
        "mfa_required": org.mfa_required,
        "session_policy": org.session_policy,
        "quotas": org.quotas,
        "egress_allow": org.egress_allow,
        "sso_mfa": org.sso_mfa,
    });
    app.audit(&meta, &Actor::from(&principal), Record::new("org.update", format!("org:{id}")).org(id).details(details))
        .await?;
    Ok(axum::Json(org))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, description = "The org still has users", body = ErrorBody)))]
async fn delete_org(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    app.store.get_org(principal.scope(), id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_platform_admin()?;
    if id == principal.org_id {
        return Err(ApiError::conflict("you cannot delete your own organization"));
    }
    if !app.store.delete_org(principal.scope(), id).await? {
        return Err(ApiError::not_found("organization"));
    }
    app.audit(&meta, &Actor::from(&principal), Record::new("org.delete", format!("org:{id}")).org(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Users within organizations.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{NewUser, Role, User, UserPatch};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, List, PageQuery, Path, Query};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::{Principal, password};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_users, create_user)).routes(routes!(get_user, update_user, delete_user))
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub org_id: Uuid,
    pub role: Role,
    pub mfa_enabled: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            id: user.id,
            username: user.username,
            org_id: user.org_id,
            role: user.role,
            mfa_enabled: user.mfa_enabled,
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Defaults to the caller's organization.
    pub org_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
pub struct UserPatchRequest {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Sets a new password (an administrator's reset): every sign-in and API key of the user is
    /// revoked.
    pub password: Option<String>,
}

/// Letters, digits, dots, dashes, underscores, `+` and `@` (an email may be a username, as
/// single sign-on makes them), starting with a letter or digit.
fn validate_username(username: &str) -> ApiResult<()> {
    let bytes = username.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 254
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(
            "username must be 1-254 letters, digits, '.', '-', '_', '+' or '@', starting with a letter or digit",
        ))
    }
}

/// A user the caller may see: admins see their scope, everyone sees themselves.
async fn visible_user(app: &App, principal: &Principal, id: Uuid) -> ApiResult<User> {
    let user = app.store.get_user(principal.scope(), id).await?;
    user.filter(|u| principal.may_see_user(u.org_id, u.id)).ok_or_else(|| ApiError::not_found("user"))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = List<UserView>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<List<UserView>>> {
    principal.require_admin()?;
    let page = app.store.list_users(principal.scope(), query.page()?).await?;
    Ok(axum::Json(List::new(page.items.into_iter().map(UserView::from).collect(), page.next)))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserRequest,
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody), (status = 404, description = "No such organization", body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewUserRequest>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    principal.require_admin()?;
    let org_id = body.org_id.unwrap_or(principal.org_id);
    app.store.get_org(principal.scope(), org_id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_role_grant(body.role)?;
    validate_username(&body.username)?;
    password::validate_new(&body.password).map_err(ApiError::validation)?;
    let password_hash = password::hash_off_thread(body.password).await.map_err(ApiError::internal)?;
    let user =
        app.store.create_user(NewUser { org_id, username: body.username, password_hash, role: body.role }).await?;
    let record = Record::new("user.create", format!("user:{}", user.id))
        .org(org_id)
        .details(json!({"username": user.username, "role": user.role}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(visible_user(&app, &principal, id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UserPatchRequest,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<UserPatchRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let target = visible_user(&app, &principal, id).await?;
    principal.require_admin()?;
    principal.require_role_grant(target.role)?;
    if let Some(role) = body.role {
        principal.require_role_grant(role)?;
    }
    if id == principal.user_id && (body.role.is_some_and(|r| r != target.role) || body.disabled == Some(true)) {
        return Err(ApiError::validation("you cannot change your own role or disable yourself"));
    }
    let password_hash = match body.password {
        Some(new) => {
            password::validate_new(&new).map_err(ApiError::validation)?;
            Some(password::hash_off_thread(new).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let password_changed = password_hash.is_some();
    // A reset or a disabling ends the user's session cookies: re-enabling them brings none back.
    let sessions_revoked_at = (password_changed || body.disabled == Some(true)).then(|| app.clock.now());
    let patch = UserPatch {
        role: body.role,
        disabled: body.disabled,
        password_hash,
        sessions_revoked_at,
        ..UserPatch::default()
    };
    let user = app.store.update_user(principal.scope(), id, patch).await?.ok_or_else(|| ApiError::not_found("user"))?;
    crate::connections::access::user_changed(&app, &target, Some(&user)).await;
    let mut details = json!({"role": body.role, "disabled": body.disabled, "password_reset": password_changed});
    if password_changed {
        details["revoked"] = crate::auth::sign_in::revoke_credentials(&app, id).await?;
    } else if user.disabled {
        app.store.revoke_user_refresh_tokens(id).await?;
    }
    let record = Record::new("user.update", format!("user:{id}")).org(user.org_id).details(details);
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(axum::Json(user.into()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody), (status = 409, description = "The user still has active sessions, or is the caller", body = ErrorBody)))]
async fn delete_user(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let target = visible_user(&app, &principal, id).await?;
    principal.require_admin()?;
    principal.require_role_grant(target.role)?;
    if id == principal.user_id {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    if !app.store.delete_user(principal.scope(), id).await? {
        return Err(ApiError::not_found("user"));
    }
    crate::connections::access::user_changed(&app, &target, None).await;
    // Their files outlive them for the grace period, so a deletion by mistake can be undone by an operator.
    let homes_delete_after = app.clock.now() + app.config.home_deletion_grace;
    let homes = app.store.mark_user_homes_for_deletion(id, homes_delete_after).await?;
    let record = Record::new("user.delete", format!("user:{id}"))
        .org(target.org_id)
        .details(json!({"username": target.username, "homes": homes, "homes_delete_after": homes_delete_after}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Persistent homes (ADR 0032): people see and reset their own; administrators see and delete
//! those of their org (platform administrators: all).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use streamspace_store::{Home, Scope};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{List, Path, Query};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::homes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_my_homes))
        .routes(routes!(reset_my_home))
        .routes(routes!(list_homes))
        .routes(routes!(delete_home))
}

#[utoipa::path(get, path = "/api/v1/me/homes", tag = "homes",
    responses((status = 200, description = "The caller's persistent homes", body = List<Home>), (status = 401, body = ErrorBody)))]
async fn list_my_homes(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<List<Home>>> {
    let homes = app.store.list_homes(Scope::Org(principal.org_id), Some(principal.user_id)).await?;
    Ok(axum::Json(List::new(homes, None::<Uuid>)))
}

#[utoipa::path(post, path = "/api/v1/me/homes/{id}/reset", tag = "homes", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted with everything in it; the next session starts with an empty home"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`home_in_use`: a session that has not ended mounts it", body = ErrorBody),
    ))]
async fn reset_my_home(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let home = app
        .store
        .get_home(Scope::Org(principal.org_id), id)
        .await?
        .filter(|home| home.user_id == principal.user_id)
        .ok_or_else(|| ApiError::not_found("home"))?;
    delete(&app, &meta, &principal, &home, "home.reset").await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HomesQuery {
    /// Only this user's homes.
    pub user_id: Option<Uuid>,
}

#[utoipa::path(get, path = "/api/v1/homes", tag = "homes", params(HomesQuery),
    responses((status = 200, body = List<Home>), (status = 403, body = ErrorBody)))]
async fn list_homes(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<HomesQuery>,
) -> ApiResult<axum::Json<List<Home>>> {
    principal.require_admin()?;
    let homes = app.store.list_homes(principal.scope(), query.user_id).await?;
    Ok(axum::Json(List::new(homes, None::<Uuid>)))
}

#[utoipa::path(delete, path = "/api/v1/homes/{id}", tag = "homes", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted with everything in it"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`home_in_use`: a session that has not ended mounts it", body = ErrorBody),
    ))]
async fn delete_home(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    // Another org's home is not there at all, whoever asks; only then does the caller's role count.
    let home = app.store.get_home(principal.scope(), id).await?.ok_or_else(|| ApiError::not_found("home"))?;
    principal.require_admin()?;
    delete(&app, &meta, &principal, &home, "home.delete").await
}

/// Deletes a home no session mounts, audited as `action`.
async fn delete(
    app: &App,
    meta: &RequestMeta,
    principal: &Principal,
    home: &Home,
    action: &'static str,
) -> ApiResult<StatusCode> {
    if homes::in_use(app, home).await? {
        let message = "a session that has not ended mounts this home: stop it first";
        return Err(ApiError::new(StatusCode::CONFLICT, "home_in_use", message));
    }
    homes::remove(app, home).await?;
    let record = Record::new(action, format!("home:{}", home.id))
        .org(home.org_id)
        .details(json!({"user_id": home.user_id, "template_id": home.template_id}));
    app.audit(meta, &Actor::from(principal), record).await?;
    Ok(StatusCode::NO_CONTENT)
}

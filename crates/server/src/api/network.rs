//! IP allow-lists: the platform's (platform administrators) and each org's (its administrators).

use axum::extract::State;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::AllowList;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, Path};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::auth::network;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_platform_allow_list, set_platform_allow_list))
        .routes(routes!(get_org_allow_list, set_org_allow_list))
}

/// An IP allow-list. Empty allows every address.
#[derive(Serialize, ToSchema)]
pub struct AllowListView {
    /// Networks (CIDRs, IPv4 or IPv6) people may come from; a single address is `/32` or `/128`.
    #[schema(value_type = Vec<String>)]
    pub cidrs: Vec<IpNet>,
    /// The address this request came from, as the control plane sees it (behind trusted proxies,
    /// the client's): the one a change must keep allowed.
    pub client_address: String,
}

#[derive(Deserialize, ToSchema)]
pub struct AllowListRequest {
    /// Replaces the whole list; `[]` allows every address. Required.
    #[schema(value_type = Vec<String>)]
    pub cidrs: Option<Vec<IpNet>>,
}

impl AllowListRequest {
    /// Checked after the org is found, so that another org's list answers 404 whatever the body.
    fn cidrs(&self) -> ApiResult<&[IpNet]> {
        self.cidrs
            .as_deref()
            .ok_or_else(|| ApiError::validation("cidrs is required (an empty list allows every address)"))
    }
}

fn view(cidrs: Vec<IpNet>, meta: &RequestMeta) -> axum::Json<AllowListView> {
    axum::Json(AllowListView { cidrs, client_address: meta.client_ip.to_canonical().to_string() })
}

/// The org's list, for its own administrators and platform administrators; another org is a 404.
async fn org_list(app: &App, principal: &Principal, org_id: Uuid) -> ApiResult<AllowList> {
    app.store.get_org(principal.scope(), org_id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_admin()?;
    Ok(AllowList::Org(org_id))
}

/// Saves `list` unless it would shut its author out, and audits the change.
async fn replace(
    app: &App,
    meta: &RequestMeta,
    principal: &Principal,
    list: AllowList,
    cidrs: &[IpNet],
) -> ApiResult<Vec<IpNet>> {
    let cidrs = network::normalize(cidrs)?;
    let applies_to_caller = list.org_id().is_none_or(|org_id| org_id == principal.org_id);
    network::refuse_self_lockout(&cidrs, applies_to_caller, meta.client_ip)?;
    app.allow_lists.set(app, list, &cidrs).await?;
    let target = list.org_id().map_or_else(|| "platform".to_owned(), |id| format!("org:{id}"));
    let record = Record::new("network.allow_list_update", target).org(list.org_id()).details(json!({"cidrs": cidrs}));
    app.audit(meta, &Actor::from(principal), record).await?;
    Ok(cidrs)
}

#[utoipa::path(get, path = "/api/v1/network/allow-list", tag = "network",
    responses((status = 200, description = "The platform's IP allow-list, which holds for everyone", body = AllowListView)))]
async fn get_platform_allow_list(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
) -> ApiResult<axum::Json<AllowListView>> {
    principal.require_platform_admin()?;
    Ok(view(app.allow_lists.read(&app, AllowList::Platform).await?, &meta))
}

#[utoipa::path(put, path = "/api/v1/network/allow-list", tag = "network", request_body = AllowListRequest,
    responses(
        (status = 200, description = "The list as saved (normalized)", body = AllowListView),
        (status = 409, description = "`self_lockout`: the list does not allow the caller's own address", body = ErrorBody),
    ))]
async fn set_platform_allow_list(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<AllowListRequest>,
) -> ApiResult<axum::Json<AllowListView>> {
    principal.require_platform_admin()?;
    Ok(view(replace(&app, &meta, &principal, AllowList::Platform, body.cidrs()?).await?, &meta))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/allow-list", tag = "network", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The org's IP allow-list, which holds for its users", body = AllowListView),
        (status = 404, body = ErrorBody),
    ))]
async fn get_org_allow_list(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AllowListView>> {
    let list = org_list(&app, &principal, id).await?;
    Ok(view(app.allow_lists.read(&app, list).await?, &meta))
}

#[utoipa::path(put, path = "/api/v1/orgs/{id}/allow-list", tag = "network", params(("id" = Uuid, Path)),
    request_body = AllowListRequest,
    responses(
        (status = 200, description = "The list as saved (normalized)", body = AllowListView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`self_lockout`: the list does not allow the caller's own address", body = ErrorBody),
    ))]
async fn set_org_allow_list(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<AllowListRequest>,
) -> ApiResult<axum::Json<AllowListView>> {
    let list = org_list(&app, &principal, id).await?;
    Ok(view(replace(&app, &meta, &principal, list, body.cidrs()?).await?, &meta))
}

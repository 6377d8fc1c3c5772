//! Compliance reports and their settings (retention, scheduled delivery), per organization.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use streamspace_store::Org;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::audit::Format;
use super::{Json, Path, Query};
use crate::app::{App, AppState};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::compliance::report::{ComplianceReport, to_csv};
use crate::compliance::{self, ComplianceSettingsUpdate, ComplianceSettingsView};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(compliance_report)).routes(routes!(get_settings, put_settings))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start of the period (inclusive).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive), at most 366 days after `from`.
    pub to: DateTime<Utc>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
}

/// The org, if the caller administers it: another org's is a 404, a member gets a 403.
async fn administered_org(app: &App, principal: &Principal, org_id: Uuid) -> ApiResult<Org> {
    let org = app.store.get_org(principal.scope(), org_id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_admin()?;
    Ok(org)
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/reports/compliance", tag = "reports",
    params(("org_id" = Uuid, Path), ReportQuery),
    responses(
        (status = 200, description = "The report; CSV with `format=csv`",
            content((ComplianceReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_period`", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn compliance_report(
    State(app): State<AppState>,
    principal: Principal,
    Path(org_id): Path<Uuid>,
    Query(query): Query<ReportQuery>,
) -> ApiResult<Response> {
    let org = administered_org(&app, &principal, org_id).await?;
    let report = compliance::compliance_report(&app, &org, query.from, query.to).await?;
    match query.format.unwrap_or_default() {
        Format::Json => Ok(axum::Json(report).into_response()),
        Format::Csv => {
            let body = to_csv(&report).map_err(ApiError::internal)?;
            let name = format!(
                "attachment; filename=\"compliance-{}-{}-{}.csv\"",
                org.name,
                report.from.format("%Y%m%d"),
                report.to.format("%Y%m%d")
            );
            Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (CONTENT_DISPOSITION, name)], body)
                .into_response())
        }
    }
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/reports/settings", tag = "reports",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = ComplianceSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(app): State<AppState>,
    principal: Principal,
    Path(org_id): Path<Uuid>,
) -> ApiResult<axum::Json<ComplianceSettingsView>> {
    administered_org(&app, &principal, org_id).await?;
    Ok(axum::Json(compliance::settings_view(&app, org_id).await?))
}

#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/reports/settings", tag = "reports",
    params(("org_id" = Uuid, Path)), request_body = ComplianceSettingsUpdate,
    responses(
        (status = 200, body = ComplianceSettingsView),
        (status = 400, description = "`invalid_retention`, `invalid_destination`, `invalid_webhook`, \
            `webhook_refused` or `reports_directory_not_configured`", body = ErrorBody),
        (status = 403, description = "`forbidden`: changing the retention needs a platform administrator", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn put_settings(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(org_id): Path<Uuid>,
    Json(body): Json<ComplianceSettingsUpdate>,
) -> ApiResult<axum::Json<ComplianceSettingsView>> {
    administered_org(&app, &principal, org_id).await?;
    let actor = Actor::from(&principal);
    let view = compliance::update_settings(&app, &meta, &actor, principal.is_platform_admin(), org_id, body).await?;
    Ok(axum::Json(view))
}

//! Reading the audit log: filters, paging and CSV/JSON export.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use streamspace_store::{AuditEvent, AuditFilter, AuditPage, Page};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{List, Query};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Actor name.
    pub actor: Option<String>,
    /// Action, such as `auth.login` or `user.create`.
    pub action: Option<String>,
    /// Target, such as `user:<id>`.
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub result: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Free text, matched in actor, action, target and details.
    pub q: Option<String>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    pub format: Option<Format>,
    /// Items per page (1-500, default 100; CSV exports up to 10000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const CSV_EXPORT_LIMIT: u32 = 10_000;

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "Newest first; CSV with `format=csv`",
            content((List<AuditEvent> = "application/json"), (String = "text/csv"))),
        (status = 403, body = ErrorBody),
    ))]
async fn list_audit(
    State(app): State<AppState>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Response> {
    principal.require_admin()?;
    let format = query.format.unwrap_or_default();
    let before_seq = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| ApiError::bad_request("invalid cursor"))?),
    };
    let max = match format {
        Format::Json => Page::MAX_LIMIT,
        Format::Csv => CSV_EXPORT_LIMIT,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, max);
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        target: query.target,
        result: query.result,
        since: query.since,
        until: query.until,
        text: query.q,
    };
    let events = app.store.list_audit(principal.scope(), filter, AuditPage { limit, before_seq }).await?;
    let next = (events.len() == limit as usize).then(|| events.last().map(|e| e.seq)).flatten();
    match format {
        Format::Json => Ok(axum::Json(List::new(events, next)).into_response()),
        Format::Csv => csv_response(&events),
    }
}

fn csv_response(events: &[AuditEvent]) -> ApiResult<Response> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "seq",
        "id",
        "time",
        "actor_id",
        "actor_name",
        "org_id",
        "action",
        "target",
        "result",
        "client_ip",
        "user_agent",
        "trace_id",
        "details",
        "prev_hash",
        "hash",
    ];
    writer.write_record(header).map_err(ApiError::internal)?;
    let text = |value: Option<String>| value.unwrap_or_default();
    for e in events {
        writer
            .write_record([
                e.seq.to_string(),
                e.id.to_string(),
                e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                text(e.actor_id.map(|id| id.to_string())),
                e.actor_name.clone(),
                text(e.org_id.map(|id| id.to_string())),
                e.action.clone(),
                e.target.clone(),
                e.result.clone(),
                text(e.client_ip.clone()),
                text(e.user_agent.clone()),
                text(e.trace_id.clone()),
                if e.details.is_null() { String::new() } else { e.details.to_string() },
                e.prev_hash.clone(),
                e.hash.clone(),
            ])
            .map_err(ApiError::internal)?;
    }
    let body = writer.into_inner().map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8"), (CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\"")], body)
        .into_response())
}

//! The REST API: one module per resource, each listing its routes; this module assembles them
//! with the OpenAPI document generated from the same handlers.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod events;
pub mod homes;
pub mod icons;
pub mod identity_providers;
pub mod me;
pub mod network;
pub mod orgs;
pub mod pools;
pub mod reports;
pub mod saml;
pub mod sessions;
pub mod sharing;
pub mod sso;
pub mod stats;
pub mod system;
pub mod templates;
pub mod users;

use axum::extract::{FromRequest, FromRequestParts};
use serde::{Deserialize, Deserializer, Serialize};
use streamspace_store::Page;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// A JSON request body whose rejections render as [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// A form body (`application/x-www-form-urlencoded`) whose rejections render as [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct Form<T>(pub T);

/// Query parameters whose rejections render as [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters whose rejections render as [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1-500, default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> ApiResult<Page> {
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| ApiError::bad_request("invalid cursor"))?),
        };
        Ok(Page { after, ..Page::first(self.limit.unwrap_or(100)) })
    }
}

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    pub fn new(items: Vec<T>, next: Option<impl ToString>) -> List<T> {
        List { items, next_cursor: next.map(|cursor| cursor.to_string()) }
    }
}

/// For PATCH bodies: an absent field is `None` (leave as is), `null` is `Some(None)` (clear).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(de: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

/// Lower-case letters, digits and dashes, starting with a letter or digit, at most 63 long.
pub fn validate_slug(field: &str, value: &str) -> ApiResult<()> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "{field} must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit"
        )))
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token from /api/v1/auth/login, or an API key (ssk_...)"))
                    .build(),
            ),
        );
    }
}

/// What every operation may answer besides its own responses, added in one place: 400 for
/// malformed parameters; 401 and 403 where credentials are required (403 also when the org
/// requires MFA the caller has not set up); 415 and 422 where there is a body. And OpenAPI wants a
/// description on every response: where a handler gives none, the status's reason phrase serves.
pub struct CommonResponses;

impl CommonResponses {
    fn add(operation: &mut utoipa::openapi::path::Operation, status: u16, description: &str) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        operation.responses.responses.entry(status.to_string()).or_insert(response.into());
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                // `security: [{}]` marks the routes that take no credentials.
                let anonymous = operation.security.as_ref().is_some_and(|s| {
                    s.iter().all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
                });
                Self::add(operation, 400, "`bad_request`: malformed parameters or body");
                Self::add(operation, 429, "`rate_limited`: over a request budget; retry after `Retry-After` seconds");
                if !anonymous {
                    Self::add(operation, 401, "`unauthorized`: missing, invalid or expired credentials");
                    Self::add(
                        operation,
                        403,
                        "`forbidden`, `mfa_enrollment_required` until the caller sets MFA up, or `network_denied` from an \
                         address outside the IP allow-lists",
                    );
                }
                if operation.request_body.is_some() {
                    Self::add(operation, 415, "`unsupported_media_type`: send application/json");
                    Self::add(operation, 422, "`validation_failed`: the body does not fit the schema");
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                            .and_then(|code| code.canonical_reason())
                            .unwrap_or("Response")
                            .to_owned();
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "StreamSpace API", description = "Control plane of StreamSpace: stream containerized applications to the browser."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

/// Every route the control plane serves, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    OpenApiRouter::with_openapi(doc)
        .merge(system::routes())
        .merge(auth::routes())
        .merge(me::routes())
        .merge(homes::routes())
        .merge(orgs::routes())
        .merge(users::routes())
        .merge(templates::routes())
        .merge(pools::routes())
        .merge(icons::routes())
        .merge(sessions::routes())
        .merge(sharing::routes())
        .merge(audit::routes())
        .merge(agents::routes())
        .merge(events::routes())
        .merge(stats::routes())
        .merge(reports::routes())
        .merge(identity_providers::routes())
        .merge(sso::routes())
        .merge(network::routes())
        .merge(saml::routes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "chromium", "my-app-2", "0day"] {
            assert!(validate_slug("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", &"a".repeat(64)] {
            assert!(validate_slug("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_query_parses_cursors_and_clamps_limits() {
        let id = Uuid::now_v7();
        let page = PageQuery { limit: Some(10_000), cursor: Some(id.to_string()) }.page().unwrap();
        assert_eq!((page.limit, page.after), (Page::MAX_LIMIT, Some(id)));
        assert!(PageQuery { limit: None, cursor: Some("nope".into()) }.page().is_err());
    }
}

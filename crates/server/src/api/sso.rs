//! Single sign-on, the public side: which providers an email or an org leads to, starting a
//! flow, the provider's callback, the TOTP step, and the signed-in user's linked identities.
//! Every browser flow ends with a 303 to the UI's `/login/sso` (or `/account` when linking).

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{IdentityProvider, ProviderKind, Scope};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::{TokenResponse, render_sign_in};
use super::{Json, Path, Query};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::auth::sso::{self, Ended, ExternalIdentity, NO_PASSWORD, PendingFlow, ProviderSession, SsoFailure};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discover))
        .routes(routes!(start))
        .routes(routes!(callback))
        .routes(routes!(mfa))
        .routes(routes!(list_identities, link_identity))
        .routes(routes!(unlink_identity))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscoverQuery {
    /// The email the person typed: its domain picks the providers.
    pub email: Option<String>,
    /// Or the organization's name (`/login/<org>`).
    pub org: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderButton {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    /// Navigate the browser here to sign in (add `?return_to=<path>`).
    pub start_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct Discovery {
    /// The organization the providers belong to; `null` when none was found.
    pub org: Option<String>,
    pub providers: Vec<ProviderButton>,
}

#[utoipa::path(get, path = "/api/v1/auth/sso/discover", tag = "sso", security(()), params(DiscoverQuery),
    responses((status = 200, description = "The providers to offer; an empty list for anything unknown", body = Discovery)))]
async fn discover(State(app): State<AppState>, Query(query): Query<DiscoverQuery>) -> ApiResult<axum::Json<Discovery>> {
    let providers = match (query.email.as_deref(), query.org.as_deref()) {
        (Some(email), _) => match email.rsplit_once('@') {
            Some((_, domain)) => app.store.identity_providers_for_domain(&domain.trim().to_lowercase()).await?,
            None => vec![],
        },
        (None, Some(name)) => match app.store.get_org_by_name(name).await? {
            Some(org) => app.store.list_identity_providers(Scope::Platform, org.id).await?,
            None => vec![],
        },
        (None, None) => vec![],
    };
    let providers: Vec<IdentityProvider> = providers.into_iter().filter(|p| p.enabled).collect();
    // An org is named only when it has something to offer, so the answer tells nobody whether
    // an org of that name exists.
    let org = match providers.first() {
        Some(first) if providers.iter().all(|p| p.org_id == first.org_id) => {
            app.store.get_org(Scope::Platform, first.org_id).await?.map(|org| org.name)
        }
        _ => None,
    };
    let providers = providers
        .into_iter()
        .map(|p| ProviderButton {
            start_url: format!("/api/v1/auth/sso/{}/start", p.id),
            id: p.id,
            name: p.name,
            display_name: p.display_name,
            kind: p.kind,
        })
        .collect();
    Ok(axum::Json(Discovery { org, providers }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// The UI path to land on after signing in (default `/`).
    pub return_to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/sso/{id}/start", tag = "sso", security(()),
    params(("id" = Uuid, Path), StartQuery),
    responses((status = 303, description = "To the provider; on failure to `/login/sso?error=<code>`")))]
async fn start(
    State(app): State<AppState>,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let provider = app.store.get_identity_provider(Scope::Platform, id).await?;
    let started = match &provider {
        Some(provider) => sso::begin(&app, provider, None, query.return_to.as_deref().unwrap_or("/"), &headers).await,
        None => Err(SsoFailure::new("provider_disabled", "no such provider")),
    };
    match started {
        Ok(started) => {
            let cookie = binding_cookie(&app, &started.browser_cookie)?;
            Ok(with_cookie(see_other(&started.redirect_url)?, cookie))
        }
        Err(failure) => fail(&app, &meta, provider.as_ref(), false, &failure).await,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's error, when it refused.
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/sso/{id}/callback", tag = "sso", security(()),
    params(("id" = Uuid, Path), CallbackQuery),
    responses((status = 303, description = "To `/login/sso` with `next`, `mfa` or `error`; when linking, to `/account` with `linked` or `link_error`")))]
async fn callback(
    State(app): State<AppState>,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(provider) = app.store.get_identity_provider(Scope::Platform, id).await? else {
        return fail(&app, &meta, None, false, &SsoFailure::failed("no such provider")).await;
    };
    let pending = match sso::take_flow(&app, &provider, query.state.as_deref(), &headers).await {
        Ok(pending) => pending,
        Err(failure) => return fail(&app, &meta, Some(&provider), false, &failure).await,
    };
    let linking = pending.link_user.is_some();
    let outcome = match identity_from_callback(&app, &pending, query).await {
        Ok((identity, session)) => sso::finish(&app, &meta, pending, identity, session).await,
        Err(failure) => Err(failure),
    };
    let response = match outcome {
        Ok(outcome) => ended(&app, outcome)?,
        Err(failure) => return fail(&app, &meta, Some(&provider), linking, &failure).await,
    };
    Ok(with_cookie(response, binding_cookie(&app, "")?))
}

/// The identity the provider vouched for in its answer, by protocol.
async fn identity_from_callback(
    app: &App,
    pending: &PendingFlow,
    query: CallbackQuery,
) -> Result<(ExternalIdentity, ProviderSession), SsoFailure> {
    if let Some(error) = query.error {
        return Err(SsoFailure::failed(format!(
            "the provider answered {}",
            error.chars().take(100).collect::<String>()
        )));
    }
    let code = query.code.filter(|c| !c.is_empty()).ok_or_else(|| SsoFailure::failed("code_missing"))?;
    match pending.provider.kind {
        ProviderKind::Oidc => sso::oidc::identity(app, pending, &code).await,
        ProviderKind::Oauth2 => sso::oauth2::identity(app, pending, &code).await,
        ProviderKind::Saml => Err(SsoFailure::failed("SAML answers at the ACS")),
    }
}

/// The browser's landing page for a finished flow.
pub fn ended(app: &App, outcome: Ended) -> ApiResult<Response> {
    match outcome {
        Ended::SignedIn { issued, return_to } => {
            let cookie = super::auth::refresh_cookie(app, &issued.refresh_token, app.config.refresh_token_ttl_secs)?;
            Ok(with_cookie(see_other(&ui_url(app, "/login/sso", &[("next", &return_to)]))?, cookie))
        }
        Ended::MfaRequired { ticket, return_to } => {
            see_other(&ui_url(app, "/login/sso", &[("mfa", &ticket), ("next", &return_to)]))
        }
        Ended::Linked { provider_name } => see_other(&ui_url(app, "/account", &[("linked", &provider_name)])),
    }
}

/// Audits the failure and sends the browser to the UI with its code.
pub async fn fail(
    app: &App,
    meta: &RequestMeta,
    provider: Option<&IdentityProvider>,
    linking: bool,
    failure: &SsoFailure,
) -> ApiResult<Response> {
    sso::audit_failure(app, meta, provider, linking, failure).await?;
    let url = if linking {
        ui_url(app, "/account", &[("link_error", failure.code)])
    } else {
        ui_url(app, "/login/sso", &[("error", failure.code)])
    };
    Ok(with_cookie(see_other(&url)?, binding_cookie(app, "")?))
}

fn ui_url(app: &App, path: &str, pairs: &[(&str, &str)]) -> String {
    let query: String = url_encoded(pairs);
    format!("{}{path}?{query}", app.urls.public_url.trim_end_matches('/'))
}

fn url_encoded(pairs: &[(&str, &str)]) -> String {
    let mut serializer = oauth2::url::form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(pairs);
    serializer.finish()
}

fn see_other(location: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(location).map_err(ApiError::internal)?;
    Ok((StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response())
}

/// Sets the browser-binding cookie; an empty value clears it.
pub fn binding_cookie(app: &App, value: &str) -> ApiResult<HeaderValue> {
    let max_age = if value.is_empty() { 0 } else { 600 };
    HeaderValue::from_str(&sso::browser_cookie(app).set(value, max_age)).map_err(ApiError::internal)
}

pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

#[derive(Deserialize, ToSchema)]
pub struct SsoMfaRequest {
    /// The `mfa` parameter `/login/sso` was given.
    pub ticket: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/sso/mfa", tag = "sso", security(()), request_body = SsoMfaRequest,
    responses(
        (status = 200, description = "Signed in; the refresh cookie is set", body = TokenResponse),
        (status = 401, description = "`invalid_ticket` (unknown, used or expired: sign in again), `mfa_required` or `invalid_mfa_code`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    ))]
async fn mfa(State(app): State<AppState>, meta: RequestMeta, Json(body): Json<SsoMfaRequest>) -> ApiResult<Response> {
    let (issued, _return_to) = sso::complete_mfa(&app, &meta, &body.ticket, body.totp_code, body.recovery_code).await?;
    render_sign_in(&app, issued)
}

#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub provider_name: String,
    pub provider_display_name: String,
    pub kind: ProviderKind,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityList {
    pub items: Vec<IdentityView>,
}

#[utoipa::path(get, path = "/api/v1/me/identities", tag = "sso",
    responses((status = 200, description = "The caller's linked identities", body = IdentityList)))]
async fn list_identities(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<IdentityList>> {
    let mut items = vec![];
    for identity in app.store.list_external_identities(principal.user_id).await? {
        let Some(provider) = app.store.get_identity_provider(Scope::Platform, identity.provider_id).await? else {
            continue;
        };
        items.push(IdentityView {
            id: identity.id,
            provider_id: provider.id,
            provider_name: provider.name,
            provider_display_name: provider.display_name,
            kind: provider.kind,
            subject: identity.subject,
            email: identity.email,
            created_at: identity.created_at,
            last_sign_in_at: identity.last_sign_in_at,
        });
    }
    Ok(axum::Json(IdentityList { items }))
}

#[derive(Deserialize, ToSchema)]
pub struct LinkRequest {
    pub provider_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct LinkStarted {
    /// Navigate the browser here; the flow ends on `/account?linked=<provider name>` or `?link_error=<code>`.
    pub redirect_url: String,
}

#[utoipa::path(post, path = "/api/v1/me/identities", tag = "sso", request_body = LinkRequest,
    responses(
        (status = 200, body = LinkStarted),
        (status = 404, description = "No such provider in the caller's organization", body = ErrorBody),
        (status = 409, description = "`provider_disabled`", body = ErrorBody),
    ))]
async fn link_identity(
    State(app): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(body): Json<LinkRequest>,
) -> ApiResult<Response> {
    let provider = app
        .store
        .get_identity_provider(Scope::Org(principal.org_id), body.provider_id)
        .await?
        .ok_or_else(|| ApiError::not_found("identity provider"))?;
    let started = sso::begin(&app, &provider, Some(principal.user_id), "/account", &headers)
        .await
        .map_err(|failure| ApiError::new(StatusCode::CONFLICT, failure.code, "the provider cannot be used now"))?;
    let cookie = binding_cookie(&app, &started.browser_cookie)?;
    Ok(with_cookie(axum::Json(LinkStarted { redirect_url: started.redirect_url }).into_response(), cookie))
}

#[utoipa::path(delete, path = "/api/v1/me/identities/{id}", tag = "sso", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`last_sign_in_method`: the account has no password and no other identity", body = ErrorBody),
    ))]
async fn unlink_identity(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let identities = app.store.list_external_identities(principal.user_id).await?;
    let identity = identities.iter().find(|i| i.id == id).ok_or_else(|| ApiError::not_found("identity"))?.clone();
    let user = app.store.get_user(Scope::Platform, principal.user_id).await?.ok_or_else(ApiError::unauthorized)?;
    if user.password_hash == NO_PASSWORD && identities.len() == 1 {
        let message = "this is the account's only way to sign in: set a password or link another identity first";
        return Err(ApiError::new(StatusCode::CONFLICT, "last_sign_in_method", message));
    }
    if !app.store.delete_external_identity(principal.user_id, id).await? {
        return Err(ApiError::not_found("identity"));
    }
    let record = Record::new("sso.unlink", format!("user:{}", principal.user_id))
        .details(json!({"provider_id": identity.provider_id, "subject": identity.subject}));
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Sign-in, token refresh and sign-out.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::Role;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Json;
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::cookies;
use crate::auth::password;
use crate::auth::principal::MfaSetupPrincipal;
use crate::auth::secrets::sha256_hex;
use crate::auth::sign_in::{self, Credentials, Issued, Refreshed};
use crate::auth::sso;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Refresh and logout demand this header: a cross-site form cannot set it, and a script on
/// another origin (the session origin included) cannot send it without a CORS preflight that
/// this API never grants.
pub const CSRF_HEADER: &str = "x-streamspace-csrf";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(refresh)).routes(routes!(logout))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The current code from the authenticator app, when MFA is on.
    pub totp_code: Option<String>,
    /// One of the recovery codes, instead of `totp_code`.
    pub recovery_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub org_id: Uuid,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserSummary,
    /// The user's organization requires MFA and the user has not enrolled: until they do, only
    /// the account and MFA routes answer.
    pub mfa_enrollment_required: bool,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the refresh cookie is set", body = TokenResponse),
        (status = 400, description = "`username_too_long` or `password_too_long`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `mfa_required` or `invalid_mfa_code`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: locked out for `Retry-After` seconds; `login_in_progress`: another sign-in for this account is being checked", body = ErrorBody),
        (status = 503, description = "`busy`: too many sign-ins are being checked; retry after `Retry-After` seconds", body = ErrorBody),
    ))]
async fn login(State(app): State<AppState>, meta: RequestMeta, Json(body): Json<LoginRequest>) -> ApiResult<Response> {
    refuse_oversized(&body)?;
    let credentials = Credentials {
        username: body.username,
        password: body.password,
        totp_code: body.totp_code,
        recovery_code: body.recovery_code,
    };
    let issued = sign_in::sign_in(&app, &meta, credentials).await?;
    render_sign_in(&app, issued)
}

/// No username is this long; a longer one would only cost look-ups and throttle memory.
const MAX_USERNAME_BYTES: usize = 256;

/// Refuses credentials no account can have before any work is done on them.
fn refuse_oversized(body: &LoginRequest) -> ApiResult<()> {
    if body.username.len() > MAX_USERNAME_BYTES {
        let message = format!("a username is at most {MAX_USERNAME_BYTES} bytes");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "username_too_long", message));
    }
    if body.password.len() > password::MAX_PASSWORD_BYTES {
        let message = format!("a password is at most {} bytes", password::MAX_PASSWORD_BYTES);
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "password_too_long", message));
    }
    Ok(())
}

/// The tokens as the client gets them: the access token in the body, the refresh token in its
/// cookie.
pub fn render_sign_in(app: &App, issued: Issued) -> ApiResult<Response> {
    let cookie = refresh_cookie(app, &issued.refresh_token, app.config.refresh_token_ttl_secs)?;
    let user = issued.user;
    let tokens = TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        user: UserSummary { id: user.id, username: user.username, org_id: user.org_id, role: user.role },
        mfa_enrollment_required: issued.enrollment_required,
    };
    Ok(with_cookie(axum::Json(tokens).into_response(), cookie))
}

pub fn refresh_cookie(app: &App, value: &str, max_age: i64) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&cookies::refresh_cookie(&app.urls).set(value, max_age)).map_err(ApiError::internal)
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

fn require_csrf_header(headers: &HeaderMap) -> ApiResult<()> {
    if headers.contains_key(CSRF_HEADER) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("this call needs the {CSRF_HEADER} header")))
    }
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", security(()),
    params(("x-streamspace-csrf" = String, Header, description = "Any value; proves the call is not cross-site")),
    responses(
        (status = 200, description = "A new access token; the refresh cookie is rotated", body = TokenResponse),
        (status = 403, description = "The x-streamspace-csrf header is missing", body = ErrorBody),
        (status = 401, description = "No valid refresh cookie (`unauthorized`), or a spent one was replayed (`refresh_token_reused`)", body = ErrorBody),
    ))]
async fn refresh(State(app): State<AppState>, meta: RequestMeta, headers: HeaderMap) -> ApiResult<Response> {
    require_csrf_header(&headers)?;
    let token = cookies::refresh_token(&app.urls, &headers)?.ok_or_else(ApiError::unauthorized)?;
    let cleared = refresh_cookie(&app, "", 0)?;
    match sign_in::refresh(&app, &meta, token).await? {
        Refreshed::Renewed(issued) => render_sign_in(&app, issued),
        Refreshed::Refused(error) => Err(error.with_cookie(cleared)),
    }
}

/// What signing out answers when the sign-in came from a provider with a logout of its own.
#[derive(Serialize, ToSchema)]
pub struct LogoutResponse {
    /// Navigate the browser here to sign out at the identity provider too (OIDC RP-initiated logout).
    pub end_session_url: String,
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(()),
    params(("x-streamspace-csrf" = String, Header, description = "Any value; proves the call is not cross-site")),
    responses(
        (status = 200, description = "Signed out here; the sign-in came from an identity provider whose own logout the browser should visit", body = LogoutResponse),
        (status = 204, description = "Signed out: the refresh token's family is revoked and the cookie cleared"),
        (status = 403, description = "The x-streamspace-csrf header is missing", body = ErrorBody),
    ))]
async fn logout(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Result<MfaSetupPrincipal, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_csrf_header(&headers)?;
    // Signing out must work with a stale access token too: the cookie is what gets revoked.
    let principal = principal.ok();
    let (revoked, end_session_url) = match cookies::refresh_token(&app.urls, &headers)? {
        Some(token) => {
            let hash = sha256_hex(token);
            let end_session_url = sso::end_session_url(&app, &hash).await?;
            (app.store.revoke_refresh_family(&hash).await?, end_session_url)
        }
        None => (false, None),
    };
    let actor = principal.map_or_else(|| Actor::anonymous("unknown"), |MfaSetupPrincipal(p)| Actor::from(&p));
    let target = actor.id.map_or_else(|| "session".to_owned(), |id| format!("user:{id}"));
    app.audit(&meta, &actor, Record::new("auth.logout", target).details(json!({"revoked": revoked}))).await?;
    let cleared = refresh_cookie(&app, "", 0)?;
    Ok(match end_session_url {
        Some(end_session_url) => with_cookie(axum::Json(LogoutResponse { end_session_url }).into_response(), cleared),
        None => with_cookie(StatusCode::NO_CONTENT.into_response(), cleared),
    })
}

//! Sign-in, token refresh and sign-out.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{RefreshOutcome, RefreshToken, Role, Scope, User};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Json;
use crate::app::{App, AppState};
use crate::audit::{Actor, Event, Outcome};
use crate::auth::cookies::{CookieSpec, Read};
use crate::auth::principal::MfaSetupPrincipal;
use crate::auth::secrets::{random_token, sha256_hex};
use crate::auth::throttle::{Attempt, Key, Refusal};
use crate::auth::{password, totp};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// The refresh cookie: `__Host-ss_refresh` on a secure context, so a session origin cannot plant
/// one for a parent domain (a `__Host-` cookie has the root path). Elsewhere it is sent only to
/// the auth routes.
pub fn refresh_cookie_spec(urls: &crate::config::Urls) -> CookieSpec {
    CookieSpec {
        base: "ss_refresh",
        secure: urls.secure_cookies,
        insecure_path: "/api/v1/auth",
        attributes: "SameSite=Strict",
    }
}
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
    let username = body.username.trim().to_lowercase();
    let actor = Actor::anonymous(&username);
    // Counted before the password is checked, so concurrent guesses cannot outrun the limit.
    let attempt = app.throttle.reserve(&username, meta.client_ip, app.clock.now()).map_err(refused)?;

    let user = app.store.get_user_by_username(&username).await?;
    // Verify against a dummy hash for unknown users, so both answers take as long.
    let hash = user.as_ref().map_or(app.dummy_password_hash.as_str(), |u| u.password_hash.as_str());
    let Ok(password_ok) = app.login_verifier.verify(body.password, hash.to_owned()).await else {
        attempt.withdraw();
        metrics::counter!("login_refused_total", "reason" => "busy").increment(1);
        return Err(ApiError::busy(1));
    };
    let Some(user) = user.filter(|u| password_ok && !u.disabled) else {
        record_failure(&app, &meta, &actor, attempt, "invalid_credentials").await?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong username or password"));
    };
    let actor = Actor { id: Some(user.id), name: user.username.clone(), org_id: Some(user.org_id) };

    let mfa = user.mfa_enabled;
    if mfa {
        check_second_factor(&app, &meta, &actor, attempt, &user, body.totp_code, body.recovery_code).await?;
    } else {
        attempt.succeeded();
    }

    let org = app.store.get_org(Scope::Platform, user.org_id).await?;
    let enrollment_required = !mfa && org.is_some_and(|o| o.mfa_required);
    let family_id = Uuid::now_v7();
    let (tokens, cookie) = issue_tokens(&app, &user, mfa, family_id, enrollment_required).await?;
    app.audit(&meta, &actor, Event::new("auth.login", format!("user:{}", user.id)).details(json!({"mfa": mfa})))
        .await?;
    Ok(with_cookie(axum::Json(tokens).into_response(), cookie))
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

/// Refused attempts are counted in a metric, not audited one by one: a flood of them must not
/// fill the audit log. The lockout that causes them is audited once.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::LockedOut { retry_after_secs } => {
            metrics::counter!("login_refused_total", "reason" => "locked_out").increment(1);
            ApiError::too_many_attempts(retry_after_secs)
        }
        Refusal::InProgress => {
            metrics::counter!("login_refused_total", "reason" => "in_progress").increment(1);
            let message = "another sign-in for this account is being checked; try again in a moment";
            ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "login_in_progress", message)
            }
        }
    }
}

/// A wrong guess stays counted. Each failure that is verified is audited (the throttle bounds
/// how many there can be); each lockout once.
async fn record_failure(
    app: &App,
    meta: &RequestMeta,
    actor: &Actor,
    attempt: Attempt<'_>,
    reason: &str,
) -> ApiResult<()> {
    audit_lockouts(app, meta, actor, attempt).await?;
    let event = Event::new("auth.login", format!("user:{}", actor.name)).outcome(Outcome::Failure);
    app.audit(meta, actor, event.details(json!({"reason": reason}))).await
}

/// Counts `attempt` as failed and audits the lockouts it caused.
async fn audit_lockouts(app: &App, meta: &RequestMeta, actor: &Actor, attempt: Attempt<'_>) -> ApiResult<()> {
    for key in attempt.failed() {
        let (target, details) = match key {
            Key::AccountAddress(name, address) => {
                (format!("user:{name}"), json!({"scope": "account_address", "address": address.to_string()}))
            }
            Key::Account(name) => (format!("user:{name}"), json!({"scope": "account"})),
            Key::Address(address) => (format!("ip:{address}"), json!({"scope": "address"})),
        };
        app.audit(meta, actor, Event::new("auth.lockout", target).outcome(Outcome::Denied).details(details)).await?;
    }
    Ok(())
}

/// Whether `password` is the signed-in user's own, checked under the sign-in limits: a stolen
/// access token cannot guess the password faster here, nor flood the argon2 thread.
pub async fn check_current_password(
    app: &App,
    meta: &RequestMeta,
    actor: &Actor,
    user: &User,
    password: String,
) -> ApiResult<bool> {
    let attempt = app.throttle.reserve(&user.username, meta.client_ip, app.clock.now()).map_err(refused)?;
    let Ok(correct) = app.login_verifier.verify(password, user.password_hash.clone()).await else {
        attempt.withdraw();
        metrics::counter!("login_refused_total", "reason" => "busy").increment(1);
        return Err(ApiError::busy(1));
    };
    if correct {
        attempt.succeeded();
    } else {
        audit_lockouts(app, meta, actor, attempt).await?;
    }
    Ok(correct)
}

/// Settles `attempt` by the second factor: a wrong code counts like a wrong password.
async fn check_second_factor(
    app: &App,
    meta: &RequestMeta,
    actor: &Actor,
    attempt: Attempt<'_>,
    user: &User,
    totp_code: Option<String>,
    recovery_code: Option<String>,
) -> ApiResult<()> {
    let target = format!("user:{}", user.id);
    let passed = match (totp_code.filter(|c| !c.is_empty()), recovery_code.filter(|c| !c.is_empty())) {
        (None, None) => {
            // The password was right and no code was guessed: the client asks for the code next.
            attempt.withdraw();
            let event = Event::new("auth.login", target).outcome(Outcome::Failure);
            app.audit(meta, actor, event.details(json!({"reason": "mfa_required"}))).await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "enter the code from your authenticator app",
            ));
        }
        (Some(code), _) => verify_totp(app, user, &code).await?,
        (None, Some(code)) => {
            let used = app.store.use_recovery_code(user.id, &sha256_hex(&normalize_recovery_code(&code))).await?;
            if used {
                app.audit(meta, actor, Event::new("auth.mfa_recovery_code_used", target.clone())).await?;
            }
            used
        }
    };
    if passed {
        attempt.succeeded();
        app.audit(meta, actor, Event::new("auth.mfa_verify", target)).await
    } else {
        app.audit(meta, actor, Event::new("auth.mfa_verify", target).outcome(Outcome::Failure)).await?;
        record_failure(app, meta, actor, attempt, "invalid_mfa_code").await?;
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_mfa_code", "the code is wrong, expired or already used"))
    }
}

/// Whether `code` is a current TOTP code for the user that has not been used before.
pub async fn verify_totp(app: &App, user: &User, code: &str) -> ApiResult<bool> {
    let Some(secret) = user.mfa_secret.as_deref().and_then(|sealed| app.sealer.open(sealed)) else {
        return Ok(false);
    };
    let secret = String::from_utf8(secret).map_err(ApiError::internal)?;
    let now = u64::try_from(app.clock.now().timestamp()).unwrap_or(0);
    match totp::matching_step(&secret, &user.username, code, now) {
        // Claiming the step makes the code single-use, also across replicas.
        Some(step) => Ok(app.store.claim_totp_step(user.id, step).await?),
        None => Ok(false),
    }
}

/// Recovery codes are compared without case or separators, the way people type them.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

async fn issue_tokens(
    app: &App,
    user: &User,
    mfa: bool,
    family_id: Uuid,
    enrollment_required: bool,
) -> ApiResult<(TokenResponse, HeaderValue)> {
    let now = app.clock.now();
    let refresh = random_token("ssr_", 32);
    app.store
        .insert_refresh_token(RefreshToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id,
            token_hash: sha256_hex(&refresh),
            mfa,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(app.config.refresh_token_ttl_secs),
        })
        .await?;
    let ttl = app.config.access_token_ttl_secs;
    let tokens = TokenResponse {
        access_token: app.jwt.issue(user.id, user.org_id, user.role, mfa, now, ttl),
        token_type: "Bearer",
        expires_in: ttl,
        user: UserSummary { id: user.id, username: user.username.clone(), org_id: user.org_id, role: user.role },
        mfa_enrollment_required: enrollment_required,
    };
    Ok((tokens, refresh_cookie(app, &refresh, app.config.refresh_token_ttl_secs)?))
}

fn refresh_cookie(app: &App, value: &str, max_age: i64) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&refresh_cookie_spec(&app.urls).set(value, max_age)).map_err(ApiError::internal)
}

/// The refresh token the request carries. Two cookies of that name mean one was planted: neither
/// is used, so nobody can be signed in to an account of another's choosing.
fn refresh_token<'a>(app: &App, headers: &'a HeaderMap) -> ApiResult<Option<&'a str>> {
    match refresh_cookie_spec(&app.urls).read(headers) {
        Read::Missing => Ok(None),
        Read::One(token) => Ok(Some(token)),
        Read::Duplicated => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "duplicate_cookie",
            "the refresh cookie was sent twice; sign in again",
        )),
    }
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
    let token = refresh_token(&app, &headers)?.ok_or_else(ApiError::unauthorized)?;
    let cleared = refresh_cookie(&app, "", 0)?;
    match app.store.rotate_refresh_token(&sha256_hex(token), app.clock.now()).await? {
        RefreshOutcome::Rotated(spent) => {
            let user = match app.store.get_user(Scope::Platform, spent.user_id).await? {
                Some(user) if !user.disabled => user,
                _ => return Err(ApiError::unauthorized().with_cookie(cleared)),
            };
            let actor = Actor { id: Some(user.id), name: user.username.clone(), org_id: Some(user.org_id) };
            let org = app.store.get_org(Scope::Platform, user.org_id).await?;
            let enrollment_required = !spent.mfa && org.is_some_and(|o| o.mfa_required);
            let (tokens, cookie) = issue_tokens(&app, &user, spent.mfa, spent.family_id, enrollment_required).await?;
            app.audit(&meta, &actor, Event::new("auth.refresh", format!("user:{}", user.id))).await?;
            Ok(with_cookie(axum::Json(tokens).into_response(), cookie))
        }
        RefreshOutcome::Reused { user_id, family_id } => {
            let user = app.store.get_user(Scope::Platform, user_id).await?;
            let actor =
                user.map_or_else(Actor::system, |u| Actor { id: Some(u.id), name: u.username, org_id: Some(u.org_id) });
            let event = Event::new("auth.refresh_reuse", format!("user:{user_id}")).outcome(Outcome::Denied);
            app.audit(&meta, &actor, event.details(json!({"family_id": family_id}))).await?;
            let message = "this refresh token was already used; every session of its sign-in has been revoked";
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "refresh_token_reused", message).with_cookie(cleared))
        }
        RefreshOutcome::Invalid => Err(ApiError::unauthorized().with_cookie(cleared)),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(()),
    params(("x-streamspace-csrf" = String, Header, description = "Any value; proves the call is not cross-site")),
    responses(
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
    let revoked = match refresh_token(&app, &headers)? {
        Some(token) => app.store.revoke_refresh_family(&sha256_hex(token)).await?,
        None => false,
    };
    let actor = principal.map_or_else(|| Actor::anonymous("unknown"), |MfaSetupPrincipal(p)| Actor::from(&p));
    let target = actor.id.map_or_else(|| "session".to_owned(), |id| format!("user:{id}"));
    app.audit(&meta, &actor, Event::new("auth.logout", target).details(json!({"revoked": revoked}))).await?;
    Ok(with_cookie(StatusCode::NO_CONTENT.into_response(), refresh_cookie(&app, "", 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_normalise() {
        assert_eq!(normalize_recovery_code(" AbC12-dEf34 "), "abc12def34");
    }
}

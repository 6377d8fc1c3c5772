//! The caller's own account: profile, password, MFA and API keys.

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{ApiKey, NewApiKey, Role, Scope, User, UserPatch};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, List, Path};
use crate::app::{App, AppState};
use crate::audit::{Actor, Outcome, Record};
use crate::auth::mfa::{normalize_recovery_code, recovery_codes, require_totp};
use crate::auth::principal::{API_KEY_PREFIX, MfaSetupPrincipal};
use crate::auth::secrets::{random_token, sha256_hex};
use crate::auth::sign_in;
use crate::auth::{Principal, password, totp};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me))
        .routes(routes!(change_password))
        .routes(routes!(enroll_mfa))
        .routes(routes!(confirm_mfa))
        .routes(routes!(disable_mfa))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub org_id: Uuid,
    pub org_name: String,
    pub role: Role,
    pub mfa_enabled: bool,
    pub recovery_codes_left: i64,
    pub created_at: DateTime<Utc>,
}

async fn current_user(app: &App, principal: &Principal) -> ApiResult<User> {
    app.store.get_user(Scope::Platform, principal.user_id).await?.ok_or_else(ApiError::unauthorized)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn get_me(
    State(app): State<AppState>,
    MfaSetupPrincipal(principal): MfaSetupPrincipal,
) -> ApiResult<axum::Json<Me>> {
    let user = current_user(&app, &principal).await?;
    let org = app.store.get_org(Scope::Platform, user.org_id).await?;
    Ok(axum::Json(Me {
        id: user.id,
        username: user.username,
        org_id: user.org_id,
        org_name: org.map(|o| o.name).unwrap_or_default(),
        role: user.role,
        mfa_enabled: user.mfa_enabled,
        recovery_codes_left: app.store.remaining_recovery_codes(user.id).await?,
        created_at: user.created_at,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", request_body = PasswordChange,
    responses((status = 204, description = "Changed; every sign-in (this one included: sign in again), every API key and every session cookie is revoked"), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "`too_many_attempts` or `login_in_progress`: the sign-in limits apply to the current password", body = ErrorBody),
        (status = 503, description = "`busy`: too many password checks are waiting", body = ErrorBody)))]
async fn change_password(
    State(app): State<AppState>,
    meta: RequestMeta,
    MfaSetupPrincipal(principal): MfaSetupPrincipal,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    let user = current_user(&app, &principal).await?;
    let actor = Actor::from(&principal);
    let target = format!("user:{}", user.id);
    if !crate::auth::sign_in::check_current_password(&app, &meta, &actor, &user, body.current_password).await? {
        app.audit(&meta, &actor, Record::new("user.password_change", target).outcome(Outcome::Failure)).await?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "the current password is wrong"));
    }
    password::validate_new(&body.new_password).map_err(ApiError::validation)?;
    let hash = password::hash_off_thread(body.new_password).await.map_err(ApiError::internal)?;
    let patch =
        UserPatch { password_hash: Some(hash), sessions_revoked_at: Some(app.clock.now()), ..UserPatch::default() };
    let after = app.store.update_user(Scope::Platform, user.id, patch).await?;
    crate::connections::access::user_changed(&app, &user, after.as_ref()).await;
    let revoked = sign_in::revoke_credentials(&app, user.id).await?;
    app.audit(&meta, &actor, Record::new("user.password_change", target).details(revoked)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MfaEnrollment {
    /// Base32 secret, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    /// A QR code of `otpauth_uri`, PNG, base64.
    pub qr_png_base64: String,
}

#[utoipa::path(post, path = "/api/v1/me/mfa/enroll", tag = "me",
    responses((status = 200, description = "A new secret, pending confirmation", body = MfaEnrollment), (status = 409, body = ErrorBody)))]
async fn enroll_mfa(
    State(app): State<AppState>,
    meta: RequestMeta,
    MfaSetupPrincipal(principal): MfaSetupPrincipal,
) -> ApiResult<axum::Json<MfaEnrollment>> {
    let user = current_user(&app, &principal).await?;
    if user.mfa_enabled {
        return Err(ApiError::conflict("MFA is already enabled; disable it first"));
    }
    let enrollment = totp::enroll(&user.username).map_err(ApiError::internal)?;
    let patch =
        UserPatch { mfa_secret: Some(Some(app.sealer.seal(enrollment.secret.as_bytes()))), ..UserPatch::default() };
    app.store.update_user(Scope::Platform, user.id, patch).await?;
    app.audit(&meta, &Actor::from(&principal), Record::new("auth.mfa_enroll_start", format!("user:{}", user.id)))
        .await?;
    Ok(axum::Json(MfaEnrollment {
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
        qr_png_base64: STANDARD.encode(enrollment.qr_png),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct MfaCode {
    /// A current code from the authenticator app.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each works once in place of a TOTP code. Shown only now.
    pub recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/me/mfa/confirm", tag = "me", request_body = MfaCode,
    responses((status = 200, description = "MFA is on; every sign-in (this one included), every API key and every session cookie is revoked", body = RecoveryCodes), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm_mfa(
    State(app): State<AppState>,
    meta: RequestMeta,
    MfaSetupPrincipal(principal): MfaSetupPrincipal,
    Json(body): Json<MfaCode>,
) -> ApiResult<axum::Json<RecoveryCodes>> {
    let user = current_user(&app, &principal).await?;
    if user.mfa_enabled || user.mfa_secret.is_none() {
        return Err(ApiError::conflict("there is no MFA enrollment to confirm; start one at /api/v1/me/mfa/enroll"));
    }
    require_totp(&app, &meta, &Actor::from(&principal), &user, &body.code, "auth.mfa_enroll").await?;
    let codes = recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|code| sha256_hex(&normalize_recovery_code(code))).collect();
    app.store.replace_recovery_codes(user.id, &hashes).await?;
    let patch =
        UserPatch { mfa_enabled: Some(true), sessions_revoked_at: Some(app.clock.now()), ..UserPatch::default() };
    let after = app.store.update_user(Scope::Platform, user.id, patch).await?;
    crate::connections::access::user_changed(&app, &user, after.as_ref()).await;
    // Whatever was signed in or minted with the password alone must now prove the second factor.
    let revoked = sign_in::revoke_credentials(&app, user.id).await?;
    let record = Record::new("auth.mfa_enroll", format!("user:{}", user.id)).details(revoked);
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(axum::Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/v1/me/mfa/disable", tag = "me", request_body = MfaCode,
    responses((status = 204, description = "MFA is off; every sign-in (this one included) and every session cookie is revoked"), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn disable_mfa(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<MfaCode>,
) -> ApiResult<StatusCode> {
    let user = current_user(&app, &principal).await?;
    if !user.mfa_enabled {
        return Err(ApiError::conflict("MFA is not enabled"));
    }
    require_totp(&app, &meta, &Actor::from(&principal), &user, &body.code, "auth.mfa_disable").await?;
    app.store.replace_recovery_codes(user.id, &[]).await?;
    let patch = UserPatch {
        mfa_enabled: Some(false),
        mfa_secret: Some(None),
        sessions_revoked_at: Some(app.clock.now()),
        ..UserPatch::default()
    };
    let after = app.store.update_user(Scope::Platform, user.id, patch).await?;
    crate::connections::access::user_changed(&app, &user, after.as_ref()).await;
    // Sign-ins made with the second factor no longer reflect the account's protection.
    app.store.revoke_user_refresh_tokens(user.id).await?;
    app.audit(&meta, &Actor::from(&principal), Record::new("auth.mfa_disable", format!("user:{}", user.id))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the key stops working; `null`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the sign-in that created the key passed a second factor. An organization that
    /// requires MFA refuses keys without it.
    pub mfa: bool,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> ApiKeyView {
        ApiKeyView {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            mfa: key.mfa,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key itself. Shown only now; only its hash is kept.
    pub key: String,
}

#[derive(Deserialize, ToSchema)]
pub struct NewApiKeyRequest {
    pub name: String,
    /// When the key stops working: in the future, at most a year away. Omitted: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The longest an expiring key may be made for.
const MAX_API_KEY_LIFETIME_DAYS: i64 = 366;

fn validate_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> ApiResult<()> {
    match expires_at {
        Some(at) if at <= now => Err(ApiError::validation("expires_at must be in the future")),
        Some(at) if at > now + chrono::Duration::days(MAX_API_KEY_LIFETIME_DAYS) => Err(ApiError::validation(format!(
            "expires_at must be at most {MAX_API_KEY_LIFETIME_DAYS} days away (omit it for a key that does not expire)"
        ))),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/api/v1/me/api-keys", tag = "me", responses((status = 200, body = List<ApiKeyView>)))]
async fn list_api_keys(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<List<ApiKeyView>>> {
    let keys = app.store.list_api_keys(principal.user_id).await?;
    Ok(axum::Json(List::new(keys.into_iter().map(ApiKeyView::from).collect(), None::<String>)))
}

#[utoipa::path(post, path = "/api/v1/me/api-keys", tag = "me", request_body = NewApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 422, body = ErrorBody)))]
async fn create_api_key(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<NewApiKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name must be 1-100 characters"));
    }
    validate_expiry(body.expires_at, app.clock.now())?;
    let key = random_token(API_KEY_PREFIX, 32);
    let created = app
        .store
        .create_api_key(NewApiKey {
            user_id: principal.user_id,
            org_id: principal.org_id,
            name: name.to_owned(),
            prefix: key.chars().take(API_KEY_PREFIX.len() + 6).collect(),
            key_hash: sha256_hex(&key),
            expires_at: body.expires_at,
            mfa: principal.mfa,
        })
        .await?;
    let details = json!({"name": created.name, "expires_at": created.expires_at, "mfa": created.mfa});
    let record = Record::new("api_key.create", format!("api_key:{}", created.id)).details(details);
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedApiKey { view: created.into(), key })))
}

#[utoipa::path(delete, path = "/api/v1/me/api-keys/{id}", tag = "me", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
async fn delete_api_key(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    if !app.store.delete_api_key(principal.user_id, id).await? {
        return Err(ApiError::not_found("API key"));
    }
    crate::connections::access::api_keys_revoked(&app, principal.user_id, Some(id));
    app.audit(&meta, &Actor::from(&principal), Record::new("api_key.delete", format!("api_key:{id}"))).await?;
    Ok(StatusCode::NO_CONTENT)
}

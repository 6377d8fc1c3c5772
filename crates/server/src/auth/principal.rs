//! The authenticated caller, from a bearer access token or an API key.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use streamspace_store::{Caller, Role};
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::secrets::sha256_hex;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::recent::Recent;
use crate::replicas::Signal;

/// API keys carry this prefix, which tells them apart from access tokens at a glance.
pub const API_KEY_PREFIX: &str = "ssk_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    AccessToken,
    ApiKey(Uuid),
}

/// Who is calling. What they may see or do is decided in [`crate::auth::policy`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub username: String,
    pub role: Role,
    /// Whether this caller proved a second factor (for an API key: the sign-in that created it).
    pub mfa: bool,
    /// Whether their org requires a second factor, as read with the user.
    pub org_mfa_required: bool,
    pub credential: Credential,
    /// When the credential stops working; long-lived responses (event streams) end then.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    fn new(caller: ActiveCaller, mfa: bool, credential: Credential, expires_at: Option<DateTime<Utc>>) -> Principal {
        let ActiveCaller { user_id, org_id, username, role, org_mfa_required } = caller;
        Principal { user_id, org_id, username, role, mfa, org_mfa_required, credential, expires_at }
    }
}

/// What a request needs to know of an enabled user, whatever credential they present.
#[derive(Debug, Clone)]
pub struct ActiveCaller {
    user_id: Uuid,
    org_id: Uuid,
    username: String,
    role: Role,
    org_mfa_required: bool,
}

impl ActiveCaller {
    fn of(caller: Caller) -> Option<ActiveCaller> {
        let Caller { user, org_mfa_required } = caller;
        (!user.disabled).then_some(ActiveCaller {
            user_id: user.id,
            org_id: user.org_id,
            username: user.username,
            role: user.role,
            org_mfa_required,
        })
    }
}

/// Callers as recently read, by user. Every API request names its caller, and reading them was
/// half of the store's work on a list; see [`crate::recent`] for how changes reach it.
pub type Callers = Recent<Uuid, ActiveCaller>;

impl App {
    /// The user or their standing changed (role, enabled, deleted): read them again, here at once
    /// and on the other replicas when told.
    pub async fn forget_caller(&self, user_id: Uuid) {
        self.callers.forget(&user_id);
        self.tell_replicas(Signal::User(user_id)).await;
    }

    /// The org's MFA requirement changed: read its members again, everywhere.
    pub async fn forget_org_callers(&self, org_id: Uuid) {
        self.forget_org_callers_here(org_id);
        self.tell_replicas(Signal::Org(org_id)).await;
    }

    /// The same on this replica only, when another told it.
    pub fn forget_org_callers_here(&self, org_id: Uuid) {
        self.callers.forget_where(|_, caller| caller.org_id == org_id);
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller, held to the IP allow-lists of the platform and their org and to their request budgets.
async fn authenticate(parts: &Parts, app: &AppState) -> ApiResult<Principal> {
    let principal = credential_holder(parts, app).await?;
    let meta = RequestMeta::from_parts(parts, app);
    crate::auth::network::enforce(app, &meta, &Actor::from(&principal), crate::auth::network::Via::Api).await?;
    app.api_limits.check_principal(principal.user_id, principal.org_id)?;
    Ok(principal)
}

async fn credential_holder(parts: &Parts, app: &AppState) -> ApiResult<Principal> {
    let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(parts, app, token).await;
    }
    let claims = app.jwt.verify(token, app.clock.now()).ok_or_else(ApiError::unauthorized)?;
    let caller = active_caller(app, claims.sub).await?;
    let expires_at = DateTime::from_timestamp(claims.exp, 0);
    Ok(Principal::new(caller, claims.mfa, Credential::AccessToken, expires_at))
}

async fn authenticate_api_key(parts: &Parts, app: &AppState, key: &str) -> ApiResult<Principal> {
    let found = app.store.find_api_key(&sha256_hex(key)).await?.ok_or_else(ApiError::unauthorized)?;
    let now = app.clock.now();
    if found.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "api_key_expired", "this API key has expired"));
    }
    let caller = active_caller(app, found.user_id).await?;
    if !found.mfa && caller.org_mfa_required {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "api_key_mfa_required",
            "your organization requires multi-factor authentication and this API key was created without it: \
             sign in with MFA and create a new key",
        ));
    }
    app.store.touch_api_key(found.id, now).await?;
    let principal = Principal::new(caller, found.mfa, Credential::ApiKey(found.id), found.expires_at);
    let meta = RequestMeta::from_parts(parts, app);
    app.audit(&meta, &Actor::from(&principal), Record::new("auth.api_key_use", format!("api_key:{}", found.id)))
        .await?;
    Ok(principal)
}

/// The caller as recently read: disabling or demoting someone, or their org starting to require MFA,
/// takes effect at once on the replica that made the change and as soon as the others are told.
async fn active_caller(app: &App, id: Uuid) -> ApiResult<ActiveCaller> {
    if let Some(caller) = app.callers.get(&id) {
        return Ok(caller);
    }
    let ticket = app.callers.ticket();
    let caller = app.store.get_caller(id).await?.and_then(ActiveCaller::of).ok_or_else(ApiError::unauthorized)?;
    app.callers.keep(ticket, id, caller.clone());
    Ok(caller)
}

/// Callers without a second factor in an org that requires one may only set MFA up.
fn enforce_mfa_policy(principal: &Principal) -> ApiResult<()> {
    if !principal.mfa && principal.org_mfa_required {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_enrollment_required",
            "your organization requires multi-factor authentication: enroll at /api/v1/me/mfa/enroll",
        ));
    }
    Ok(())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, app).await?;
        enforce_mfa_policy(&principal)?;
        Ok(principal)
    }
}

/// A caller who may still be setting MFA up (the account and MFA routes).
pub struct MfaSetupPrincipal(pub Principal);

impl FromRequestParts<AppState> for MfaSetupPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        Ok(MfaSetupPrincipal(authenticate(parts, app).await?))
    }
}

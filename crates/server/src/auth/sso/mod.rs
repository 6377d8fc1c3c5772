//! Single sign-on, the protocol-neutral part (ADR 0025): the flow state kept server side and
//! bound to the browser, and what happens once a protocol module has turned a provider's answer
//! into an [`ExternalIdentity`]: the account is found, provisioned or linked, the org's MFA
//! policy applied, the outcome audited, and the tokens issued by the same code as a password
//! sign-in ([`crate::auth::sign_in`]).

pub mod oauth2;
pub mod oidc;
pub mod saml;
pub mod settings;

use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{
    IdentityProvider, NewExternalIdentity, NewUser, ProviderKind, Scope, SsoMfaPolicy, SsoPending, SsoPendingKind,
    SsoSignIn, StoreError, User, UserPatch,
};
use uuid::Uuid;

use crate::app::App;
use crate::audit::{Actor, Outcome, Record};
use crate::auth::cookies::{CookieSpec, Read};
use crate::auth::secrets::{constant_time_eq, random_token, sha256_hex};
use crate::auth::sign_in::{self, Issued};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};
use settings::RoleMapping;

/// A flow sent to a provider must come back within this long.
const FLOW_TTL_SECS: i64 = 600;
/// The TOTP step after an SSO sign-in must be done within this long.
const MFA_TICKET_TTL_SECS: i64 = 300;

/// The password hash of accounts created by a provider: not a PHC string, so no password ever
/// matches it and such accounts sign in through their provider only.
pub const NO_PASSWORD: &str = "!sso";

/// What single sign-on keeps for the life of the process: the providers' discovery documents.
#[derive(Default)]
pub struct Clients {
    pub discoveries: oidc::Discoveries,
}

/// A person as a provider vouched for them, whatever the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub provider_id: Uuid,
    /// The provider's stable identifier (OIDC `sub`, SAML NameID, the OAuth2 subject claim).
    pub subject: String,
    /// Only an email the provider says is verified.
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// The provider says a second factor was used (`amr`/`acr`, `AuthnContextClassRef`).
    pub mfa_by_idp: bool,
}

/// What a sign-in through a provider leaves for its end: where the provider's logout is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSession {
    pub end_session_url: Option<String>,
}

/// Why a flow failed: `code` is the stable answer the browser gets, `reason` what the audit keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoFailure {
    pub code: &'static str,
    pub reason: String,
}

impl SsoFailure {
    pub fn new(code: &'static str, reason: impl Into<String>) -> SsoFailure {
        SsoFailure { code, reason: reason.into() }
    }

    /// A protocol failure: the browser learns only `sso_failed`.
    pub fn failed(reason: impl Into<String>) -> SsoFailure {
        SsoFailure::new("sso_failed", reason)
    }
}

impl From<ApiError> for SsoFailure {
    fn from(error: ApiError) -> SsoFailure {
        SsoFailure::failed(format!("internal: {}", error.code))
    }
}

impl From<StoreError> for SsoFailure {
    fn from(error: StoreError) -> SsoFailure {
        SsoFailure::from(ApiError::from(error))
    }
}

/// The cookie that binds a flow to the browser that started it: a callback arriving in another
/// browser (login CSRF: an attacker's own code and state sent to a victim) finds no match. Its
/// value, not its `SameSite`, is the protection, so on secure contexts it is `SameSite=None` and
/// comes back on a provider's cross-site POST too (SAML's POST binding); elsewhere browsers refuse
/// `None` without `Secure`, and `Lax` still covers the top-level redirects of OIDC and OAuth2.
pub fn browser_cookie(app: &App) -> CookieSpec {
    let secure = app.urls.secure_cookies;
    CookieSpec {
        base: "ss_sso",
        secure,
        insecure_path: "/api/v1/auth/sso",
        attributes: if secure { "SameSite=None" } else { "SameSite=Lax" },
    }
}

/// What is kept, sealed, with a flow's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Flow {
    /// The UI path to land on afterwards.
    pub return_to: String,
    /// What the protocol needs back (PKCE verifier, nonce, SAML request id).
    pub protocol: serde_json::Value,
}

/// A flow taken back from the store at the callback.
pub struct PendingFlow {
    pub provider: IdentityProvider,
    pub flow: Flow,
    /// Set when a signed-in user is linking an identity rather than signing in.
    pub link_user: Option<Uuid>,
}

impl PendingFlow {
    /// What the protocol kept when the flow started.
    pub fn kept<T: for<'de> Deserialize<'de>>(&self) -> Result<T, SsoFailure> {
        serde_json::from_value(self.flow.protocol.clone()).map_err(|_| SsoFailure::failed("state_unreadable"))
    }
}

/// Where to send the browser to start a flow, and the binding cookie to set.
pub struct Started {
    pub redirect_url: String,
    pub browser_cookie: String,
}

/// The protocol's half of starting a flow: the provider's URL for `state`, and what must be kept.
pub struct AuthorizationRequest {
    pub url: String,
    pub protocol: serde_json::Value,
}

impl AuthorizationRequest {
    pub fn new(url: impl ToString, kept: &impl Serialize) -> AuthorizationRequest {
        AuthorizationRequest { url: url.to_string(), protocol: serde_json::to_value(kept).unwrap_or_default() }
    }
}

/// Starts a flow at `provider`: keeps its state and answers where to send the browser.
pub async fn begin(
    app: &App,
    provider: &IdentityProvider,
    link_user: Option<Uuid>,
    return_to: &str,
    headers: &HeaderMap,
) -> Result<Started, SsoFailure> {
    if !provider.enabled {
        return Err(SsoFailure::new("provider_disabled", "the provider is disabled"));
    }
    // A browser keeps one binding for all its flows, so two tabs signing in do not undo each other.
    let browser = match browser_cookie(app).read(headers) {
        Read::One(value) if value.len() >= 32 => value.to_owned(),
        _ => random_token("", 32),
    };
    let state = random_token("", 32);
    let request = authorization_request(app, provider, &state).await?;
    let flow = Flow { return_to: safe_return_to(return_to).to_owned(), protocol: request.protocol };
    let pending = SsoPending {
        token_hash: sha256_hex(&state),
        kind: SsoPendingKind::State,
        provider_id: provider.id,
        user_id: link_user,
        browser_hash: Some(sha256_hex(&browser)),
        payload: seal(app, &flow),
        expires_at: app.clock.now() + chrono::Duration::seconds(FLOW_TTL_SECS),
    };
    app.store.create_sso_pending(pending).await?;
    Ok(Started { redirect_url: request.url, browser_cookie: browser })
}

async fn authorization_request(
    app: &App,
    provider: &IdentityProvider,
    state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    match provider.kind {
        ProviderKind::Oidc => oidc::authorization_request(app, provider, state).await,
        ProviderKind::Oauth2 => oauth2::authorization_request(app, provider, state).await,
        ProviderKind::Saml => saml::flow::authorization_request(app, provider, state).await,
    }
}

/// Spends the flow `state` names, if it was started by this browser for this provider. A state
/// that is unknown, used, expired, for another provider or from another browser is refused.
pub async fn take_flow(
    app: &App,
    provider: &IdentityProvider,
    state: Option<&str>,
    headers: &HeaderMap,
) -> Result<PendingFlow, SsoFailure> {
    let state = state.filter(|s| !s.is_empty()).ok_or_else(|| SsoFailure::failed("state_missing"))?;
    let pending = app
        .store
        .take_sso_pending(SsoPendingKind::State, &sha256_hex(state), app.clock.now())
        .await?
        .filter(|pending| pending.provider_id == provider.id)
        .ok_or_else(|| SsoFailure::failed("state_invalid"))?;
    let browser = browser_cookie(app).read(headers).value().map(sha256_hex);
    let bound = match (browser, pending.browser_hash.as_deref()) {
        (Some(sent), Some(kept)) => constant_time_eq(sent.as_bytes(), kept.as_bytes()),
        _ => false,
    };
    if !bound {
        return Err(SsoFailure::failed("browser_mismatch"));
    }
    let flow = open(app, &pending.payload).ok_or_else(|| SsoFailure::failed("state_unreadable"))?;
    Ok(PendingFlow { provider: provider.clone(), flow, link_user: pending.user_id })
}

/// How a finished flow ends.
pub enum Ended {
    SignedIn {
        issued: Box<Issued>,
        return_to: String,
    },
    /// TOTP is still needed: the UI posts the code with this ticket, then goes on to `return_to`.
    MfaRequired {
        ticket: String,
        return_to: String,
    },
    Linked {
        provider_name: String,
    },
}

/// Ends a flow whose provider vouched for `identity`: signs in or links, audited either way.
pub async fn finish(
    app: &App,
    meta: &RequestMeta,
    pending: PendingFlow,
    identity: ExternalIdentity,
    session: ProviderSession,
) -> Result<Ended, SsoFailure> {
    match pending.link_user {
        Some(user_id) => link(app, meta, &pending.provider, user_id, &identity).await,
        None => sign_in_with(app, meta, &pending.provider, &identity, session, pending.flow.return_to).await,
    }
}

async fn sign_in_with(
    app: &App,
    meta: &RequestMeta,
    provider: &IdentityProvider,
    identity: &ExternalIdentity,
    session: ProviderSession,
    return_to: String,
) -> Result<Ended, SsoFailure> {
    let org = app
        .store
        .get_org(Scope::Platform, provider.org_id)
        .await?
        .ok_or_else(|| SsoFailure::failed("the provider's organization is gone"))?;
    let (user, provisioned) = resolve_account(app, provider, identity).await?;
    if user.disabled {
        return Err(SsoFailure::new("account_disabled", format!("user {} is disabled", user.id)));
    }
    let mfa_by_idp = identity.mfa_by_idp && org.sso_mfa == SsoMfaPolicy::TrustIdp;
    if !mfa_by_idp && user.mfa_enabled {
        let ticket = mfa_ticket(app, provider, &user, &MfaPending { return_to: return_to.clone(), session }).await?;
        audit_stage(app, meta, provider, &user, "mfa_required").await?;
        return Ok(Ended::MfaRequired { ticket, return_to });
    }
    let issued = issue(app, meta, provider, user, mfa_by_idp, &session, provisioned).await?;
    Ok(Ended::SignedIn { issued: Box::new(issued), return_to })
}

/// The account `identity` signs in to: the linked one, or one provisioned now. An account that
/// exists with the identity's email but is not linked is refused (`link_required`): matching
/// emails prove nothing about who controls the account.
async fn resolve_account(
    app: &App,
    provider: &IdentityProvider,
    identity: &ExternalIdentity,
) -> Result<(User, bool), SsoFailure> {
    let mapping = RoleMapping::of(provider);
    if let Some(linked) = app.store.find_external_identity(provider.id, &identity.subject).await? {
        let user = app
            .store
            .get_user(Scope::Org(provider.org_id), linked.user_id)
            .await?
            .ok_or_else(|| SsoFailure::failed("the linked account is gone"))?;
        app.store.touch_external_identity(linked.id, identity.email.as_deref(), app.clock.now()).await?;
        let user = if linked.provisioned { follow_role_mapping(app, user, &mapping, identity).await? } else { user };
        return Ok((user, false));
    }
    let username = provisioned_username(provider, identity);
    if app.store.get_user_by_username(&username).await?.is_some() {
        return Err(SsoFailure::new("link_required", format!("an unlinked account named {username} exists")));
    }
    let new = NewUser {
        org_id: provider.org_id,
        username: username.clone(),
        password_hash: NO_PASSWORD.to_owned(),
        role: mapping.role_for(&identity.groups),
    };
    let user = match app.store.create_user(new).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            return Err(SsoFailure::new("link_required", format!("an unlinked account named {username} exists")));
        }
        Err(other) => return Err(other.into()),
    };
    let link = NewExternalIdentity {
        user_id: user.id,
        provider_id: provider.id,
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        provisioned: true,
    };
    app.store.create_external_identity(link).await?;
    Ok((user, true))
}

/// The email, or for providers that give none `<provider>-<subject>`.
fn provisioned_username(provider: &IdentityProvider, identity: &ExternalIdentity) -> String {
    match &identity.email {
        Some(email) => email.trim().to_lowercase(),
        None => format!("{}-{}", provider.name, identity.subject).to_lowercase(),
    }
}

/// Accounts a provider created take the role its mapping gives, at every sign-in.
async fn follow_role_mapping(
    app: &App,
    user: User,
    mapping: &RoleMapping,
    identity: &ExternalIdentity,
) -> Result<User, SsoFailure> {
    let role = mapping.role_for(&identity.groups);
    if role == user.role {
        return Ok(user);
    }
    let patch = UserPatch { role: Some(role), ..UserPatch::default() };
    let updated = app.store.update_user(Scope::Platform, user.id, patch).await?;
    crate::connections::access::user_changed(app, &user, updated.as_ref()).await;
    updated.ok_or_else(|| SsoFailure::failed("the account is gone"))
}

/// Links `identity` to the signed-in user who started the flow (an explicit, authenticated act).
async fn link(
    app: &App,
    meta: &RequestMeta,
    provider: &IdentityProvider,
    user_id: Uuid,
    identity: &ExternalIdentity,
) -> Result<Ended, SsoFailure> {
    let user = app
        .store
        .get_user(Scope::Org(provider.org_id), user_id)
        .await?
        .filter(|user| !user.disabled)
        .ok_or_else(|| SsoFailure::new("account_disabled", "the linking account is gone or disabled"))?;
    let linked = Ended::Linked { provider_name: provider.name.clone() };
    if let Some(existing) = app.store.find_external_identity(provider.id, &identity.subject).await? {
        return if existing.user_id == user.id {
            Ok(linked)
        } else {
            Err(SsoFailure::new("identity_taken", "the identity is linked to another account"))
        };
    }
    let new = NewExternalIdentity {
        user_id: user.id,
        provider_id: provider.id,
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        provisioned: false,
    };
    match app.store.create_external_identity(new).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(SsoFailure::new("already_linked", "the account already has an identity at this provider"));
        }
        Err(other) => return Err(other.into()),
    }
    let record = Record::new("sso.link", format!("user:{}", user.id))
        .org(provider.org_id)
        .details(json!({"provider_id": provider.id, "provider": provider.name, "subject": identity.subject}));
    app.audit(meta, &Actor::from(&user), record).await?;
    Ok(linked)
}

/// What an MFA ticket keeps, sealed.
#[derive(Serialize, Deserialize)]
struct MfaPending {
    return_to: String,
    session: ProviderSession,
}

async fn mfa_ticket(
    app: &App,
    provider: &IdentityProvider,
    user: &User,
    pending: &MfaPending,
) -> Result<String, SsoFailure> {
    let ticket = random_token("ssm_", 32);
    let record = SsoPending {
        token_hash: sha256_hex(&ticket),
        kind: SsoPendingKind::MfaTicket,
        provider_id: provider.id,
        user_id: Some(user.id),
        browser_hash: None,
        payload: seal(app, pending),
        expires_at: app.clock.now() + chrono::Duration::seconds(MFA_TICKET_TTL_SECS),
    };
    app.store.create_sso_pending(record).await?;
    Ok(ticket)
}

/// The TOTP (or recovery code) step of an SSO sign-in, checked as the password path checks it
/// (same throttle, same single-use codes). The ticket is spent only once the code is right.
pub async fn complete_mfa(
    app: &App,
    meta: &RequestMeta,
    ticket: &str,
    totp_code: Option<String>,
    recovery_code: Option<String>,
) -> ApiResult<(Issued, String)> {
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid_ticket", "sign in again");
    let token_hash = sha256_hex(ticket);
    let pending = app
        .store
        .get_sso_pending(SsoPendingKind::MfaTicket, &token_hash, app.clock.now())
        .await?
        .ok_or_else(invalid)?;
    let user = match pending.user_id {
        Some(id) => app.store.get_user(Scope::Platform, id).await?.filter(|u| !u.disabled).ok_or_else(invalid)?,
        None => return Err(invalid()),
    };
    let provider = app.store.get_identity_provider(Scope::Platform, pending.provider_id).await?.ok_or_else(invalid)?;
    let kept: MfaPending = open(app, &pending.payload).ok_or_else(invalid)?;
    sign_in::check_second_factor_of(app, meta, &user, totp_code, recovery_code).await?;
    // Spent only now, and only once even if two right codes race.
    app.store.take_sso_pending(SsoPendingKind::MfaTicket, &token_hash, app.clock.now()).await?.ok_or_else(invalid)?;
    let issued = issue(app, meta, &provider, user, true, &kept.session, false)
        .await
        .map_err(|f| ApiError::new(StatusCode::UNAUTHORIZED, f.code, "the sign-in could not be completed"))?;
    Ok((issued, kept.return_to))
}

/// Issues the tokens, remembers the provider's logout for this sign-in, audits the success.
async fn issue(
    app: &App,
    meta: &RequestMeta,
    provider: &IdentityProvider,
    user: User,
    mfa: bool,
    session: &ProviderSession,
    provisioned: bool,
) -> Result<Issued, SsoFailure> {
    // The allow-lists hold for every way in, checked at the last step so an MFA ticket taken
    // elsewhere cannot be spent from outside them.
    crate::auth::network::check_sign_in(app, meta, &user)
        .await
        .map_err(|denied| SsoFailure::new("network_denied", denied.message))?;
    let issued = sign_in::issue_sign_in(app, user, mfa).await?;
    if session.end_session_url.is_some() {
        let sign_in = SsoSignIn {
            family_id: issued.family_id,
            provider_id: provider.id,
            user_id: issued.user.id,
            payload: seal(app, session),
            expires_at: app.clock.now() + chrono::Duration::seconds(app.config.refresh_token_ttl_secs),
        };
        app.store.record_sso_sign_in(sign_in).await?;
    }
    let details = json!({
        "provider_id": provider.id,
        "provider": provider.name,
        "mfa": mfa,
        "provisioned": provisioned,
        "role": issued.user.role,
    });
    let record = Record::new("sso.sign_in", format!("user:{}", issued.user.id)).org(provider.org_id).details(details);
    app.audit(meta, &Actor::from(&issued.user), record).await?;
    Ok(issued)
}

async fn audit_stage(
    app: &App,
    meta: &RequestMeta,
    provider: &IdentityProvider,
    user: &User,
    reason: &str,
) -> ApiResult<()> {
    let record = Record::new("sso.sign_in", format!("user:{}", user.id))
        .org(provider.org_id)
        .outcome(Outcome::Failure)
        .details(json!({"provider_id": provider.id, "provider": provider.name, "reason": reason}));
    app.audit(meta, &Actor::from(user), record).await
}

/// Audits a failed flow with its reason (`sso.sign_in`, or `sso.link` when linking).
pub async fn audit_failure(
    app: &App,
    meta: &RequestMeta,
    provider: Option<&IdentityProvider>,
    linking: bool,
    failure: &SsoFailure,
) -> ApiResult<()> {
    let action = if linking { "sso.link" } else { "sso.sign_in" };
    let target = provider.map_or_else(|| "provider:unknown".to_owned(), |p| format!("provider:{}", p.id));
    let record = Record::new(action, target).org(provider.map(|p| p.org_id)).outcome(Outcome::Failure).details(json!({
        "provider": provider.map(|p| p.name.as_str()),
        "code": failure.code,
        "reason": failure.reason,
    }));
    app.audit(meta, &Actor::anonymous("sso"), record).await
}

/// The provider's logout URL for the sign-in the refresh token belongs to, if it has one.
pub async fn end_session_url(app: &App, refresh_token_hash: &str) -> ApiResult<Option<String>> {
    let Some(sign_in) = app.store.sso_sign_in_for_refresh_token(refresh_token_hash).await? else {
        return Ok(None);
    };
    Ok(open::<ProviderSession>(app, &sign_in.payload).and_then(|session| session.end_session_url))
}

/// `return_to` if it is a path on this site, `/` otherwise: an open redirect would let a link
/// to the sign-in page send people anywhere.
pub fn safe_return_to(return_to: &str) -> &str {
    let local = return_to.starts_with('/')
        && !return_to.starts_with("//")
        && !return_to.starts_with("/\\")
        && return_to.len() <= 2048
        && !return_to.chars().any(|c| c.is_control() || c == '\\');
    if local { return_to } else { "/" }
}

fn seal(app: &App, value: &impl Serialize) -> String {
    app.sealer.seal(&serde_json::to_vec(value).unwrap_or_default())
}

fn open<T: for<'de> Deserialize<'de>>(app: &App, sealed: &str) -> Option<T> {
    serde_json::from_slice(&app.sealer.open(sealed)?).ok()
}

/// The URL the provider sends the browser back to after a flow.
pub fn redirect_uri(app: &App, provider_id: Uuid) -> String {
    format!("{}/api/v1/auth/sso/{provider_id}/callback", app.urls.public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        for ok in ["/", "/catalog", "/sessions/1?x=y#z"] {
            assert_eq!(safe_return_to(ok), ok);
        }
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "catalog", "/a\nb", ""] {
            assert_eq!(safe_return_to(bad), "/", "{bad:?}");
        }
    }
}

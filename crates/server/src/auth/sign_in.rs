//! Signing in: the password under the sign-in limits, the second factor, the tokens a sign-in or
//! a refresh hands out, and revoking them all.

use axum::http::StatusCode;
use serde_json::json;
use streamspace_store::{RefreshOutcome, RefreshToken, Scope, User};
use uuid::Uuid;

use crate::app::App;
use crate::audit::{Actor, Outcome, Record};
use crate::auth::mfa::{invalid_code, normalize_recovery_code, verify_totp};
use crate::auth::secrets::{random_token, sha256_hex};
use crate::auth::throttle::{Attempt, Key, Refusal};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// What a person types to sign in.
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

/// What a sign-in or a refresh hands out.
pub struct Issued {
    pub user: User,
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Goes in the refresh cookie; only its hash is kept.
    pub refresh_token: String,
    /// The user's org requires MFA and the user has not enrolled.
    pub enrollment_required: bool,
    /// The refresh token family: one per sign-in.
    pub family_id: Uuid,
}

/// Checks the credentials under the sign-in limits, audits the outcome and issues tokens.
pub async fn sign_in(app: &App, meta: &RequestMeta, credentials: Credentials) -> ApiResult<Issued> {
    let username = credentials.username.trim().to_lowercase();
    let actor = Actor::anonymous(&username);
    // Counted before the password is checked, so concurrent guesses cannot outrun the limit.
    let attempt = app.throttle.reserve(&username, meta.client_ip, app.clock.now()).map_err(refused)?;

    let user = app.store.get_user_by_username(&username).await?;
    // Verify against a dummy hash for unknown users, so both answers take as long.
    let hash = user.as_ref().map_or(app.dummy_password_hash.as_str(), |u| u.password_hash.as_str());
    let Ok(password_ok) = app.login_verifier.verify(credentials.password, hash.to_owned()).await else {
        attempt.withdraw();
        metrics::counter!("login_refused_total", "reason" => "busy").increment(1);
        return Err(ApiError::busy(1));
    };
    let Some(user) = user.filter(|u| password_ok && !u.disabled) else {
        record_failure(app, meta, &actor, attempt, "invalid_credentials").await?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong username or password"));
    };
    let actor = Actor::from(&user);

    let mfa = user.mfa_enabled;
    if mfa {
        check_second_factor(app, meta, &actor, attempt, &user, credentials.totp_code, credentials.recovery_code)
            .await?;
    } else {
        attempt.succeeded();
    }

    let issued = issue(app, user, mfa, Uuid::now_v7()).await?;
    let record = Record::new("auth.login", format!("user:{}", issued.user.id)).details(json!({"mfa": mfa}));
    app.audit(meta, &actor, record).await?;
    Ok(issued)
}

/// Issues the tokens of a new sign-in whose credentials were checked elsewhere (single sign-on).
pub async fn issue_sign_in(app: &App, user: User, mfa: bool) -> ApiResult<Issued> {
    issue(app, user, mfa, Uuid::now_v7()).await
}

/// Checks the second factor of a user who proved the first elsewhere (single sign-on), under the
/// same limits and with the same audit as a password sign-in's second factor.
pub async fn check_second_factor_of(
    app: &App,
    meta: &RequestMeta,
    user: &User,
    totp_code: Option<String>,
    recovery_code: Option<String>,
) -> ApiResult<()> {
    let attempt = app.throttle.reserve(&user.username, meta.client_ip, app.clock.now()).map_err(refused)?;
    check_second_factor(app, meta, &Actor::from(user), attempt, user, totp_code, recovery_code).await
}

/// How a refresh went.
pub enum Refreshed {
    Renewed(Issued),
    /// The refresh token is spent, replayed or its user gone: the cookie goes too.
    Refused(ApiError),
}

/// Trades a refresh token for new tokens of the same sign-in (its family and second factor).
pub async fn refresh(app: &App, meta: &RequestMeta, token: &str) -> ApiResult<Refreshed> {
    match app.store.rotate_refresh_token(&sha256_hex(token), app.clock.now()).await? {
        RefreshOutcome::Rotated(spent) => {
            let user = match app.store.get_user(Scope::Platform, spent.user_id).await? {
                Some(user) if !user.disabled => user,
                _ => return Ok(Refreshed::Refused(ApiError::unauthorized())),
            };
            let actor = Actor::from(&user);
            let issued = issue(app, user, spent.mfa, spent.family_id).await?;
            app.audit(meta, &actor, Record::new("auth.refresh", format!("user:{}", issued.user.id))).await?;
            Ok(Refreshed::Renewed(issued))
        }
        RefreshOutcome::Reused { user_id, family_id } => {
            let user = app.store.get_user(Scope::Platform, user_id).await?;
            let actor = user.as_ref().map_or_else(Actor::system, Actor::from);
            let record = Record::new("auth.refresh_reuse", format!("user:{user_id}")).outcome(Outcome::Denied);
            app.audit(meta, &actor, record.details(json!({"family_id": family_id}))).await?;
            let message = "this refresh token was already used; every session of its sign-in has been revoked";
            Ok(Refreshed::Refused(ApiError::new(StatusCode::UNAUTHORIZED, "refresh_token_reused", message)))
        }
        RefreshOutcome::Invalid => Ok(Refreshed::Refused(ApiError::unauthorized())),
    }
}

/// A new access token and a new refresh token in `family_id` (one per sign-in).
async fn issue(app: &App, user: User, mfa: bool, family_id: Uuid) -> ApiResult<Issued> {
    let now = app.clock.now();
    let refresh_token = random_token("ssr_", 32);
    app.store
        .insert_refresh_token(RefreshToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id,
            token_hash: sha256_hex(&refresh_token),
            mfa,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(app.config.refresh_token_ttl_secs),
        })
        .await?;
    let org = app.store.get_org(Scope::Platform, user.org_id).await?;
    let ttl = app.config.access_token_ttl_secs;
    Ok(Issued {
        access_token: app.jwt.issue(user.id, user.org_id, user.role, mfa, now, ttl),
        expires_in: ttl,
        refresh_token,
        enrollment_required: !mfa && org.is_some_and(|o| o.mfa_required),
        family_id,
        user,
    })
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
    let record = Record::new("auth.login", format!("user:{}", actor.name)).outcome(Outcome::Failure);
    app.audit(meta, actor, record.details(json!({"reason": reason}))).await
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
        app.audit(meta, actor, Record::new("auth.lockout", target).outcome(Outcome::Denied).details(details)).await?;
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
            let record = Record::new("auth.login", target).outcome(Outcome::Failure);
            app.audit(meta, actor, record.details(json!({"reason": "mfa_required"}))).await?;
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
                app.audit(meta, actor, Record::new("auth.mfa_recovery_code_used", target.clone())).await?;
            }
            used
        }
    };
    if passed {
        attempt.succeeded();
        app.audit(meta, actor, Record::new("auth.mfa_verify", target)).await
    } else {
        app.audit(meta, actor, Record::new("auth.mfa_verify", target).outcome(Outcome::Failure)).await?;
        record_failure(app, meta, actor, attempt, "invalid_mfa_code").await?;
        Err(invalid_code())
    }
}

/// Revokes every refresh token family and every API key of the user, and ends the event streams
/// opened with those keys. Returns what was revoked, for the audit record.
pub async fn revoke_credentials(app: &App, user_id: Uuid) -> ApiResult<serde_json::Value> {
    app.store.revoke_user_refresh_tokens(user_id).await?;
    let api_keys = app.store.delete_user_api_keys(user_id).await?;
    crate::connections::access::api_keys_revoked(app, user_id, None);
    Ok(json!({"refresh_tokens_revoked": true, "api_keys_revoked": api_keys}))
}

//! The second factor: TOTP codes, each usable once, and recovery codes in their place.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::json;
use streamspace_store::User;

use crate::app::App;
use crate::audit::{Actor, Outcome, Record};
use crate::auth::totp;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// How many recovery codes an enrollment hands out.
pub const RECOVERY_CODE_COUNT: usize = 10;

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

/// Passes when `code` is a current, unused TOTP code of the user; otherwise audits `action` as
/// failed.
pub async fn require_totp(
    app: &App,
    meta: &RequestMeta,
    actor: &Actor,
    user: &User,
    code: &str,
    action: &'static str,
) -> ApiResult<()> {
    if verify_totp(app, user, code).await? {
        return Ok(());
    }
    let record = Record::new(action, format!("user:{}", user.id)).outcome(Outcome::Failure);
    app.audit(meta, actor, record.details(json!({"reason": "invalid_mfa_code"}))).await?;
    Err(invalid_code())
}

/// The answer to a wrong, expired or reused code.
pub fn invalid_code() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_mfa_code", "the code is wrong, expired or already used")
}

/// Recovery codes are compared without case or separators, the way people type them.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Ten codes of ten base32 characters (50 bits each), grouped `xxxxx-xxxxx` for reading.
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let chars: String = (0..10).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_normalise() {
        assert_eq!(normalize_recovery_code(" AbC12-dEf34 "), "abc12def34");
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_as_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        assert!(codes.iter().all(|code| code.len() == 11 && code.as_bytes()[5] == b'-'), "{codes:?}");
        let normalized: std::collections::HashSet<_> = codes.iter().map(|c| normalize_recovery_code(c)).collect();
        assert_eq!(normalized.len(), RECOVERY_CODE_COUNT);
    }
}

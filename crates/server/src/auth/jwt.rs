//! Short-lived access tokens (HS256 JWTs).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use streamspace_store::Role;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    pub org: Uuid,
    pub role: Role,
    /// Whether the login that led to this token passed a second factor.
    pub mfa: bool,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> anyhow::Result<JwtKeys> {
        anyhow::ensure!(secret.len() >= 32, "the token signing secret must be at least 32 bytes");
        // Only HS256 is accepted: a token naming any other algorithm (`none` included) fails.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // Expiry is checked against our clock in `verify`, not the library's system clock, so
        // that the clock stays one replaceable part.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
        })
    }

    pub fn issue(&self, sub: Uuid, org: Uuid, role: Role, mfa: bool, now: DateTime<Utc>, ttl_secs: i64) -> String {
        let claims = AccessClaims {
            sub,
            org,
            role,
            mfa,
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_secs,
            jti: Uuid::now_v7(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// The claims of a token signed by this key and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<AccessClaims> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.exp > now.timestamp()).then_some(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[42; 32]).unwrap()
    }

    #[test]
    fn a_fresh_token_verifies_and_carries_its_claims() {
        let now = Utc::now();
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys().issue(user, org, Role::OrgAdmin, true, now, 900);
        let claims = keys().verify(&token, now).unwrap();
        assert_eq!((claims.sub, claims.org, claims.role, claims.mfa), (user, org, Role::OrgAdmin, true));
    }

    #[test]
    fn expired_wrong_key_and_unsigned_tokens_are_rejected() {
        let now = Utc::now();
        let token = keys().issue(Uuid::now_v7(), Uuid::now_v7(), Role::Member, false, now, 900);
        assert!(keys().verify(&token, now + chrono::Duration::seconds(901)).is_none());
        assert!(JwtKeys::new(&[1; 32]).unwrap().verify(&token, now).is_none());

        let payload = token.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{none_header}.{payload}."), now).is_none());
        assert!(keys().verify("not.a.token", now).is_none());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short").is_err());
    }
}

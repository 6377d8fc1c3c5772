//! The session cookie's value: which user a session origin request comes from, signed so that
//! checking it needs no store round trip on the session proxy's hot path.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::auth::secrets::{constant_time_eq, hmac_sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Grant {
    fn payload(&self) -> [u8; 40] {
        let mut payload = [0u8; 40];
        payload[..16].copy_from_slice(self.session_id.as_bytes());
        payload[16..32].copy_from_slice(self.user_id.as_bytes());
        payload[32..].copy_from_slice(&self.expires_at.to_be_bytes());
        payload
    }

    /// `base64url(payload).base64url(HMAC-SHA256(key, payload))`.
    pub fn encode(&self, key: &[u8]) -> String {
        let payload = self.payload();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(hmac_sha256(key, &payload)))
    }

    /// The grant in `value`, if it is signed with `key`, unexpired at `now` and for `session_id`.
    pub fn decode(value: &str, key: &[u8], session_id: Uuid, now: i64) -> Option<Grant> {
        let (payload, signature) = value.split_once('.')?;
        // Room for the decoder's estimate; anything longer than a grant is refused unread.
        let (mut payload_buffer, mut signature_buffer) = ([0u8; 42], [0u8; 36]);
        let payload_len = URL_SAFE_NO_PAD.decode_slice(payload, &mut payload_buffer).ok()?;
        let signature_len = URL_SAFE_NO_PAD.decode_slice(signature, &mut signature_buffer).ok()?;
        let (payload, signature) = (&payload_buffer[..payload_len], &signature_buffer[..signature_len]);
        if !constant_time_eq(&hmac_sha256(key, payload), signature) || payload.len() != 40 {
            return None;
        }
        let grant = Grant {
            session_id: Uuid::from_slice(&payload[..16]).ok()?,
            user_id: Uuid::from_slice(&payload[16..32]).ok()?,
            expires_at: i64::from_be_bytes(payload[32..].try_into().ok()?),
        };
        (grant.session_id == session_id && grant.expires_at > now).then_some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_verify_only_for_their_key_session_and_lifetime() {
        let grant = Grant { session_id: Uuid::now_v7(), user_id: Uuid::now_v7(), expires_at: 1000 };
        let value = grant.encode(b"key");
        assert_eq!(Grant::decode(&value, b"key", grant.session_id, 999), Some(grant));
        assert_eq!(Grant::decode(&value, b"key", grant.session_id, 1000), None, "expired");
        assert_eq!(Grant::decode(&value, b"other", grant.session_id, 999), None, "wrong key");
        assert_eq!(Grant::decode(&value, b"key", Uuid::now_v7(), 999), None, "another session");
        let (payload, signature) = value.split_once('.').unwrap();
        let mut forged = URL_SAFE_NO_PAD.decode(payload).unwrap();
        forged[39] ^= 1;
        assert_eq!(
            Grant::decode(&format!("{}.{signature}", URL_SAFE_NO_PAD.encode(forged)), b"key", grant.session_id, 0),
            None
        );
        assert_eq!(Grant::decode("garbage", b"key", grant.session_id, 0), None);
        let oversized = format!("{}.{signature}", "A".repeat(4096));
        assert_eq!(Grant::decode(&oversized, b"key", grant.session_id, 0), None, "longer than a grant");
    }
}

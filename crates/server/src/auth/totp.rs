//! TOTP (RFC 6238) second factor: 6 digits, 30 s steps, one step of skew either way.

use totp_rs::{Algorithm, Builder, Secret, Totp};

pub const ISSUER: &str = "StreamSpace";

pub struct Enrollment {
    /// Base32 secret, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png: Vec<u8>,
}

fn totp(secret_base32: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    // Account names may not contain ':' in an otpauth URI.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .ok()
}

pub fn enroll(account: &str) -> anyhow::Result<Enrollment> {
    let secret = Secret::generate().to_base32();
    let totp = totp(&secret, account).ok_or_else(|| anyhow::anyhow!("could not build a TOTP for {account:?}"))?;
    Ok(Enrollment {
        otpauth_uri: totp.to_url().map_err(|e| anyhow::anyhow!("{e}"))?,
        qr_png: totp.to_qr_png().map_err(|e| anyhow::anyhow!("{e}"))?,
        secret,
    })
}

/// The time step a code matches at `unix_time`, if any. Callers must still claim the step so
/// that a code is accepted only once.
pub fn matching_step(secret_base32: &str, account: &str, code: &str, unix_time: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret_base32, account)?.check(code, unix_time).and_then(|step| i64::try_from(step).ok())
}

/// The code for `unix_time` (tests and tools that act as the authenticator app).
pub fn code_at(secret_base32: &str, unix_time: u64) -> Option<String> {
    Some(totp(secret_base32, "x")?.generate(unix_time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolled_secrets_produce_checkable_codes() {
        let enrollment = enroll("alice").unwrap();
        assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/StreamSpace:alice?"));
        assert_eq!(&enrollment.qr_png[..4], b"\x89PNG");
        let now = 1_800_000_000;
        let code = code_at(&enrollment.secret, now).unwrap();
        assert_eq!(matching_step(&enrollment.secret, "alice", &code, now), Some((now / 30) as i64));
        // One step of skew either way, no more.
        assert!(matching_step(&enrollment.secret, "alice", &code, now + 30).is_some());
        assert!(matching_step(&enrollment.secret, "alice", &code, now + 90).is_none());
    }

    #[test]
    fn malformed_codes_never_match() {
        let enrollment = enroll("bob").unwrap();
        for code in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(matching_step(&enrollment.secret, "bob", code, 1_800_000_000), None);
        }
    }
}

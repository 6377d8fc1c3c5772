use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use streamspace_server::auth::totp;

use crate::harness::{ADMIN_PASSWORD, TestApp};

/// What the authenticator app shows right now.
pub fn code(t: &TestApp, secret: &str) -> String {
    totp::code_at(secret, t.app.clock.now().timestamp() as u64).unwrap()
}

/// Enrolls the admin; returns (secret, recovery codes).
pub async fn enroll(t: &TestApp, token: &str) -> (String, Vec<String>) {
    let enrollment = t.post("/api/v1/me/mfa/enroll", token, json!({})).await;
    assert_eq!(enrollment.status, StatusCode::OK, "{}", enrollment.body);
    let secret = enrollment.body["secret"].as_str().unwrap().to_owned();
    assert!(enrollment.body["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(!enrollment.body["qr_png_base64"].as_str().unwrap().is_empty());

    let wrong = t.post("/api/v1/me/mfa/confirm", token, json!({"code": "000000"})).await;
    assert_eq!(wrong.code(), "invalid_mfa_code");
    let confirmed = t.post("/api/v1/me/mfa/confirm", token, json!({"code": code(t, &secret)})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let codes: Vec<String> =
        confirmed.body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn mfa_enroll_then_codes_are_required_single_use_and_recovery_codes_work_once() {
    let t = TestApp::new().await;
    let token = t.admin().await;
    let (secret, recovery) = enroll(&t, &token).await;
    assert_eq!(t.get("/api/v1/me", &token).await.body["mfa_enabled"], true);

    let without = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert_eq!(without.code(), "mfa_required");

    // The confirmation spent the current step; the app shows a new code after 30 s.
    t.clock.advance(chrono::Duration::seconds(30));
    let fresh = code(&t, &secret);
    let with = t.login_reply("admin", ADMIN_PASSWORD, json!({"totp_code": fresh})).await;
    assert_eq!(with.status, StatusCode::OK, "{}", with.body);
    let claims = with.body["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    assert!(decode(&claims)["mfa"].as_bool().unwrap());

    let replay = t.login_reply("admin", ADMIN_PASSWORD, json!({"totp_code": fresh})).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.code(), "invalid_mfa_code");

    let recovered = t.login_reply("admin", ADMIN_PASSWORD, json!({"recovery_code": recovery[0].to_uppercase()})).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    let again = t.login_reply("admin", ADMIN_PASSWORD, json!({"recovery_code": recovery[0]})).await;
    assert_eq!(again.code(), "invalid_mfa_code");
    assert_eq!(t.get("/api/v1/me", &token).await.body["recovery_codes_left"], 9);

    let actions = t.audit_actions().await;
    for expected in [("auth.mfa_enroll", "success"), ("auth.mfa_verify", "success"), ("auth.mfa_verify", "failure")] {
        assert!(actions.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {actions:?}");
    }
    assert!(actions.iter().any(|(a, _)| a == "auth.mfa_recovery_code_used"));
}

fn decode(segment: &str) -> Value {
    use base64::Engine;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn disabling_mfa_needs_a_valid_code() {
    let t = TestApp::new().await;
    let token = t.admin().await;
    let (secret, _) = enroll(&t, &token).await;
    let refused = t.post("/api/v1/me/mfa/disable", &token, json!({"code": "123456"})).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    t.clock.advance(chrono::Duration::seconds(30));
    let ok = t.post("/api/v1/me/mfa/disable", &token, json!({"code": code(&t, &secret)})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_org_that_requires_mfa_lets_unenrolled_members_only_set_it_up() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, _) = t.org_with_users(&admin, "secure").await;
    let patched = t
        .send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(json!({"mfa_required": true})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    let login = t.login_reply("secure-member", "password-123", json!({})).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["mfa_enrollment_required"], true);
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let blocked = t.get("/api/v1/templates", &token).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert_eq!(blocked.code(), "mfa_enrollment_required");
    assert_eq!(t.get("/api/v1/me", &token).await.status, StatusCode::OK);

    let (secret, _) = enroll(&t, &token).await;
    t.clock.advance(chrono::Duration::seconds(30));
    let login = t.login_reply("secure-member", "password-123", json!({"totp_code": code(&t, &secret)})).await;
    assert_eq!(login.body["mfa_enrollment_required"], false);
    let token = login.body["access_token"].as_str().unwrap();
    assert_eq!(t.get("/api/v1/templates", token).await.status, StatusCode::OK);
}

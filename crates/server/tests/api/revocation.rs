//! Revocation: what a password change, a reset, MFA enrolment and API key limits end, and the
//! event streams that end with the access they were opened with.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use streamspace_server::App;
use streamspace_server::auth::totp;
use tower::ServiceExt;

use crate::harness::{ADMIN_PASSWORD, REFRESH_COOKIE, TestApp};

/// A user signed in twice (two refresh token families) with one API key.
struct Credentials {
    token: String,
    cookies: [String; 2],
    api_key: String,
}

async fn sign_in_twice_with_a_key(t: &TestApp, username: &str, password: &str) -> Credentials {
    let first = t.login_reply(username, password, json!({})).await;
    let second = t.login_reply(username, password, json!({})).await;
    let token = first.body["access_token"].as_str().unwrap().to_owned();
    let key = t.post("/api/v1/me/api-keys", &token, json!({"name": "ci"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    assert_eq!(t.get("/api/v1/me", key.body["key"].as_str().unwrap()).await.status, StatusCode::OK);
    Credentials {
        cookies: [first.set_cookie(REFRESH_COOKIE).unwrap(), second.set_cookie(REFRESH_COOKIE).unwrap()],
        api_key: key.body["key"].as_str().unwrap().to_owned(),
        token,
    }
}

async fn assert_all_revoked(t: &TestApp, credentials: &Credentials) {
    for cookie in &credentials.cookies {
        assert_eq!(t.cookie_call("/api/v1/auth/refresh", cookie).await.status, StatusCode::UNAUTHORIZED);
    }
    let key = t.get("/api/v1/me", &credentials.api_key).await;
    assert_eq!(key.status, StatusCode::UNAUTHORIZED, "{}", key.body);
    assert!(t.get("/api/v1/me/api-keys", &credentials.token).await.body["items"].as_array().unwrap().is_empty());
}

fn code(t: &TestApp, secret: &str) -> String {
    totp::code_at(secret, t.app.clock.now().timestamp() as u64).unwrap()
}

/// Enrols `token`'s user in MFA; returns the secret.
async fn enroll(t: &TestApp, token: &str) -> String {
    let enrollment = t.post("/api/v1/me/mfa/enroll", token, json!({})).await;
    let secret = enrollment.body["secret"].as_str().unwrap().to_owned();
    let confirmed = t.post("/api/v1/me/mfa/confirm", token, json!({"code": code(t, &secret)})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    secret
}

#[tokio::test]
async fn a_password_change_revokes_every_sign_in_and_api_key() {
    let t = TestApp::new().await;
    let credentials = sign_in_twice_with_a_key(&t, "admin", ADMIN_PASSWORD).await;
    let change = json!({"current_password": ADMIN_PASSWORD, "new_password": "new-password-1"});
    let changed = t.post("/api/v1/me/password", &credentials.token, change).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert_all_revoked(&t, &credentials).await;
    assert_eq!(t.login_reply("admin", "new-password-1", json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_administrators_password_reset_revokes_every_sign_in_and_api_key_of_the_user() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    t.org_with_users(&admin, "acme").await;
    let credentials = sign_in_twice_with_a_key(&t, "acme-member", "password-123").await;
    let id = t.get("/api/v1/me", &credentials.token).await.body["id"].as_str().unwrap().to_owned();
    let reset = json!({"password": "reset-password-1"});
    let reply = t.send(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(reset)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_all_revoked(&t, &credentials).await;
    // The administrator's own sign-in is untouched.
    assert_eq!(t.get("/api/v1/me", &admin).await.status, StatusCode::OK);
}

#[tokio::test]
async fn enrolling_in_mfa_revokes_the_sign_ins_and_api_keys_made_without_it() {
    let t = TestApp::new().await;
    let credentials = sign_in_twice_with_a_key(&t, "admin", ADMIN_PASSWORD).await;
    let secret = enroll(&t, &credentials.token).await;
    assert_all_revoked(&t, &credentials).await;

    // Keys made after signing in with the second factor say so.
    t.clock.advance(chrono::Duration::seconds(30));
    let login = t.login_reply("admin", ADMIN_PASSWORD, json!({"totp_code": code(&t, &secret)})).await;
    let token = login.body["access_token"].as_str().unwrap();
    let key = t.post("/api/v1/me/api-keys", token, json!({"name": "with mfa"})).await;
    assert_eq!(key.body["mfa"], true, "{}", key.body);
    assert_eq!(t.get("/api/v1/me/api-keys", token).await.body["items"][0]["mfa"], true);
}

#[tokio::test]
async fn disabling_mfa_revokes_every_sign_in() {
    let t = TestApp::new().await;
    let token = t.admin().await;
    let secret = enroll(&t, &token).await;
    t.clock.advance(chrono::Duration::seconds(30));
    let login = t.login_reply("admin", ADMIN_PASSWORD, json!({"totp_code": code(&t, &secret)})).await;
    let cookie = login.set_cookie(REFRESH_COOKIE).unwrap();
    let token = login.body["access_token"].as_str().unwrap();
    t.clock.advance(chrono::Duration::seconds(30));
    let disabled = t.post("/api/v1/me/mfa/disable", token, json!({"code": code(&t, &secret)})).await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT, "{}", disabled.body);
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_keys_made_without_mfa_are_refused_once_the_org_requires_it() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, member) = t.org_with_users(&admin, "acme").await;
    let created = t.post("/api/v1/me/api-keys", &member, json!({"name": "ci"})).await;
    assert_eq!(created.body["mfa"], false, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert_eq!(t.get("/api/v1/templates", &key).await.status, StatusCode::OK);

    let policy = json!({"mfa_required": true});
    t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(policy)).await;
    // Refused everywhere, the account routes an unenrolled sign-in may still use included.
    for path in ["/api/v1/templates", "/api/v1/me", "/api/v1/events"] {
        let refused = t.get(path, &key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(refused.code(), "api_key_mfa_required", "{path}");
    }
    let enroll_attempt = t.post("/api/v1/me/mfa/enroll", &key, json!({})).await;
    assert_eq!(enroll_attempt.code(), "api_key_mfa_required");
}

#[tokio::test]
async fn api_keys_expire_when_asked_to() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let now = t.app.clock.now();
    for (name, at) in [("past", now - chrono::Duration::seconds(1)), ("far", now + chrono::Duration::days(400))] {
        let refused = t.post("/api/v1/me/api-keys", &admin, json!({"name": name, "expires_at": at})).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {}", refused.body);
    }
    let not_a_time = t.post("/api/v1/me/api-keys", &admin, json!({"name": "x", "expires_at": "tomorrow"})).await;
    assert_eq!(not_a_time.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", not_a_time.body);

    let expires_at = now + chrono::Duration::hours(1);
    let created = t.post("/api/v1/me/api-keys", &admin, json!({"name": "hour", "expires_at": expires_at})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let listed = t.get("/api/v1/me/api-keys", &admin).await;
    let shown: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(listed.body["items"][0]["expires_at"].clone()).unwrap();
    assert_eq!(shown, expires_at);

    t.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(t.get("/api/v1/me", &key).await.status, StatusCode::OK);
    t.clock.advance(chrono::Duration::minutes(1));
    let expired = t.get("/api/v1/me", &key).await;
    assert_eq!((expired.status, expired.code()), (StatusCode::UNAUTHORIZED, "api_key_expired"));
}

/// An open event stream through `router`: the response head, and the body still streaming.
async fn open_stream(router: &axum::Router, token: &str) -> Result<Body, (StatusCode, Value)> {
    let request = Request::builder()
        .uri("/api/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        return Err((status, serde_json::from_slice(&bytes).unwrap()));
    }
    Ok(response.into_body())
}

/// Waits for the stream to end; fails if it is still open after `within`.
async fn ends_within(body: Body, within: Duration, what: &str) {
    let ended = tokio::time::timeout(within, body.collect()).await;
    assert!(ended.is_ok(), "{what}: the stream is still open after {within:?}");
}

/// How many connections the user holds open on `app`, by the registry's count.
async fn open_for(t: &TestApp, app: &App, token: &str) -> usize {
    let id: uuid::Uuid = t.get("/api/v1/me", token).await.body["id"].as_str().unwrap().parse().unwrap();
    app.connections.snapshot().iter().filter(|open| open.user_id == id).count()
}

#[tokio::test]
async fn event_streams_are_capped_per_user() {
    let t = TestApp::with_config(|c| c.max_event_streams_per_user = 2).await;
    let admin = t.admin().await;
    let (_, org_admin, _) = t.org_with_users(&admin, "acme").await;
    let first = open_stream(&t.router, &org_admin).await.unwrap();
    let _second = open_stream(&t.router, &org_admin).await.unwrap();
    let (status, body) = open_stream(&t.router, &org_admin).await.unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_event_streams"))
    );
    assert!(open_stream(&t.router, &admin).await.is_ok(), "the cap is per user");
    drop(first);
    assert!(open_stream(&t.router, &org_admin).await.is_ok(), "a closed stream frees its place");
}

#[tokio::test]
async fn a_users_event_streams_end_at_once_when_they_are_disabled_demoted_or_deleted() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    t.org_with_users(&admin, "acme").await;
    let org_admin = t.login("acme-admin", "password-123").await;
    let id = t.get("/api/v1/me", &org_admin).await.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/users/{id}");
    let _bystander = open_stream(&t.router, &admin).await.unwrap();

    let stream = open_stream(&t.router, &org_admin).await.unwrap();
    t.send(Method::PATCH, &path, Some(&admin), Some(json!({"role": "member"}))).await;
    ends_within(stream, Duration::from_secs(2), "demoted").await;
    // Reconnecting works, filtered for the new role.
    let stream = open_stream(&t.router, &org_admin).await.unwrap();

    t.send(Method::PATCH, &path, Some(&admin), Some(json!({"disabled": true}))).await;
    ends_within(stream, Duration::from_secs(2), "disabled").await;
    assert_eq!(open_stream(&t.router, &org_admin).await.unwrap_err().0, StatusCode::UNAUTHORIZED);

    t.send(Method::PATCH, &path, Some(&admin), Some(json!({"disabled": false}))).await;
    let stream = open_stream(&t.router, &org_admin).await.unwrap();
    assert_eq!(t.send(Method::DELETE, &path, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    ends_within(stream, Duration::from_secs(2), "deleted").await;
    assert_eq!(open_for(&t, &t.app, &admin).await, 1, "other users' streams stay open");
}

#[tokio::test]
async fn a_stream_opened_with_an_api_key_ends_with_the_key() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let created = t.post("/api/v1/me/api-keys", &admin, json!({"name": "watcher"})).await;
    let (key, key_id) = (created.body["key"].as_str().unwrap(), created.body["id"].as_str().unwrap());
    let _by_token = open_stream(&t.router, &admin).await.unwrap();
    let by_key = open_stream(&t.router, key).await.unwrap();
    t.send(Method::DELETE, &format!("/api/v1/me/api-keys/{key_id}"), Some(&admin), None).await;
    ends_within(by_key, Duration::from_secs(2), "key deleted").await;
    assert_eq!(open_for(&t, &t.app, &admin).await, 1, "the access token's stream is another credential's");

    let created = t.post("/api/v1/me/api-keys", &admin, json!({"name": "watcher"})).await;
    let by_key = open_stream(&t.router, created.body["key"].as_str().unwrap()).await.unwrap();
    let change = json!({"current_password": ADMIN_PASSWORD, "new_password": "new-password-1"});
    t.post("/api/v1/me/password", &admin, change).await;
    ends_within(by_key, Duration::from_secs(2), "keys revoked by the password change").await;
}

#[tokio::test]
async fn a_stream_ends_when_the_access_token_that_opened_it_expires() {
    let t = TestApp::with_config(|c| c.access_token_ttl_secs = 1).await;
    let admin = t.admin().await;
    let stream = open_stream(&t.router, &admin).await.unwrap();
    ends_within(stream, Duration::from_secs(5), "token expired").await;
}

#[tokio::test]
async fn a_change_made_on_another_replica_ends_streams_here_at_the_next_sweep() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    t.org_with_users(&admin, "acme").await;
    let org_admin = t.login("acme-admin", "password-123").await;
    let id = t.get("/api/v1/me", &org_admin).await.body["id"].as_str().unwrap().to_owned();

    // A second replica over the same store (and the same keys, from the same data directory),
    // told nothing: on SQLite the cluster is a lone one, so only the sweep can notice.
    let replica = t.replica().await;
    let router = streamspace_server::router(replica.clone());
    let demoted = open_stream(&router, &org_admin).await.unwrap();
    let _kept = open_stream(&router, &admin).await.unwrap();

    t.send(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(json!({"role": "member"}))).await;
    let active = t.app.store.list_active_sessions().await.unwrap();
    let watermark = replica.connections.watermark();
    streamspace_server::connections::access::sweep(&replica, watermark, &active).await;
    ends_within(demoted, Duration::from_secs(2), "demoted on the other replica").await;
    assert_eq!(open_for(&t, &replica, &admin).await, 1, "nothing changed for the platform admin");

    // An API key deleted there ends the streams it opened here.
    let created = t.post("/api/v1/me/api-keys", &admin, json!({"name": "watcher"})).await;
    let by_key = open_stream(&router, created.body["key"].as_str().unwrap()).await.unwrap();
    let key_id = created.body["id"].as_str().unwrap();
    t.send(Method::DELETE, &format!("/api/v1/me/api-keys/{key_id}"), Some(&admin), None).await;
    let watermark = replica.connections.watermark();
    streamspace_server::connections::access::sweep(&replica, watermark, &active).await;
    ends_within(by_key, Duration::from_secs(2), "key deleted on the other replica").await;
    assert_eq!(open_for(&t, &replica, &admin).await, 1, "the platform admin's token stream stays");

    let disabled = open_stream(&router, &org_admin).await.unwrap();
    t.send(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(json!({"disabled": true}))).await;
    // A stream opened after the sweep's watermark is not judged by it...
    let watermark_before = replica.connections.watermark() - 1;
    streamspace_server::connections::access::sweep(&replica, watermark_before, &active).await;
    let user_id: uuid::Uuid = id.parse().unwrap();
    assert!(replica.connections.snapshot().iter().any(|open| open.user_id == user_id), "opened after the watermark");
    // ... but by the next one.
    let watermark = replica.connections.watermark();
    streamspace_server::connections::access::sweep(&replica, watermark, &active).await;
    ends_within(disabled, Duration::from_secs(2), "disabled on the other replica").await;
}

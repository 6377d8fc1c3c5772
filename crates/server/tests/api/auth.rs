use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::harness::{ADMIN_PASSWORD, REFRESH_COOKIE, TestApp};

#[tokio::test]
async fn login_returns_a_working_token_and_a_refresh_cookie() {
    let t = TestApp::new().await;
    let reply = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["user"]["username"], "admin");
    assert_eq!(reply.body["user"]["role"], "platform_admin");
    assert!(reply.body["expires_in"].as_i64().unwrap() > 0);
    let set_cookie = reply.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-ss_refresh="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/;", "Secure"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let token = reply.body["access_token"].as_str().unwrap();
    let me = t.get("/api/v1/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["org_name"], "default");
}

#[tokio::test]
async fn usernames_are_case_insensitive_at_login() {
    let t = TestApp::new().await;
    assert_eq!(t.login_reply("ADMIN", ADMIN_PASSWORD, json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer_in_similar_time() {
    let t = TestApp::with_config(|c| c.login_throttle.account_address.max_failures = 100).await;
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    for _ in 0..7 {
        for username in ["admin", "nobody"] {
            let started = Instant::now();
            let reply = t.login_reply(username, "wrong-password", json!({})).await;
            timings.push((username, started.elapsed()));
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reply.code(), "invalid_credentials");
            assert_eq!(reply.body["error"]["message"], "wrong username or password");
        }
    }
    // Both run one argon2 verification with the same parameters. Medians of interleaved samples
    // keep a busy machine's noise from deciding; without the dummy hash, unknown users would be
    // answered in well under a millisecond, hundreds of times faster.
    let median = |name: &str| {
        let mut times: Vec<Duration> = timings.iter().filter(|(n, _)| *n == name).map(|(_, d)| *d).collect();
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median("admin"), median("nobody"));
    assert!(known < unknown * 3 && unknown < known * 3, "known {known:?} vs unknown {unknown:?}: {timings:?}");
    let failures = t.audit_actions().await.iter().filter(|(a, r)| a == "auth.login" && r == "failure").count();
    assert_eq!(failures, 14);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_out_and_are_audited() {
    let t = TestApp::new().await;
    for _ in 0..5 {
        assert_eq!(t.login_reply("admin", "wrong-password", json!({})).await.status, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused now, with a Retry-After.
    let locked = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.code(), "too_many_attempts");
    assert!(locked.headers.get("retry-after").is_some());
    // The lockout is audited once; attempts refused while locked are counted in a metric instead.
    assert_eq!(t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.status, StatusCode::TOO_MANY_REQUESTS);
    let actions = t.audit_actions().await;
    assert_eq!(actions.iter().filter(|(a, r)| a == "auth.lockout" && r == "denied").count(), 1, "{actions:?}");
    assert!(!actions.contains(&("auth.login".to_owned(), "denied".to_owned())), "{actions:?}");
    // The lockout ends.
    t.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_locked_out_per_ip() {
    let t = TestApp::with_config(|c| c.login_throttle.address.max_failures = 6).await;
    for i in 0..6 {
        t.login_reply(&format!("user{i}"), "wrong-password", json!({})).await;
    }
    let reply = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let t = TestApp::new().await;
    let login = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    let first = login.set_cookie(REFRESH_COOKIE).unwrap();

    let rotated = t.cookie_call("/api/v1/auth/refresh", &first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let token = rotated.body["access_token"].as_str().unwrap();
    assert_eq!(t.get("/api/v1/me", token).await.status, StatusCode::OK);
    let second = rotated.set_cookie(REFRESH_COOKIE).unwrap();
    assert_ne!(first, second);

    // Replaying the spent token is refused and takes the live one down with it.
    let replay = t.cookie_call("/api/v1/auth/refresh", &first).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.code(), "refresh_token_reused");
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &second).await.status, StatusCode::UNAUTHORIZED);
    assert!(t.audit_actions().await.contains(&("auth.refresh_reuse".to_owned(), "denied".to_owned())));
}

#[tokio::test]
async fn refresh_needs_the_csrf_header() {
    let t = TestApp::new().await;
    let login = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    let cookie = login.set_cookie(REFRESH_COOKIE).unwrap();
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/refresh")
        .header("cookie", format!("{REFRESH_COOKIE}={cookie}"))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(t.call(request).await.status, StatusCode::FORBIDDEN);
    // The token was not spent by the refused call.
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let t = TestApp::new().await;
    let cookie = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.set_cookie(REFRESH_COOKIE).unwrap();
    t.clock.advance(chrono::Duration::days(8));
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let t = TestApp::new().await;
    let cookie = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.set_cookie(REFRESH_COOKIE).unwrap();
    let logout = t.cookie_call("/api/v1/auth/logout", &cookie).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(logout.set_cookie(REFRESH_COOKIE).as_deref(), Some(""));
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::UNAUTHORIZED);
    assert!(t.audit_actions().await.iter().any(|(a, _)| a == "auth.logout"));
}

#[tokio::test]
async fn logout_works_with_a_stale_access_token() {
    let t = TestApp::new().await;
    let cookie = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.set_cookie(REFRESH_COOKIE).unwrap();
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/logout")
        .header("authorization", "Bearer expired.token.x")
        .header("cookie", format!("{REFRESH_COOKIE}={cookie}"))
        .header("x-streamspace-csrf", "1")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(t.call(request).await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_expired_unsigned_and_wrong_key_tokens_get_401() {
    let t = TestApp::new().await;
    let token = t.admin().await;
    let [header, payload, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();

    // Forged: the payload claims another role, the signature is the old one.
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.replace("platform_admin", "member"));
    let forged = format!("{header}.{forged_payload}.{signature}");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{payload}.");
    let other_key = streamspace_server::auth::jwt::JwtKeys::new(&[9; 32]).unwrap();
    let me = t.get("/api/v1/me", &token).await.body;
    let wrong_key = other_key.issue(
        me["id"].as_str().unwrap().parse().unwrap(),
        me["org_id"].as_str().unwrap().parse().unwrap(),
        streamspace_store::Role::PlatformAdmin,
        true,
        t.app.clock.now(),
        900,
    );

    for (name, bad) in
        [("forged", forged), ("alg none", unsigned), ("wrong key", wrong_key), ("garbage", "x.y.z".into())]
    {
        let reply = t.get("/api/v1/me", &bad).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(reply.code(), "unauthorized", "{name}");
    }
    assert_eq!(t.send(Method::GET, "/api/v1/me", None, None).await.status, StatusCode::UNAUTHORIZED);

    t.clock.advance(chrono::Duration::seconds(901));
    assert_eq!(t.get("/api/v1/me", &token).await.status, StatusCode::UNAUTHORIZED, "expired");
}

#[tokio::test]
async fn a_disabled_user_is_locked_out_at_once() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, _, member) = t.org_with_users(&admin, "acme").await;
    let me = t.get("/api/v1/me", &member).await.body;
    let path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());
    let reply = t.send(Method::PATCH, &path, Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/me", &member).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.login_reply("acme-member", "password-123", json!({})).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_callers_new_role_and_their_orgs_mfa_requirement_hold_from_their_next_request() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, member) = t.org_with_users(&admin, "acme").await;
    let users = t.get("/api/v1/users", &org_admin).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let me = t.get("/api/v1/me", &org_admin).await.body;
    let path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());
    let demoted = t.send(Method::PATCH, &path, Some(&admin), Some(json!({"role": "member"}))).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    assert_eq!(t.get("/api/v1/users", &org_admin).await.status, StatusCode::FORBIDDEN, "demoted");

    assert_eq!(t.get("/api/v1/templates", &member).await.status, StatusCode::OK);
    let org = format!("/api/v1/orgs/{org_id}");
    let required = t.send(Method::PATCH, &org, Some(&admin), Some(json!({"mfa_required": true}))).await;
    assert_eq!(required.status, StatusCode::OK, "{}", required.body);
    let blocked = t.get("/api/v1/templates", &member).await;
    assert_eq!((blocked.status, blocked.code()), (StatusCode::FORBIDDEN, "mfa_enrollment_required"));
}

#[tokio::test]
async fn api_keys_authenticate_are_shown_once_and_can_be_revoked() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let created = t.post("/api/v1/me/api-keys", &admin, json!({"name": "ci"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ssk_"));
    assert_eq!(t.get("/api/v1/me", &key).await.body["username"], "admin");

    let listed = t.get("/api/v1/me/api-keys", &admin).await;
    let item = &listed.body["items"][0];
    assert!(item.get("key").is_none(), "the key is never listed");
    assert!(item["last_used_at"].is_string());
    assert!(t.audit_actions().await.iter().any(|(a, _)| a == "auth.api_key_use"));

    let id = created.body["id"].as_str().unwrap();
    let deleted = t.send(Method::DELETE, &format!("/api/v1/me/api-keys/{id}"), Some(&admin), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/me", &key).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_change_needs_the_current_password_and_revokes_refresh_tokens() {
    let t = TestApp::new().await;
    let login = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    let token = login.body["access_token"].as_str().unwrap();
    let cookie = login.set_cookie(REFRESH_COOKIE).unwrap();
    let wrong = t
        .post("/api/v1/me/password", token, json!({"current_password": "nope", "new_password": "new-password-1"}))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let short = t
        .post("/api/v1/me/password", token, json!({"current_password": ADMIN_PASSWORD, "new_password": "short"}))
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = t
        .post(
            "/api/v1/me/password",
            token,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(t.cookie_call("/api/v1/auth/refresh", &cookie).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.login_reply("admin", "new-password-1", json!({})).await.status, StatusCode::OK);
}

/// A stolen access token must not turn the password change into a faster way to guess the password.
#[tokio::test]
async fn guessing_the_current_password_is_held_to_the_sign_in_limits() {
    let t = TestApp::new().await;
    let token = t.login("admin", ADMIN_PASSWORD).await;
    let guess = json!({"current_password": "guess", "new_password": "new-password-1"});
    let before = t.app.login_verifier.performed();
    for _ in 0..5 {
        assert_eq!(t.post("/api/v1/me/password", &token, guess.clone()).await.status, StatusCode::UNAUTHORIZED);
    }
    let locked = t.post("/api/v1/me/password", &token, guess).await;
    assert_eq!((locked.status, locked.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    let right = json!({"current_password": ADMIN_PASSWORD, "new_password": "new-password-1"});
    assert_eq!(t.post("/api/v1/me/password", &token, right).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(t.app.login_verifier.performed() - before, 5, "no verification once locked");
    assert!(t.audit_actions().await.contains(&("auth.lockout".to_owned(), "denied".to_owned())));
}

#[tokio::test]
async fn responses_carry_a_trace_id_that_follows_the_callers_traceparent() {
    let t = TestApp::new().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("traceparent", traceparent)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(json!({"username": "admin", "password": "wrong-password"}).to_string()))
        .unwrap();
    let reply = t.call(request).await;
    let echoed = reply.headers.get("traceparent").unwrap().to_str().unwrap();
    assert!(echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{echoed}");
    let events = t
        .app
        .store
        .list_audit(
            streamspace_store::Scope::Platform,
            Default::default(),
            streamspace_store::AuditPage { limit: 1, before_seq: None },
        )
        .await
        .unwrap();
    assert_eq!(events[0].trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));

    // Without one, a fresh trace id is made.
    let reply = t.send(Method::GET, "/healthz", None, None).await;
    assert!(reply.headers.get("traceparent").unwrap().to_str().unwrap().starts_with("00-"));
}

#[tokio::test]
async fn login_with_bad_json_is_a_clear_400() {
    let t = TestApp::new().await;
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let reply = t.call(request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "bad_request");
}

#[tokio::test]
async fn off_secure_contexts_the_refresh_cookie_is_scoped_to_the_auth_routes() {
    let t = TestApp::with_config(|c| c.public_url = Some("http://streamspace.lan:8000".into())).await;
    let reply = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await;
    let set_cookie = reply.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(set_cookie.starts_with("ss_refresh="), "{set_cookie}");
    assert!(set_cookie.contains("Path=/api/v1/auth;") && !set_cookie.contains("Secure"), "{set_cookie}");
}

/// A session page can plant cookies for a parent domain or a longer path; the API must never pick
/// the planted one (that would sign the viewer in to an account of the attacker's choosing).
#[tokio::test]
async fn a_planted_refresh_cookie_is_refused_not_chosen() {
    let t = TestApp::new().await;
    let real = t.login_reply("admin", ADMIN_PASSWORD, json!({})).await.set_cookie(REFRESH_COOKIE).unwrap();
    let admin = t.login("admin", ADMIN_PASSWORD).await;
    t.post("/api/v1/users", &admin, json!({"username": "mallory", "password": "password-123", "role": "member"})).await;
    let planted = t.login_reply("mallory", "password-123", json!({})).await.set_cookie(REFRESH_COOKIE).unwrap();
    for header in [
        format!("{REFRESH_COOKIE}={planted}; {REFRESH_COOKIE}={real}"),
        format!("{REFRESH_COOKIE}={real}; {REFRESH_COOKIE}={planted}"),
    ] {
        for path in ["/api/v1/auth/refresh", "/api/v1/auth/logout"] {
            let request = axum::http::Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("cookie", &header)
                .header("x-streamspace-csrf", "1")
                .body(axum::body::Body::empty())
                .unwrap();
            let reply = t.call(request).await;
            assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "duplicate_cookie"), "{path}");
        }
    }
    // Neither token was spent or revoked by the refused calls; a cookie without the prefix counts for nothing.
    let refreshed = t.cookie_call("/api/v1/auth/refresh", &real).await;
    assert_eq!((refreshed.status, refreshed.body["user"]["username"].as_str()), (StatusCode::OK, Some("admin")));
    let unprefixed = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/refresh")
        .header("cookie", format!("ss_refresh={planted}"))
        .header("x-streamspace-csrf", "1")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(t.call(unprefixed).await.status, StatusCode::UNAUTHORIZED);
}

//! Sign-in under attack: concurrent bursts, many addresses, IPv6 networks, second-factor
//! guessing, oversized credentials and a full verification queue. Every password check is a real
//! argon2 verification, counted by the server's own verifier.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use streamspace_server::Config;

use crate::harness::{ADMIN_PASSWORD, Reply, TestApp};

/// The test router's peer is loopback: trusted as a proxy, so `X-Forwarded-For` names the client.
/// Retried sign-ins (`persistent_login`) send many more requests than attempts: these tests are
/// about the sign-in limits, so the per-address request budget (tested in `rate_limits`) is off.
fn behind_a_proxy(config: &mut Config) {
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.rate_limits.per_address = None;
}

async fn app_behind_a_proxy(adjust: impl FnOnce(&mut Config)) -> Arc<TestApp> {
    Arc::new(
        TestApp::with_config(|c| {
            behind_a_proxy(c);
            adjust(c);
        })
        .await,
    )
}

async fn login_from(t: &TestApp, client: &str, body: Value) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", client)
        .body(Body::from(body.to_string()))
        .unwrap();
    t.call(request).await
}

fn credentials(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// Signs in like a client that waits and retries while another sign-in for the account is being
/// checked; returns the first other answer.
async fn persistent_login(t: &TestApp, client: &str, body: Value) -> Reply {
    loop {
        let reply = login_from(t, client, body.clone()).await;
        if reply.code() != "login_in_progress" {
            return reply;
        }
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "1");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends all of `attempts` (client, body) at once, each on its own task; returns the final replies.
async fn burst(t: &Arc<TestApp>, attempts: Vec<(String, Value)>) -> Vec<Reply> {
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(client, body)| {
            let t = t.clone();
            tokio::spawn(async move { persistent_login(&t, &client, body).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn count_codes(replies: &[Reply], code: &str) -> usize {
    replies.iter().filter(|r| r.code() == code).count()
}

async fn audit_count(t: &TestApp, action: &str, result: &str) -> usize {
    t.audit_actions().await.iter().filter(|(a, r)| a == action && r == result).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_200_concurrent_wrong_passwords_gets_no_more_verifications_than_the_limit() {
    let t = app_behind_a_proxy(|_| {}).await;
    let limit = t.app.config.login_throttle.account_address.max_failures;
    let attempts = (0..200).map(|i| ("203.0.113.5".to_owned(), credentials("admin", &format!("guess-{i}")))).collect();
    let replies = burst(&t, attempts).await;

    let verified = t.app.login_verifier.performed();
    assert_eq!(verified, u64::from(limit), "argon2 ran {verified} times for a limit of {limit}");
    assert_eq!(count_codes(&replies, "invalid_credentials"), limit as usize);
    assert_eq!(count_codes(&replies, "too_many_attempts"), 200 - limit as usize);
    assert!(replies.iter().all(|r| r.status != StatusCode::OK));
    // The lockout is audited once; the refused attempts add no rows.
    assert_eq!(audit_count(&t, "auth.lockout", "denied").await, 1);
    assert_eq!(audit_count(&t, "auth.login", "failure").await, limit as usize);
    assert_eq!(audit_count(&t, "auth.login", "denied").await, 0);

    let elsewhere = login_from(&t, "198.51.100.20", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
    let locked = login_from(&t, "203.0.113.5", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(locked.code(), "too_many_attempts");
    let retry_after: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_from_many_addresses_is_capped_by_the_slower_account_limit() {
    // Lower than the default 30 to keep the test quick; still more than one address can reach.
    let t = app_behind_a_proxy(|c| c.login_throttle.account.max_failures = 12).await;
    let limit = t.app.config.login_throttle.account.max_failures;
    let attempts = (0..200)
        .map(|i| (format!("10.9.{}.{}", i / 100, i % 100 + 1), credentials("admin", "wrong-password")))
        .collect();
    let replies = burst(&t, attempts).await;

    assert_eq!(t.app.login_verifier.performed(), u64::from(limit));
    assert_eq!(count_codes(&replies, "invalid_credentials"), limit as usize);
    // Guessed from enough addresses, the account is locked everywhere for a while: the price of
    // bounding guesses per account.
    let fresh = login_from(&t, "198.51.100.20", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(fresh.code(), "too_many_attempts");
    t.clock.advance(t.app.config.login_throttle.account.lockout + chrono::Duration::seconds(1));
    assert_eq!(login_from(&t, "198.51.100.20", credentials("admin", ADMIN_PASSWORD)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn one_address_locked_out_of_an_account_does_not_lock_it_for_others() {
    let t = app_behind_a_proxy(|_| {}).await;
    for _ in 0..5 {
        let reply = login_from(&t, "203.0.113.5", credentials("admin", "wrong-password")).await;
        assert_eq!(reply.code(), "invalid_credentials");
    }
    let attacker = login_from(&t, "203.0.113.5", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(attacker.code(), "too_many_attempts");
    assert_eq!(login_from(&t, "203.0.113.6", credentials("admin", ADMIN_PASSWORD)).await.status, StatusCode::OK);
    // The locked address can still sign in to other accounts.
    let other = login_from(&t, "203.0.113.5", credentials("nobody", "wrong-password")).await;
    assert_eq!(other.code(), "invalid_credentials");
}

#[tokio::test]
async fn ipv6_clients_in_one_64_share_a_lockout_and_another_64_does_not() {
    let t = app_behind_a_proxy(|_| {}).await;
    for host in 1..=5 {
        let reply = login_from(&t, &format!("2001:db8:1:2::{host}"), credentials("admin", "wrong-password")).await;
        assert_eq!(reply.code(), "invalid_credentials");
    }
    let same_64 = login_from(&t, "2001:db8:1:2:ffff:ffff:ffff:ffff", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(same_64.code(), "too_many_attempts");
    let next_64 = login_from(&t, "2001:db8:1:3::1", credentials("admin", ADMIN_PASSWORD)).await;
    assert_eq!(next_64.status, StatusCode::OK, "{}", next_64.body);
}

#[tokio::test]
async fn unknown_usernames_are_verified_and_throttled_like_real_ones() {
    let t = app_behind_a_proxy(|_| {}).await;
    for _ in 0..5 {
        assert_eq!(
            login_from(&t, "203.0.113.5", credentials("nobody", "x-password")).await.code(),
            "invalid_credentials"
        );
    }
    assert_eq!(t.app.login_verifier.performed(), 5);
    assert_eq!(login_from(&t, "203.0.113.5", credentials("nobody", "x-password")).await.code(), "too_many_attempts");
    assert_eq!(t.app.login_verifier.performed(), 5);
}

#[tokio::test]
async fn oversized_usernames_and_passwords_are_refused_before_any_work() {
    let t = app_behind_a_proxy(|_| {}).await;
    let cases = [
        ("a".repeat(257), "wrong-password".to_owned(), StatusCode::BAD_REQUEST, "username_too_long"),
        // 129 two-byte characters: the limit is in bytes.
        ("é".repeat(129), "wrong-password".to_owned(), StatusCode::BAD_REQUEST, "username_too_long"),
        ("admin".to_owned(), "p".repeat(1025), StatusCode::BAD_REQUEST, "password_too_long"),
    ];
    for (username, password, status, code) in &cases {
        for _ in 0..10 {
            let reply = login_from(&t, "203.0.113.5", credentials(username, password)).await;
            assert_eq!((reply.status, reply.code()), (*status, *code), "{} bytes", username.len());
        }
    }
    assert_eq!(t.app.login_verifier.performed(), 0);
    assert!(t.audit_actions().await.iter().all(|(action, _)| !action.starts_with("auth.login")));
    // Nothing was counted: the longest allowed credentials are still checked.
    let longest = login_from(&t, "203.0.113.5", credentials(&"a".repeat(256), &"p".repeat(1024))).await;
    assert_eq!(longest.code(), "invalid_credentials");
    assert_eq!(t.app.login_verifier.performed(), 1);
}

#[tokio::test]
async fn wrong_second_factors_count_toward_the_lockout_but_asking_for_one_does_not() {
    let t = app_behind_a_proxy(|_| {}).await;
    let token = t.admin().await;
    let (secret, _) = crate::mfa::enroll(&t, &token).await;
    t.clock.advance(chrono::Duration::seconds(30));

    for _ in 0..10 {
        let reply = login_from(&t, "203.0.113.5", credentials("admin", ADMIN_PASSWORD)).await;
        assert_eq!(reply.code(), "mfa_required");
    }
    let wrong_code = json!({"username": "admin", "password": ADMIN_PASSWORD, "totp_code": "000000"});
    let wrong_recovery = json!({"username": "admin", "password": ADMIN_PASSWORD, "recovery_code": "aaaaa-bbbbb"});
    for body in [&wrong_code, &wrong_recovery, &wrong_code, &wrong_recovery, &wrong_code] {
        assert_eq!(login_from(&t, "203.0.113.5", body.clone()).await.code(), "invalid_mfa_code");
    }
    let right = json!({"username": "admin", "password": ADMIN_PASSWORD, "totp_code": crate::mfa::code(&t, &secret)});
    assert_eq!(login_from(&t, "203.0.113.5", right.clone()).await.code(), "too_many_attempts");
    let elsewhere = login_from(&t, "198.51.100.20", right).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_verification_queue_answers_busy_and_costs_no_attempt() {
    let t = app_behind_a_proxy(|c| c.login_verify_queue = 1).await;
    // Distinct accounts from distinct addresses: only the queue bound can refuse them.
    let attempts =
        (0..50).map(|i| (format!("10.8.0.{}", i + 1), credentials(&format!("user{i}"), "x-password"))).collect();
    let replies = burst(&t, attempts).await;

    let busy: Vec<&Reply> = replies.iter().filter(|r| r.code() == "busy").collect();
    assert!(!busy.is_empty(), "50 sign-ins at once never found the one-place queue full");
    for reply in &busy {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.headers["retry-after"], "1");
    }
    let verified = count_codes(&replies, "invalid_credentials");
    assert_eq!(verified + busy.len(), 50);
    assert_eq!(t.app.login_verifier.performed(), verified as u64);
    // A refused attempt was not a guess: the same account and address still have all of theirs.
    let (client, username) = replies
        .iter()
        .zip(0..)
        .find_map(|(reply, i)| (reply.code() == "busy").then(|| (format!("10.8.0.{}", i + 1), format!("user{i}"))))
        .unwrap();
    for _ in 0..5 {
        assert_eq!(login_from(&t, &client, credentials(&username, "x-password")).await.code(), "invalid_credentials");
    }
    assert_eq!(login_from(&t, &client, credentials(&username, "x-password")).await.code(), "too_many_attempts");
}

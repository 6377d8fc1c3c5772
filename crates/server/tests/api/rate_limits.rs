//! Request budgets through the real router and the session proxy: each budget is exceeded and
//! answers 429 with Retry-After; clients come from a trusted proxy's X-Forwarded-For.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use streamspace_server::rate_limit::{BudgetSetting, RateLimits};
use streamspace_store::{NewUser, Role};
use tower::ServiceExt;

use crate::harness::{Reply, TestApp, counting_alone};

const PASSWORD: &str = "password-123";

fn budget(text: &str) -> Option<streamspace_server::rate_limit::Budget> {
    text.parse::<BudgetSetting>().unwrap().0
}

/// A control plane with these budgets behind a trusted proxy on loopback (unless `trusting` is false).
async fn limited(limits: RateLimits, trusting: bool) -> TestApp {
    TestApp::with_config(|config| {
        config.rate_limits = limits;
        if trusting {
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        }
    })
    .await
}

/// A user made in the store, so that setting up spends no budget; returns their access token.
async fn user_in(t: &TestApp, org: &str, username: &str) -> String {
    let org = match t.app.store.get_org_by_name(org).await.unwrap() {
        Some(org) => org,
        None => t.app.store.create_org(org, Default::default()).await.unwrap(),
    };
    let password_hash = streamspace_server::auth::password::hash(PASSWORD).unwrap();
    let user = NewUser { org_id: org.id, username: username.into(), password_hash, role: Role::Member };
    t.app.store.create_user(user).await.unwrap();
    t.login(username, PASSWORD).await
}

async fn openapi_from(t: &TestApp, client: &str) -> Reply {
    t.send_with(Method::GET, "/api/v1/openapi.json", None, None, &[("x-forwarded-for", client)]).await
}

async fn me_from(t: &TestApp, client: &str, token: &str) -> Reply {
    t.send_with(Method::GET, "/api/v1/me", Some(token), None, &[("x-forwarded-for", client)]).await
}

/// The reply is a 429 of `scope`'s budget with a Retry-After in whole seconds.
fn assert_limited(reply: &Reply, whose: &str) {
    assert_eq!((reply.status, reply.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{}", reply.body);
    let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(whose), "{message}");
}

fn rejections(t: &TestApp, listener: &str, scope: &str) -> u64 {
    let metrics = t.app.metrics.render();
    let label = format!("listener=\"{listener}\",scope=\"{scope}\"");
    let line = metrics.lines().find(|line| line.starts_with("streamspace_rate_limited_total") && line.contains(&label));
    line.and_then(|line| line.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn each_client_address_has_its_own_budget_and_probes_spend_none() {
    let _counting = counting_alone().await;
    let limits = RateLimits { per_address: budget("1/min:3"), per_user: None, per_org: None };
    let t = limited(limits, true).await;
    let before = rejections(&t, "api", "address");
    for _ in 0..5 {
        let probe = t.send_with(Method::GET, "/healthz", None, None, &[("x-forwarded-for", "203.0.113.9")]).await;
        assert_eq!(probe.status, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(openapi_from(&t, "203.0.113.9").await.status, StatusCode::OK);
    }
    assert_limited(&openapi_from(&t, "203.0.113.9").await, "address");
    assert_limited(&openapi_from(&t, "::ffff:203.0.113.9").await, "address");
    assert_eq!(openapi_from(&t, "203.0.113.10").await.status, StatusCode::OK, "another address has its own budget");
    assert_eq!(openapi_from(&t, "2001:db8::1").await.status, StatusCode::OK);
    assert_eq!(rejections(&t, "api", "address") - before, 2);
}

#[tokio::test]
async fn a_forwarded_for_from_an_untrusted_peer_gets_no_fresh_budget() {
    let _counting = counting_alone().await;
    let limits = RateLimits { per_address: budget("1/min:3"), per_user: None, per_org: None };
    let t = limited(limits, false).await;
    let spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"];
    let mut replies = Vec::new();
    for client in spoofed {
        replies.push(openapi_from(&t, client).await);
    }
    assert!(replies[..3].iter().all(|reply| reply.status == StatusCode::OK));
    assert_limited(&replies[3], "address");
}

#[tokio::test]
async fn each_user_has_a_budget_wherever_they_call_from() {
    let _counting = counting_alone().await;
    let limits = RateLimits { per_address: None, per_user: budget("1/min:3"), per_org: None };
    let t = limited(limits, true).await;
    let before = rejections(&t, "api", "user");
    let alice = user_in(&t, "acme", "alice").await;
    let bob = user_in(&t, "acme", "bob").await;
    for client in ["203.0.113.1", "203.0.113.2", "2001:db8::3"] {
        assert_eq!(me_from(&t, client, &alice).await.status, StatusCode::OK);
    }
    assert_limited(&me_from(&t, "203.0.113.4", &alice).await, "account");
    assert_eq!(me_from(&t, "203.0.113.4", &bob).await.status, StatusCode::OK, "another user");
    assert_eq!(rejections(&t, "api", "user") - before, 1);
}

#[tokio::test]
async fn an_organization_shares_one_budget_among_its_users() {
    let _counting = counting_alone().await;
    let limits = RateLimits { per_address: None, per_user: None, per_org: budget("1/min:4") };
    let t = limited(limits, true).await;
    let before = rejections(&t, "api", "org");
    let alice = user_in(&t, "acme", "alice").await;
    let bob = user_in(&t, "acme", "bob").await;
    let carol = user_in(&t, "globex", "carol").await;
    for token in [&alice, &bob, &alice, &bob] {
        assert_eq!(me_from(&t, "203.0.113.1", token).await.status, StatusCode::OK);
    }
    assert_limited(&me_from(&t, "203.0.113.2", &bob).await, "organization");
    assert_eq!(me_from(&t, "203.0.113.2", &carol).await.status, StatusCode::OK, "another org");
    assert_eq!(rejections(&t, "api", "org") - before, 1);
}

#[tokio::test]
async fn the_session_proxy_has_budgets_of_its_own() {
    let _counting = counting_alone().await;
    let limits = RateLimits { per_address: budget("1/min:2"), per_user: None, per_org: None };
    let t = limited(limits, true).await;
    let before = rejections(&t, "sessions", "address");
    let proxy = streamspace_server::proxy::service(t.app.clone());
    let call = |client: &'static str| {
        let request = Request::get("/api/v1/http/x/")
            .header("host", "nosession.localhost:8001")
            .header("x-forwarded-for", client)
            .body(Body::empty())
            .unwrap();
        proxy.clone().oneshot(request)
    };
    for _ in 0..2 {
        assert_eq!(call("203.0.113.9").await.unwrap().status(), StatusCode::NOT_FOUND, "no such session");
    }
    let limited = call("203.0.113.9").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(call("203.0.113.10").await.unwrap().status(), StatusCode::NOT_FOUND, "another address");
    assert_eq!(openapi_from(&t, "203.0.113.9").await.status, StatusCode::OK, "the API's budget is another");
    assert_eq!(rejections(&t, "sessions", "address") - before, 1);
}

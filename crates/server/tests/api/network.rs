//! IP allow-lists through the real router: the client address comes from the X-Forwarded-For of a
//! trusted proxy (the in-process caller stands for one on loopback).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use streamspace_proto::hub::Capacity;

use crate::harness::{Reply, TestApp, counting_alone};
use crate::hostile_agents::{Peer, eventually};

const INSIDE: &str = "198.51.100.7";
const INSIDE_TOO: &str = "198.51.100.200";
const OUTSIDE: &str = "203.0.113.9";

async fn behind_proxy() -> TestApp {
    TestApp::with_config(|config| config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await
}

/// A call from `client`, as the trusted proxy in front reports it.
async fn from(
    t: &TestApp,
    client: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    t.send_with(method, path, token, body, &[("x-forwarded-for", client)]).await
}

async fn login_from(t: &TestApp, client: &str, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password});
    from(t, client, Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

async fn put_list(t: &TestApp, client: &str, path: &str, token: &str, cidrs: &[&str]) -> Reply {
    from(t, client, Method::PUT, path, Some(token), Some(json!({"cidrs": cidrs}))).await
}

/// The `network.denied` records: (target, address, reason, via).
async fn denials(t: &TestApp) -> Vec<(String, String, String, String)> {
    let page = streamspace_store::AuditPage { limit: 500, before_seq: None };
    let events = t.app.store.list_audit(streamspace_store::Scope::Platform, Default::default(), page).await.unwrap();
    events
        .into_iter()
        .filter(|event| event.action == "network.denied" && event.result == "denied")
        .map(|event| {
            let detail = |key: &str| event.details[key].as_str().unwrap_or_default().to_owned();
            (event.target.clone(), detail("address"), detail("reason"), detail("via"))
        })
        .collect()
}

/// API calls refused by an org's list, as counted so far in this process.
fn api_denials(t: &TestApp) -> u64 {
    let metrics = t.app.metrics.render();
    let series = r#"streamspace_network_denied_total{via="api",list="org_allow_list"} "#;
    metrics.lines().find_map(|line| line.strip_prefix(series)).map_or(0, |count| count.parse().unwrap())
}

#[tokio::test]
async fn an_orgs_list_admits_its_users_only_from_its_networks_on_sign_in_and_every_api_call() {
    let _counting = counting_alone().await;
    let t = behind_proxy().await;
    let denied_before = api_denials(&t);
    let admin = t.admin().await;
    let (acme, acme_admin, acme_member) = t.org_with_users(&admin, "acme").await;
    let (_, _, globex_member) = t.org_with_users(&admin, "globex").await;
    let path = format!("/api/v1/orgs/{acme}/allow-list");
    let saved =
        put_list(&t, INSIDE, &path, &acme_admin, &["198.51.100.1/24", "2001:db8::/32", "198.51.100.0/24"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["cidrs"], json!(["198.51.100.0/24", "2001:db8::/32"]), "normalized");
    assert_eq!(saved.body["client_address"], INSIDE);

    // Sign-in: refused from outside before the password is looked at, admitted from inside (v4 and v6).
    let refused = login_from(&t, OUTSIDE, "acme-member", "password-123").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "network_denied"), "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains(OUTSIDE));
    let wrong_password = login_from(&t, OUTSIDE, "acme-member", "wrong").await;
    assert_eq!(wrong_password.code(), "network_denied", "no hint whether the password was right");
    for inside in [INSIDE_TOO, "2001:db8:7::1"] {
        assert_eq!(login_from(&t, inside, "acme-member", "password-123").await.status, StatusCode::OK, "{inside}");
    }

    // Every API call, with an access token issued earlier: refused from outside.
    let me = |client, token| from(&t, client, Method::GET, "/api/v1/me", Some(token), None);
    assert_eq!(me(INSIDE, &acme_member).await.status, StatusCode::OK);
    let outside = me(OUTSIDE, &acme_member).await;
    assert_eq!((outside.status, outside.code()), (StatusCode::FORBIDDEN, "network_denied"));
    let outside_v6 = me("2001:db9::1", &acme_member).await;
    assert_eq!(outside_v6.code(), "network_denied");
    // API keys too.
    let key =
        from(&t, INSIDE, Method::POST, "/api/v1/me/api-keys", Some(&acme_member), Some(json!({"name": "ci"}))).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(me(INSIDE, &key).await.status, StatusCode::OK);
    assert_eq!(me(OUTSIDE, &key).await.code(), "network_denied");
    // Another org's users are not held to acme's list.
    assert_eq!(me(OUTSIDE, &globex_member).await.status, StatusCode::OK);
    assert_eq!(login_from(&t, OUTSIDE, "globex-member", "password-123").await.status, StatusCode::OK);

    // Audited with the address and the reason: once per user, address and path a minute,
    // however often the call is repeated; counted every time.
    me(OUTSIDE, &acme_member).await;
    let audited = denials(&t).await;
    let member_api: Vec<_> = audited.iter().filter(|(_, address, _, via)| address == OUTSIDE && via == "api").collect();
    assert_eq!(member_api.len(), 1, "the token's and the API key's three calls: {audited:?}");
    assert!(audited.iter().all(|(_, _, reason, _)| reason == "org_allow_list"), "{audited:?}");
    assert!(
        audited
            .iter()
            .any(|(target, address, _, via)| target.starts_with("user:") && address == OUTSIDE && via == "sign_in")
    );
    assert_eq!(api_denials(&t) - denied_before, 4, "every denial is counted");
}

#[tokio::test]
async fn the_platform_list_holds_for_everyone_and_unknown_accounts_learn_nothing() {
    let t = behind_proxy().await;
    let admin = t.admin().await;
    let (_, _, member) = t.org_with_users(&admin, "acme").await;
    let saved = put_list(&t, INSIDE, "/api/v1/network/allow-list", &admin, &["198.51.100.0/24"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    for username in ["admin", "acme-member", "nobody"] {
        let refused = login_from(&t, OUTSIDE, username, "whatever-password").await;
        assert_eq!(refused.code(), "network_denied", "{username}: {}", refused.body);
    }
    let me = from(&t, OUTSIDE, Method::GET, "/api/v1/me", Some(&member), None).await;
    assert_eq!(me.code(), "network_denied");
    assert!(me.body["error"]["message"].as_str().unwrap().contains("platform"));
    assert_eq!(login_from(&t, INSIDE_TOO, "admin", crate::harness::ADMIN_PASSWORD).await.status, StatusCode::OK);
    let audited = denials(&t).await;
    assert!(
        audited
            .iter()
            .any(|(target, _, reason, _)| target == &format!("ip:{OUTSIDE}") && reason == "platform_allow_list")
    );
}

#[tokio::test]
async fn an_administrator_cannot_lock_themselves_out_with_one_change() {
    let t = behind_proxy().await;
    let admin = t.admin().await;
    let (acme, acme_admin, _) = t.org_with_users(&admin, "acme").await;
    let org_path = format!("/api/v1/orgs/{acme}/allow-list");

    let refused = put_list(&t, OUTSIDE, &org_path, &acme_admin, &["198.51.100.0/24"]).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "self_lockout"), "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains(OUTSIDE));
    let unchanged = from(&t, OUTSIDE, Method::GET, &org_path, Some(&acme_admin), None).await;
    assert_eq!(unchanged.body["cidrs"], json!([]), "nothing was saved");

    let platform = put_list(&t, OUTSIDE, "/api/v1/network/allow-list", &admin, &["2001:db8::/32"]).await;
    assert_eq!(platform.code(), "self_lockout");
    // A platform administrator of another org is not held to acme's list: the change is theirs to make.
    let for_acme = put_list(&t, OUTSIDE, &org_path, &admin, &["198.51.100.0/24"]).await;
    assert_eq!(for_acme.status, StatusCode::OK, "{}", for_acme.body);
    // Emptying the list is always allowed.
    assert_eq!(put_list(&t, OUTSIDE, &org_path, &admin, &[]).await.status, StatusCode::OK);
    let audited = t.audit_actions().await;
    assert_eq!(audited.iter().filter(|(action, _)| action == "network.allow_list_update").count(), 2);
}

#[tokio::test]
async fn only_administrators_edit_lists_and_another_orgs_list_is_a_404() {
    let t = behind_proxy().await;
    let admin = t.admin().await;
    let (acme, acme_admin, acme_member) = t.org_with_users(&admin, "acme").await;
    let (globex, _, _) = t.org_with_users(&admin, "globex").await;
    let other =
        from(&t, INSIDE, Method::GET, &format!("/api/v1/orgs/{globex}/allow-list"), Some(&acme_admin), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let put_other = put_list(&t, INSIDE, &format!("/api/v1/orgs/{globex}/allow-list"), &acme_admin, &[]).await;
    assert_eq!(put_other.status, StatusCode::NOT_FOUND);
    let member = put_list(&t, INSIDE, &format!("/api/v1/orgs/{acme}/allow-list"), &acme_member, &[]).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
    let platform = put_list(&t, INSIDE, "/api/v1/network/allow-list", &acme_admin, &[]).await;
    assert_eq!(platform.status, StatusCode::FORBIDDEN);
    let garbage =
        put_list(&t, INSIDE, &format!("/api/v1/orgs/{acme}/allow-list"), &acme_admin, &["10.0.0.300/8"]).await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", garbage.body);
}

#[tokio::test]
async fn a_forwarded_for_from_an_untrusted_peer_is_not_believed() {
    let _counting = counting_alone().await;
    // No trusted proxies: the in-process caller (loopback) is the client, whatever it forwards.
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (acme, _, member) = t.org_with_users(&admin, "acme").await;
    let list = streamspace_store::AllowList::Org(acme.parse().unwrap());
    t.app.allow_lists.set(&t.app, list, &["198.51.100.0/24".parse().unwrap()]).await.unwrap();
    let spoofed = from(&t, INSIDE, Method::GET, "/api/v1/me", Some(&member), None).await;
    assert_eq!(spoofed.code(), "network_denied", "{}", spoofed.body);
    assert!(spoofed.body["error"]["message"].as_str().unwrap().contains("127.0.0.1"));
}

#[tokio::test]
async fn session_tunnels_are_held_to_the_owners_org_list() {
    let t = behind_proxy().await;
    let admin = t.admin().await;
    let (acme, acme_admin, member) = t.org_with_users(&admin, "acme").await;
    // An agent that takes the session and never starts it: the proxy's answer past the allow-list
    // is then "not ready", without a streamer.
    let served = t.listen().await;
    let agent = t.post("/api/v1/agents", &admin, json!({"name": "idle", "platform": "docker"})).await;
    let token = agent.body["token"].as_str().unwrap();
    let capacity = Capacity { max_sessions: 5, cpu_millis: 64_000, memory_mb: 65_536 };
    let _peer = Peer::hello(served.api, token, capacity, Default::default()).await;
    let agent_path = format!("/api/v1/agents/{}", agent.body["id"].as_str().unwrap());
    eventually("the agent to be online", || async {
        (t.get(&agent_path, &admin).await.body["status"] == "online").then_some(())
    })
    .await;
    let created =
        from(&t, INSIDE, Method::POST, "/api/v1/sessions", Some(&member), Some(json!({"template": "chromium"})));
    let created = created.await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let connect =
        from(&t, INSIDE, Method::POST, &format!("/api/v1/sessions/{id}/connect"), Some(&member), Some(json!({}))).await;
    assert_eq!(connect.status, StatusCode::OK, "{}", connect.body);
    let url: axum::http::Uri = connect.body["url"].as_str().unwrap().parse().unwrap();
    let proxy = streamspace_server::proxy::service(t.app.clone());
    let host = url.authority().unwrap().to_string();
    let call = |target: String, client: &'static str, cookie: Option<String>, upgrade: bool| {
        let mut request = Request::get(target).header("host", &host).header("x-forwarded-for", client);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if upgrade {
            request = request
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        }
        proxy.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let ticket_path = url.path_and_query().unwrap().to_string();
    let redeemed = call(ticket_path.clone(), INSIDE, None, false).await.unwrap();
    assert_eq!(redeemed.status(), StatusCode::SEE_OTHER);
    let cookie = redeemed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    let path = format!("/api/v1/http/{id}/websockets");
    // Admitted from anywhere while the org has no list: the proxy's connection keeps that pass...
    let before = call(path.clone(), OUTSIDE, Some(cookie.clone()), false).await.unwrap();
    assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);
    put_list(&t, INSIDE, &format!("/api/v1/orgs/{acme}/allow-list"), &acme_admin, &["198.51.100.0/24"]).await;
    // ... which the new list voids at once.
    let after = call(path.clone(), OUTSIDE, Some(cookie.clone()), false).await.unwrap();
    assert_eq!(after.status(), StatusCode::FORBIDDEN, "the pass of the address outlived the list's change");
    // A fresh link opened outside the networks yields no cookie.
    let again =
        from(&t, INSIDE, Method::POST, &format!("/api/v1/sessions/{id}/connect"), Some(&member), Some(json!({}))).await;
    let again: axum::http::Uri = again.body["url"].as_str().unwrap().parse().unwrap();
    let outside = call(again.path_and_query().unwrap().to_string(), OUTSIDE, None, false).await.unwrap();
    assert_eq!(outside.status(), StatusCode::FORBIDDEN);
    assert!(outside.headers().get("set-cookie").is_none());
    for upgrade in [false, true] {
        let inside = call(path.clone(), INSIDE, Some(cookie.clone()), upgrade).await.unwrap();
        // Admitted: the proxy goes on to the session, which has not started (no agent runs it).
        assert_eq!(inside.status(), StatusCode::SERVICE_UNAVAILABLE, "upgrade {upgrade}");
        let outside = call(path.clone(), OUTSIDE, Some(cookie.clone()), upgrade).await.unwrap();
        assert_eq!(outside.status(), StatusCode::FORBIDDEN, "upgrade {upgrade}");
        let body = http_body_util::BodyExt::collect(outside.into_body()).await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "network_denied");
    }
    let audited = denials(&t).await;
    assert!(
        audited
            .iter()
            .any(|(_, address, reason, via)| address == OUTSIDE && reason == "org_allow_list" && via == "session")
    );

    // The connection's last pass is the member's from inside; disabling the member voids it at once.
    let me = from(&t, INSIDE, Method::GET, "/api/v1/me", Some(&member), None).await;
    let member_id = me.body["id"].as_str().unwrap().to_owned();
    let user_path = format!("/api/v1/users/{member_id}");
    let disabled = from(&t, INSIDE, Method::PATCH, &user_path, Some(&admin), Some(json!({"disabled": true}))).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let refused = call(path.clone(), INSIDE, Some(cookie.clone()), false).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = http_body_util::BodyExt::collect(refused.into_body()).await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "access_revoked");
}

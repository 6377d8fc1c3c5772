//! Another org's objects are 404 on every route that takes an id, and stay unchanged.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use streamspace_store::{NewHome, NewShare, Page, Scope, SessionFilter, ShareRole};
use uuid::Uuid;

use streamspace_server::clock::Clock;

use crate::harness::TestApp;

/// Org A's objects, one of each kind a route can name.
struct Victim {
    org: String,
    user: String,
    template: String,
    session: String,
    api_key: String,
    /// Agents belong to the platform: to org users they do not exist.
    agent: String,
    identity_provider: String,
    /// The member's identity at that provider.
    identity: String,
    /// The member's persistent home.
    home: String,
    /// The member's session shared with the org's admin.
    share: String,
}

async fn victim(t: &TestApp, platform_admin: &str) -> Victim {
    let (org, admin, member) = t.org_with_users(platform_admin, "org-a").await;
    let template = t
        .post(
            "/api/v1/templates",
            &admin,
            json!({"name": "a-only", "display_name": "A only", "image": "streamspace/fixture:latest"}),
        )
        .await;
    assert_eq!(template.status, StatusCode::CREATED, "{}", template.body);
    let session = t.post("/api/v1/sessions", &member, json!({"template": "a-only"})).await;
    assert_eq!(session.status, StatusCode::ACCEPTED, "{}", session.body);
    let key = t.post("/api/v1/me/api-keys", &member, json!({"name": "a-key"})).await;
    let id = |reply: &Value| reply["id"].as_str().unwrap().to_owned();
    let agent = t.post("/api/v1/agents", platform_admin, json!({"name": "agent-a", "platform": "docker"})).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.body);
    let provider = json!({"name": "a-idp", "display_name": "A IdP", "kind": "oidc",
        "oidc": {"issuer": "https://idp.org-a.test", "client_id": "a", "client_secret": "a-secret"}});
    let provider = t.post(&format!("/api/v1/orgs/{org}/identity-providers"), &admin, provider).await;
    assert_eq!(provider.status, StatusCode::CREATED, "{}", provider.body);
    let user = id(&t.get("/api/v1/me", &member).await.body);
    let identity = streamspace_store::NewExternalIdentity {
        user_id: user.parse().unwrap(),
        provider_id: id(&provider.body).parse().unwrap(),
        subject: "a-member".into(),
        email: None,
        provisioned: false,
    };
    let identity = t.app.store.create_external_identity(identity).await.unwrap();
    let new_home =
        NewHome { org_id: org.parse().unwrap(), user_id: user.parse().unwrap(), template_id: None, size_mb: None };
    let home = t.app.store.home_for(new_home, t.clock.now()).await.unwrap();
    let guest = id(&t.get("/api/v1/me", &admin).await.body);
    let share = NewShare {
        session_id: id(&session.body).parse().unwrap(),
        user_id: Some(guest.parse().unwrap()),
        role: ShareRole::Viewer,
        token_hash: None,
        link_id: None,
        expires_at: None,
        created_by: user.parse().unwrap(),
    };
    let share = t.app.store.put_share(share).await.unwrap();
    Victim {
        home: home.id.to_string(),
        share: share.id.to_string(),
        identity_provider: id(&provider.body),
        identity: identity.id.to_string(),
        org,
        user,
        template: id(&template.body),
        session: id(&session.body),
        api_key: id(&key.body),
        agent: id(&agent.body),
    }
}

impl Victim {
    /// The id of the right kind for a route; every route that takes an id must be listed here.
    fn id_for(&self, path: &str) -> &str {
        let resource = path.trim_start_matches("/api/v1/").split('/').take(2).collect::<Vec<_>>().join("/");
        match resource.as_str() {
            "orgs/{id}" => &self.org,
            "orgs/{org_id}" => &self.identity_provider,
            "me/identities" => &self.identity,
            "users/{id}" => &self.user,
            "templates/{id}" => &self.template,
            "sessions/{id}" => &self.session,
            "me/api-keys" => &self.api_key,
            "agents/{id}" => &self.agent,
            "homes/{id}" | "me/homes" => &self.home,
            _ => panic!("no tenancy case for {path}: add the object kind this route names"),
        }
    }
}

/// Everything org A has, as the store sees it.
async fn snapshot(t: &TestApp, v: &Victim) -> String {
    let store = &t.app.store;
    let org: Uuid = v.org.parse().unwrap();
    let scope = Scope::Org(org);
    let users = store.list_users(scope, Page::default()).await.unwrap();
    let templates = store.list_templates(scope, Page::default()).await.unwrap();
    let sessions = store.list_sessions(scope, SessionFilter::default(), Page::default()).await.unwrap();
    let keys = store.list_api_keys(v.user.parse().unwrap()).await.unwrap();
    let org = store.get_org(scope, org).await.unwrap();
    let agent = store.get_agent(v.agent.parse().unwrap()).await.unwrap();
    let providers = store.list_identity_providers(Scope::Platform, v.org.parse().unwrap()).await.unwrap();
    let identities = store.list_external_identities(v.user.parse().unwrap()).await.unwrap();
    let homes = store.list_homes(scope, None).await.unwrap();
    let shares = store.list_shares(v.session.parse().unwrap()).await.unwrap();
    format!("{org:?}{users:?}{templates:?}{sessions:?}{keys:?}{agent:?}{providers:?}{identities:?}{homes:?}{shares:?}")
}

/// A body the route accepts, so that what answers is the lookup of the id and not the body's
/// validation (which answers the same whatever the id names).
fn valid_body(path: &str) -> Value {
    match path {
        "/api/v1/sessions/{id}/shares" => json!({"role": "viewer", "user": "member"}),
        "/api/v1/templates/{id}/pool" => json!({"size": 0}),
        _ => json!({}),
    }
}

fn id_routes() -> Vec<(Method, String)> {
    let spec: Value = serde_json::from_str(streamspace_server::openapi_json()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        // The sign-in flow's routes take no credentials: a provider's id is public (discovery
        // hands it out) and there is no caller whose org could differ.
        if !path.contains("{id}") || path.starts_with("/api/v1/auth/sso/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                routes.push((method, path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_id_route_answers_404_for_another_orgs_objects_and_changes_nothing() {
    let t = TestApp::new().await;
    let platform_admin = t.admin().await;
    let v = victim(&t, &platform_admin).await;
    let (_, b_admin, b_member) = t.org_with_users(&platform_admin, "org-b").await;
    let before = snapshot(&t, &v).await;

    let routes = id_routes();
    assert!(routes.len() >= 12, "expected the id routes of every resource, got {routes:?}");
    for (method, path) in &routes {
        let uri = path.replace("{org_id}", &v.org).replace("{share_id}", &v.share).replace("{id}", v.id_for(path));
        for (who, token) in [("org B admin", &b_admin), ("org B member", &b_member)] {
            let body = matches!(*method, Method::POST | Method::PATCH | Method::PUT).then(|| valid_body(path));
            let reply = t.send(method.clone(), &uri, Some(token), body).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{who}: {method} {uri}: {}", reply.body);
            assert_eq!(reply.code(), "not_found", "{who}: {method} {uri}");
        }
    }
    assert_eq!(snapshot(&t, &v).await, before, "org A's data changed");
}

#[tokio::test]
async fn listings_never_show_another_orgs_objects() {
    let t = TestApp::new().await;
    let platform_admin = t.admin().await;
    let v = victim(&t, &platform_admin).await;
    let (_, b_admin, b_member) = t.org_with_users(&platform_admin, "org-b").await;
    for token in [&b_admin, &b_member] {
        for path in [
            "/api/v1/orgs",
            "/api/v1/users",
            "/api/v1/templates",
            "/api/v1/sessions",
            "/api/v1/audit",
            "/api/v1/me/api-keys",
        ] {
            let reply = t.get(path, token).await;
            let text = reply.body.to_string();
            for id in [&v.org, &v.user, &v.template, &v.session, &v.api_key, &v.agent] {
                assert!(!text.contains(id.as_str()), "{path} leaks {id}: {text}");
            }
        }
    }
    // And the platform admin does see them.
    let all = t.get("/api/v1/sessions", &platform_admin).await.body.to_string();
    assert!(all.contains(&v.session));
}

#[tokio::test]
async fn org_admins_cannot_reach_into_other_orgs_by_naming_them() {
    let t = TestApp::new().await;
    let platform_admin = t.admin().await;
    let v = victim(&t, &platform_admin).await;
    let (_, b_admin, _) = t.org_with_users(&platform_admin, "org-b").await;
    let user = json!({"username": "intruder", "password": "password-123", "role": "member", "org_id": v.org});
    assert_eq!(t.post("/api/v1/users", &b_admin, user).await.status, StatusCode::NOT_FOUND);
    // A template of org A is not launchable from org B, by id or by name.
    for reference in [v.template.as_str(), "a-only"] {
        let reply = t.post("/api/v1/sessions", &b_admin, json!({"template": reference})).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reference}");
    }
}

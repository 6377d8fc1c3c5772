//! Orgs, users, templates, sessions and the audit log through the API.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::json;
use streamspace_server::Config;
use streamspace_server::bootstrap;
use streamspace_server::clock::ManualClock;

use crate::harness::{Postgres, TestApp, unbootstrapped};

#[tokio::test]
async fn a_fresh_installation_has_the_default_org_admin_and_catalog() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let templates = t.get("/api/v1/templates", &admin).await;
    let names: Vec<&str> =
        templates.body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chromium", "firefox", "desktop", "vscode"]);
    let chromium = &templates.body["items"][0];
    assert_eq!(chromium["image"], "streamspace/chromium:latest");
    assert_eq!(chromium["port"], 8080);
    // Every icon is an image the binary serves to anyone (an <img> sends no credentials).
    for template in templates.body["items"].as_array().unwrap() {
        let url = template["icon"].as_str().unwrap();
        let icon = t.send(Method::GET, url, None, None).await;
        assert_eq!(icon.status, StatusCode::OK, "{url}");
        assert_eq!(icon.headers["content-type"], "image/svg+xml", "{url}");
        assert!(icon.body.as_str().unwrap().starts_with("<svg"), "{url}");
        assert!(icon.headers["content-security-policy"].to_str().unwrap().contains("sandbox"), "{url}");
    }
    assert_eq!(t.send(Method::GET, "/api/v1/icons/..%2Fsecret.svg", None, None).await.status, StatusCode::NOT_FOUND);
    assert!(chromium["org_id"].is_null());
    let orgs = t.get("/api/v1/orgs", &admin).await;
    assert_eq!(orgs.body["items"][0]["name"], "default");
    // A second bootstrap is a no-op.
    assert_eq!(
        streamspace_server::bootstrap::run(&t.app).await.unwrap(),
        streamspace_server::bootstrap::Outcome::AlreadyBootstrapped
    );
}

/// Replicas share PostgreSQL (ADR 0030), whose first start they may well make together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_on_a_new_database_bootstrap_it_once() {
    let (dir, database) = (tempfile::tempdir().unwrap(), Postgres::fresh().await);
    let config =
        Config { data_dir: dir.path().to_path_buf(), database_url: Some(database.url.clone()), ..Config::default() };
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    // The keys are the key file's on a real database; here the first start's, made before the race.
    streamspace_server::keys::Keys::load(&config).unwrap();
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let (config, clock) = (config.clone(), clock.clone());
            tokio::spawn(async move { bootstrap::run(&*unbootstrapped(config, clock).await).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for replica in replicas {
        outcomes.push(replica.await.unwrap());
    }
    let bootstrapped = outcomes.iter().filter(|outcome| **outcome != bootstrap::Outcome::AlreadyBootstrapped);
    assert_eq!(bootstrapped.count(), 1, "{outcomes:?}");
    database.drop_database().await;
}

#[tokio::test]
async fn org_crud_validates_names_and_conflicts() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let bad = t.post("/api/v1/orgs", &admin, json!({"name": "Not A Slug"})).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let created = t.post("/api/v1/orgs", &admin, json!({"name": "acme"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let duplicate = t.post("/api/v1/orgs", &admin, json!({"name": "acme"})).await;
    assert_eq!((duplicate.status, duplicate.code()), (StatusCode::CONFLICT, "conflict"));

    let id = created.body["id"].as_str().unwrap();
    let path = format!("/api/v1/orgs/{id}");
    let patched =
        t.send(Method::PATCH, &path, Some(&admin), Some(json!({"max_sessions": 3, "mfa_required": true}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!((patched.body["max_sessions"].as_i64(), patched.body["mfa_required"].as_bool()), (Some(3), Some(true)));
    let cleared = t.send(Method::PATCH, &path, Some(&admin), Some(json!({"max_sessions": null}))).await;
    assert!(cleared.body["max_sessions"].is_null());
    assert_eq!(cleared.body["mfa_required"], true, "fields not named stay as they were");

    assert_eq!(t.send(Method::DELETE, &path, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&path, &admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_org_with_users_cannot_be_deleted() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, _) = t.org_with_users(&admin, "busy").await;
    let reply = t.send(Method::DELETE, &format!("/api/v1/orgs/{org_id}"), Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn roles_limit_what_users_may_do() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, member) = t.org_with_users(&admin, "acme").await;
    // Members manage nothing.
    assert_eq!(t.get("/api/v1/users", &member).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.post("/api/v1/orgs", &member, json!({"name": "x"})).await.status, StatusCode::FORBIDDEN);
    let template = json!({"name": "mine", "display_name": "Mine", "image": "img:1"});
    assert_eq!(t.post("/api/v1/templates", &member, template.clone()).await.status, StatusCode::FORBIDDEN);
    // Org admins manage their org but cannot mint platform admins or create orgs.
    let promote = json!({"username": "boss", "password": "password-123", "role": "platform_admin"});
    assert_eq!(t.post("/api/v1/users", &org_admin, promote).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.post("/api/v1/orgs", &org_admin, json!({"name": "x"})).await.status, StatusCode::FORBIDDEN);
    let created = t.post("/api/v1/templates", &org_admin, template).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["org_id"], org_id.as_str(), "org admins' templates belong to their org");
    // Global templates are visible to org admins but not theirs to change.
    let global = t.get("/api/v1/templates", &org_admin).await.body["items"][0]["id"].as_str().unwrap().to_owned();
    let reply = t
        .send(Method::PATCH, &format!("/api/v1/templates/{global}"), Some(&org_admin), Some(json!({"enabled": false})))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Quotas are the platform's to set.
    let quota = t
        .send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&org_admin), Some(json!({"max_sessions": 100})))
        .await;
    assert_eq!(quota.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn users_are_unique_validated_and_cannot_remove_themselves() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let user = |name: &str, password: &str| json!({"username": name, "password": password, "role": "member"});
    assert_eq!(t.post("/api/v1/users", &admin, user("bob", "password-123")).await.status, StatusCode::CREATED);
    assert_eq!(t.post("/api/v1/users", &admin, user("BOB", "password-123")).await.status, StatusCode::CONFLICT);
    assert_eq!(
        t.post("/api/v1/users", &admin, user("bad name", "password-123")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(t.post("/api/v1/users", &admin, user("carol", "short")).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_role =
        t.post("/api/v1/users", &admin, json!({"username": "dan", "password": "password-123", "role": "god"})).await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    let me = t.get("/api/v1/me", &admin).await.body["id"].as_str().unwrap().to_owned();
    let reply = t.send(Method::DELETE, &format!("/api/v1/users/{me}"), Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let users = t.get("/api/v1/users", &admin).await;
    assert!(users.body["items"].as_array().unwrap().iter().all(|u| u.get("password_hash").is_none()));
}

#[tokio::test]
async fn templates_are_validated() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let base = json!({"name": "app", "display_name": "App", "image": "img:1"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (field, value) in [
        ("name", json!("Bad Name")),
        ("image", json!("")),
        ("memory_mb", json!(0)),
        ("port", json!(70000)),
        ("env", json!({"1BAD": "x"})),
        ("display_name", json!("")),
    ] {
        let reply = t.post("/api/v1/templates", &admin, with(field, value)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", reply.body);
    }
    let created = t.post("/api/v1/templates", &admin, with("env", json!({"LANG": "C.UTF-8"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["env"]["LANG"], "C.UTF-8");
    assert_eq!(created.body["cpu_millis"], 2000);
    assert_eq!(t.post("/api/v1/templates", &admin, base).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn sessions_fail_with_a_reason_when_no_agent_can_run_them_and_are_private_to_their_owner() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, org_admin, member) = t.org_with_users(&admin, "acme").await;
    let created = t.post("/api/v1/sessions", &member, json!({"template": "chromium"})).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["state"], "failed");
    assert_eq!(created.body["failure_reason"], "cannot schedule: no agent is online");
    assert_eq!(created.body["template_name"], "chromium");
    assert_eq!(created.body["owner_username"], "acme-member");
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Another member of the same org does not see it; the org admin does.
    let other = t
        .post(
            "/api/v1/users",
            &org_admin,
            json!({"username": "acme-other", "password": "password-123", "role": "member"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    let other = t.login("acme-other", "password-123").await;
    assert_eq!(t.get(&format!("/api/v1/sessions/{id}"), &other).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get("/api/v1/sessions", &other).await.body["items"].as_array().unwrap().len(), 0);
    assert_eq!(t.get(&format!("/api/v1/sessions/{id}"), &org_admin).await.status, StatusCode::OK);

    let unknown = t.post("/api/v1/sessions", &member, json!({"template": "no-such-template"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Only running sessions hibernate; the refusal is audited as such.
    let refused = t.post(&format!("/api/v1/sessions/{id}/hibernate"), &member, json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "invalid_state"));
    assert!(t.audit_actions().await.contains(&("session.hibernate".to_owned(), "denied".to_owned())));

    // A failed session has nothing running: stopping it ends it at once.
    let stopped = t.send(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(&member), None).await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED);
    assert_eq!(stopped.body["state"], "stopped");
    assert!(stopped.body["stopped_at"].is_string());
    let listed = t.get("/api/v1/sessions?state=stopped", &member).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn quotas_refuse_sessions_beyond_the_limit() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, member) = t.org_with_users(&admin, "small").await;
    let quota = json!({"max_sessions_per_user": 1});
    assert_eq!(
        t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(quota)).await.status,
        StatusCode::OK
    );
    // One live session (no agent runs here, so it is placed in the store directly).
    let me = t.get("/api/v1/me", &member).await.body;
    let templates = t.get("/api/v1/templates", &member).await.body;
    let live = streamspace_store::NewSession {
        org_id: org_id.parse().unwrap(),
        owner_id: me["id"].as_str().unwrap().parse().unwrap(),
        template_id: templates["items"][0]["id"].as_str().unwrap().parse().unwrap(),
        cpu_millis: 1000,
        memory_mb: 1024,
    };
    t.app.store.create_session(live).await.unwrap();
    let refused = t.post("/api/v1/sessions", &member, json!({"template": "firefox"})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "quota_exceeded"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("per user"));
}

/// Views keep templates' names for a few seconds; a rename shows at once on the replica that made it.
#[tokio::test]
async fn sessions_show_a_renamed_template_at_once() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, member) = t.org_with_users(&admin, "acme").await;
    let me = t.get("/api/v1/me", &member).await.body;
    let template = t.get("/api/v1/templates", &member).await.body["items"][0].clone();
    let session = streamspace_store::NewSession {
        org_id: org_id.parse().unwrap(),
        owner_id: me["id"].as_str().unwrap().parse().unwrap(),
        template_id: template["id"].as_str().unwrap().parse().unwrap(),
        cpu_millis: 1000,
        memory_mb: 1024,
    };
    t.app.store.create_session(session).await.unwrap();
    let shown = |listed: serde_json::Value| listed["items"][0]["template_display_name"].clone();
    assert_eq!(shown(t.get("/api/v1/sessions", &member).await.body), template["display_name"]);

    let path = format!("/api/v1/templates/{}", template["id"].as_str().unwrap());
    let renamed = t.send(Method::PATCH, &path, Some(&admin), Some(json!({"display_name": "Renamed"}))).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(shown(t.get("/api/v1/sessions", &member).await.body), "Renamed");
}

#[tokio::test]
async fn disabled_templates_cannot_be_launched_and_are_hidden_from_members() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, _, member) = t.org_with_users(&admin, "acme").await;
    let templates = t.get("/api/v1/templates", &admin).await;
    let firefox = templates.body["items"][1]["id"].as_str().unwrap().to_owned();
    let reply = t
        .send(Method::PATCH, &format!("/api/v1/templates/{firefox}"), Some(&admin), Some(json!({"enabled": false})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(t.post("/api/v1/sessions", &member, json!({"template": "firefox"})).await.status, StatusCode::NOT_FOUND);
    let names = t.get("/api/v1/templates", &member).await.body.to_string();
    assert!(!names.contains("\"firefox\""));
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_exports_csv() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    for name in ["one", "two", "three"] {
        t.post("/api/v1/orgs", &admin, json!({"name": name})).await;
    }
    let creates = t.get("/api/v1/audit?action=org.create", &admin).await;
    let items = creates.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["details"]["name"], "three", "newest first");
    assert_eq!(items[0]["actor_name"], "admin");
    assert_eq!(items[0]["client_ip"], "127.0.0.1");

    let first = t.get("/api/v1/audit?action=org.create&limit=2", &admin).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = t.get(&format!("/api/v1/audit?action=org.create&limit=2&cursor={cursor}"), &admin).await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert!(rest.body["next_cursor"].is_null());

    let failed = t.get("/api/v1/audit?result=failure", &admin).await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 0);
    let searched = t.get("/api/v1/audit?q=thr", &admin).await;
    assert_eq!(searched.body["items"].as_array().unwrap().len(), 1);

    let csv = t.get("/api/v1/audit?format=csv&action=org.create", &admin).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with("seq,id,time,actor_id,actor_name"));
    assert_eq!(text.lines().count(), 4);

    let bad = t.get("/api/v1/audit?since=yesterday", &admin).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let t = TestApp::new().await;
    assert_eq!(t.send(Method::GET, "/healthz", None, None).await.body["status"], "ok");
    assert_eq!(t.send(Method::GET, "/readyz", None, None).await.body["status"], "ok");
    let metrics = t.send(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("streamspace_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn deleting_an_agent_fails_its_sessions_and_forgets_it() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let agent = t.post("/api/v1/agents", &admin, json!({"name": "doomed", "platform": "docker"})).await;
    assert_eq!(agent.status, StatusCode::CREATED);
    assert!(agent.body["token"].as_str().unwrap().starts_with("ssa_"));
    let agent_id: uuid::Uuid = agent.body["id"].as_str().unwrap().parse().unwrap();
    // A session the scheduler placed on it.
    let me = t.get("/api/v1/me", &admin).await.body;
    let template = t.get("/api/v1/templates", &admin).await.body["items"][0]["id"].as_str().unwrap().parse().unwrap();
    let session = t
        .app
        .store
        .create_session(streamspace_store::NewSession {
            org_id: me["org_id"].as_str().unwrap().parse().unwrap(),
            owner_id: me["id"].as_str().unwrap().parse().unwrap(),
            template_id: template,
            cpu_millis: 1000,
            memory_mb: 1024,
        })
        .await
        .unwrap();
    let mut placed = streamspace_store::SessionUpdate::transition(
        streamspace_proto::SessionState::Pending,
        streamspace_proto::SessionState::Scheduled,
    );
    placed.agent_id = Some(Some(agent_id));
    t.app.store.update_session(session.id, placed).await.unwrap().unwrap();

    let deleted = t.send(Method::DELETE, &format!("/api/v1/agents/{agent_id}"), Some(&admin), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = t.get(&format!("/api/v1/sessions/{}", session.id), &admin).await.body;
    assert_eq!(
        (after["state"].as_str(), after["failure_reason"].as_str()),
        (Some("failed"), Some("its agent was deleted"))
    );
    assert_eq!(t.get(&format!("/api/v1/agents/{agent_id}"), &admin).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stats_count_sessions_by_state_for_admins_only() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, org_admin, member) = t.org_with_users(&admin, "acme").await;
    t.post("/api/v1/sessions", &member, json!({"template": "chromium"})).await;
    let stats = t.get("/api/v1/stats", &org_admin).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["sessions_by_state"]["failed"], 1, "{}", stats.body);
    assert_eq!(stats.body["agents_online"], 0);
    assert!(stats.body["session_start_latency"].as_array().unwrap().is_empty(), "nothing started");
    // Another org's admin sees none of it.
    let (_, other_admin, _) = t.org_with_users(&admin, "other").await;
    assert!(t.get("/api/v1/stats", &other_admin).await.body["sessions_by_state"].get("failed").is_none());
    assert_eq!(t.get("/api/v1/stats", &member).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_built_in_agent_is_not_re_keyed_through_the_api() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let builtin = json!({"name": "local", "platform": "docker", "labels": {"streamspace.builtin": "true"}});
    let id = t.post("/api/v1/agents", &admin, builtin).await.body["id"].as_str().unwrap().to_owned();
    let refused = t.post(&format!("/api/v1/agents/{id}/token"), &admin, json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("streamspace up"));
    let other = t.post("/api/v1/agents", &admin, json!({"name": "remote", "platform": "docker"})).await;
    let rotated =
        t.post(&format!("/api/v1/agents/{}/token", other.body["id"].as_str().unwrap()), &admin, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_ne!(rotated.body["token"], other.body["token"]);
}

#[tokio::test]
async fn organizations_start_with_finite_quotas_that_an_administrator_raises() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let defaults = streamspace_server::config::default_quotas();
    let per_user = defaults.max_sessions_per_user.expect("a finite default");
    let bootstrapped = &t.get("/api/v1/orgs", &admin).await.body["items"][0];
    let created = t.post("/api/v1/orgs", &admin, json!({"name": "fresh"})).await.body;
    for org in [bootstrapped, &created] {
        let quotas: streamspace_store::Quotas = serde_json::from_value(org.clone()).unwrap();
        assert_eq!(quotas, defaults, "{org}");
    }

    let (org_id, _, member) = t.org_with_users(&admin, "busy").await;
    let me = t.get("/api/v1/me", &member).await.body;
    let template = t.get("/api/v1/templates", &member).await.body["items"][0]["id"].as_str().unwrap().to_owned();
    for _ in 0..per_user {
        let live = streamspace_store::NewSession {
            org_id: org_id.parse().unwrap(),
            owner_id: me["id"].as_str().unwrap().parse().unwrap(),
            template_id: template.parse().unwrap(),
            cpu_millis: 1000,
            memory_mb: 1024,
        };
        t.app.store.create_session(live).await.unwrap();
    }
    let refused = t.post("/api/v1/sessions", &member, json!({"template": "chromium"})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "quota_exceeded"));
    let raise = json!({"max_sessions_per_user": per_user + 1});
    let raised = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(raise)).await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.body);
    let accepted = t.post("/api/v1/sessions", &member, json!({"template": "chromium"})).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
}

#[tokio::test]
async fn egress_allow_lists_are_checked_and_set_by_platform_admins_only() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, _) = t.org_with_users(&admin, "acme").await;
    let template = |name: &str, allow: serde_json::Value| json!({"name": name, "display_name": "App", "image": "img:1", "egress_allow": allow});

    let created = t.post("/api/v1/templates", &admin, template("intranet", json!(["10.20.0.0/16", "fd12::/16"]))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["egress_allow"], json!(["10.20.0.0/16", "fd12::/16"]));
    let plain =
        t.post("/api/v1/templates", &admin, json!({"name": "plain", "display_name": "P", "image": "i:1"})).await;
    assert_eq!(plain.body["egress_allow"], json!([]), "nothing extra by default");

    for (allow, says) in [
        (json!(["169.254.169.254/32"]), "link-local"),
        (json!(["127.0.0.0/8"]), "loopback"),
        (json!(["0.0.0.0/0"]), "loopback"),
        (json!(["fe80::/10"]), "link-local"),
        (json!(["10.1.2.3/8"]), "did you mean 10.0.0.0/8"),
    ] {
        let reply = t.post("/api/v1/templates", &admin, template("refused", allow.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{allow}");
        assert!(reply.body["error"]["message"].as_str().unwrap().contains(says), "{allow}: {}", reply.body);
    }
    let garbage = t.post("/api/v1/templates", &admin, template("garbage", json!(["not-a-network"]))).await;
    assert!(garbage.status.is_client_error() && garbage.body["error"]["code"].is_string(), "{}", garbage.body);

    // A tenant opening private ranges would reach the platform's own network.
    let own = t.post("/api/v1/templates", &org_admin, template("mine", json!(["10.0.0.0/8"]))).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    let own =
        t.post("/api/v1/templates", &org_admin, json!({"name": "mine", "display_name": "M", "image": "i:1"})).await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    let own_path = format!("/api/v1/templates/{}", own.body["id"].as_str().unwrap());
    let patch = Some(json!({"egress_allow": ["10.0.0.0/8"]}));
    assert_eq!(t.send(Method::PATCH, &own_path, Some(&org_admin), patch.clone()).await.status, StatusCode::FORBIDDEN);
    let patched = t.send(Method::PATCH, &own_path, Some(&admin), patch).await;
    assert_eq!((patched.status, &patched.body["egress_allow"]), (StatusCode::OK, &json!(["10.0.0.0/8"])));

    let org_path = format!("/api/v1/orgs/{org_id}");
    let policy = Some(json!({"egress_allow": ["192.168.10.0/24"]}));
    assert_eq!(t.send(Method::PATCH, &org_path, Some(&org_admin), policy.clone()).await.status, StatusCode::FORBIDDEN);
    let org = t.send(Method::PATCH, &org_path, Some(&admin), policy).await;
    assert_eq!((org.status, &org.body["egress_allow"]), (StatusCode::OK, &json!(["192.168.10.0/24"])));
    let refused =
        t.send(Method::PATCH, &org_path, Some(&admin), Some(json!({"egress_allow": ["169.254.0.0/16"]}))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(t.get(&org_path, &org_admin).await.body["egress_allow"], json!(["192.168.10.0/24"]), "unchanged");
}

#[tokio::test]
async fn a_started_sessions_spec_carries_the_template_and_org_allow_lists_merged() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, member) = t.org_with_users(&admin, "acme").await;
    let org_policy = json!({"egress_allow": ["192.168.10.0/24", "10.20.0.0/16"]});
    let org = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(org_policy)).await;
    assert_eq!(org.status, StatusCode::OK);
    let template = json!({"name": "intranet", "display_name": "I", "image": "i:1", "egress_allow": ["10.20.0.0/16", "203.0.113.0/24"]});
    let template = t.post("/api/v1/templates", &admin, template).await.body;
    let agent = t.post("/api/v1/agents", &admin, json!({"name": "docker-1", "platform": "docker"})).await.body;
    let agent_id: uuid::Uuid = agent["id"].as_str().unwrap().parse().unwrap();

    let me = t.get("/api/v1/me", &member).await.body;
    let session = t
        .app
        .store
        .create_session(streamspace_store::NewSession {
            org_id: org_id.parse().unwrap(),
            owner_id: me["id"].as_str().unwrap().parse().unwrap(),
            template_id: template["id"].as_str().unwrap().parse().unwrap(),
            cpu_millis: 1000,
            memory_mb: 1024,
        })
        .await
        .unwrap();
    let placed = streamspace_server::lifecycle::Detail { agent_id: Some(agent_id), ..Default::default() };
    let cause = streamspace_server::orchestrator::Cause::system();
    t.app.advance(&session, streamspace_server::lifecycle::Trigger::Scheduled, placed, &cause).await.unwrap();

    let commands = t.app.store.pending_commands(agent_id).await.unwrap();
    let spec = commands[0].command.spec.as_ref().expect("a start carries the spec");
    let merged: Vec<String> = spec.egress_allow.iter().map(ToString::to_string).collect();
    assert_eq!(merged, ["10.20.0.0/16", "192.168.10.0/24", "203.0.113.0/24"], "both lists, sorted, once each");
}

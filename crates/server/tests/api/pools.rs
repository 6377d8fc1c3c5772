//! Warm pools (ADR 0034) in-process: the real router and store, the manual clock, the background
//! round that refills pools, and the fake agent of `orchestrator.rs` holding the hub's end.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use streamspace_proto::SessionState::*;
use streamspace_proto::hub::{ActualState, Capacity, CommandKind};
use streamspace_server::replicas::Duty;
use uuid::Uuid;

use crate::harness::{Postgres, TestApp};
use crate::orchestrator::{FakeAgent, running, stored};

async fn template_id(t: &TestApp, token: &str, name: &str) -> Uuid {
    let list = t.get("/api/v1/templates", token).await;
    let found = list.body["items"].as_array().unwrap().iter().find(|item| item["name"] == name).unwrap();
    found["id"].as_str().unwrap().parse().unwrap()
}

/// The catalog template without the user's home it keeps by default: a warm container cannot
/// mount the home of a user it does not know yet.
async fn poolable_template(t: &TestApp, admin: &str, name: &str) -> Uuid {
    let id = template_id(t, admin, name).await;
    let patch = json!({"home": {"scope": "none"}});
    let reply = t.send(Method::PATCH, &format!("/api/v1/templates/{id}"), Some(admin), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    id
}

async fn set_pool(t: &TestApp, token: &str, template: Uuid, size: i64) -> (StatusCode, Value) {
    let reply = t
        .send(Method::PUT, &format!("/api/v1/templates/{template}/pool"), Some(token), Some(json!({"size": size})))
        .await;
    (reply.status, reply.body)
}

/// One background round, then the starts it sent: the new members' ids.
async fn refill(t: &TestApp, agent: &mut FakeAgent) -> Vec<Uuid> {
    t.app.refill_pools().await.unwrap();
    let commands = agent.full_commands(t).await;
    assert!(commands.iter().all(|c| c.kind == CommandKind::Start), "{commands:?}");
    for command in &commands {
        let spec = command.spec.as_ref().unwrap();
        assert_eq!(spec.owner_id, Uuid::nil(), "a member is nobody's until claimed");
        assert!(spec.env.contains_key("SELKIES_MASTER_TOKEN"));
    }
    commands.into_iter().map(|c| c.session_id).collect()
}

async fn launch(t: &TestApp, token: &str, template: &str) -> Value {
    let created = t.post("/api/v1/sessions", token, json!({"template": template})).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    created.body
}

async fn pools(t: &TestApp, token: &str) -> Value {
    let reply = t.get("/api/v1/pools", token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_launch_claims_a_ready_member_that_never_returns_and_the_pool_refills() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, _, member) = t.org_with_users(&admin, "acme").await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let chromium = poolable_template(&t, &admin, "chromium").await;

    let (status, body) = set_pool(&t, &admin, chromium, 2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let warm = refill(&t, &mut agent).await;
    assert_eq!(warm.len(), 2);
    assert!(refill(&t, &mut agent).await.is_empty(), "started members are not started twice");

    // Members still starting are not handed out: that launch starts the ordinary way.
    let cold = launch(&t, &member, "chromium").await;
    assert_eq!(cold["state"], "scheduled");
    assert!(!warm.contains(&id_of(&cold)));
    assert_eq!(agent.commands(&t).await, [(CommandKind::Start, id_of(&cold))]);

    for id in &warm {
        agent.report(&t, *id, running()).await;
    }
    let listed = pools(&t, &admin).await;
    assert_eq!(listed[0]["size"], 2);
    assert_eq!(listed[0]["agents"][0]["ready"], 2, "{listed}");

    let claimed = launch(&t, &member, "chromium").await;
    let claimed_id = id_of(&claimed);
    assert!(warm.contains(&claimed_id), "{claimed}");
    assert_eq!(claimed["state"], "running", "the session runs the moment it is created");
    assert!(agent.commands(&t).await.is_empty(), "nothing to start");
    let session = stored(&t, claimed_id).await;
    assert_eq!((session.agent_id, session.started_at), (Some(agent.id), Some(session.created_at)));
    assert_eq!(t.get(&format!("/api/v1/sessions/{claimed_id}"), &member).await.status, StatusCode::OK);
    let creates = t.audit_actions().await.into_iter().filter(|(action, _)| action == "session.create").count();
    assert_eq!(creates, 2, "the cold and the warm launch are both audited");

    let refilled = refill(&t, &mut agent).await;
    assert_eq!(refilled.len(), 1);
    assert!(!warm.contains(&refilled[0]));

    // Stopping the claimed session ends its container; the pool keeps its own.
    let stop = t.send(Method::DELETE, &format!("/api/v1/sessions/{claimed_id}"), Some(&member), None).await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.body);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, claimed_id)]);
    agent.report(&t, claimed_id, ActualState::Stopped).await;
    assert_eq!(stored(&t, claimed_id).await.state, Stopped);
    assert!(refill(&t, &mut agent).await.is_empty());
    let members: Vec<Uuid> = t.app.store.list_pool_members().await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(members.len(), 2);
    assert!(!members.contains(&claimed_id), "a claimed container never returns to the pool");
}

#[tokio::test]
async fn members_count_against_capacity_and_a_smaller_pool_stops_the_surplus() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let capacity = Capacity { max_sessions: 2, cpu_millis: 0, memory_mb: 0 };
    let mut agent = FakeAgent::connect_with(&t, &admin, "small", capacity).await;
    let chromium = poolable_template(&t, &admin, "chromium").await;

    set_pool(&t, &admin, chromium, 3).await;
    let warm = refill(&t, &mut agent).await;
    assert_eq!(warm.len(), 2, "the agent holds two containers, so the pool gets two");
    let no_room = launch(&t, &admin, "firefox").await;
    assert_eq!(no_room["state"], "failed");
    assert!(no_room["failure_reason"].as_str().unwrap().contains("capacity"), "{no_room}");

    set_pool(&t, &admin, chromium, 1).await;
    t.app.refill_pools().await.unwrap();
    let commands = agent.commands(&t).await;
    assert_eq!(commands, [(CommandKind::Stop, warm[1])], "the newest member is stopped");
    let fits = launch(&t, &admin, "firefox").await;
    assert_eq!(fits["state"], "scheduled");
}

#[tokio::test]
async fn a_member_is_claimed_only_by_a_session_that_would_get_its_spec() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, member) = t.org_with_users(&admin, "acme").await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let chromium = poolable_template(&t, &admin, "chromium").await;
    set_pool(&t, &admin, chromium, 1).await;
    let warm = refill(&t, &mut agent).await;
    agent.report(&t, warm[0], running()).await;

    // The org lets its sessions reach a network the member was not started with.
    let patch = json!({"egress_allow": ["10.20.0.0/16"]});
    let reply = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cold = launch(&t, &member, "chromium").await;
    assert_eq!(cold["state"], "scheduled");
    assert_ne!(id_of(&cold), warm[0]);

    // Another org keeps the clipboard off: the member's streamer was started with it on.
    let (globex, _, globex_member) = t.org_with_users(&admin, "globex").await;
    let patch = json!({"session_policy": {"clipboard": "off"}});
    let reply = t.send(Method::PATCH, &format!("/api/v1/orgs/{globex}"), Some(&admin), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cold = launch(&t, &globex_member, "chromium").await;
    assert_eq!(cold["state"], "scheduled");
    assert_ne!(id_of(&cold), warm[0]);

    // A changed template retires the members started from the old one.
    let patch = json!({"env": {"STREAMSPACE_START_URL": "https://example.org/"}});
    let reply = t.send(Method::PATCH, &format!("/api/v1/templates/{chromium}"), Some(&admin), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    agent.commands(&t).await;
    t.app.refill_pools().await.unwrap();
    let commands = agent.full_commands(&t).await;
    let kinds: Vec<_> = commands.iter().map(|c| (c.kind, c.session_id == warm[0])).collect();
    assert_eq!(kinds, [(CommandKind::Stop, true), (CommandKind::Start, false)]);
    let spec = commands[1].spec.as_ref().unwrap();
    assert_eq!(spec.env.get("STREAMSPACE_START_URL").map(String::as_str), Some("https://example.org/"));
}

#[tokio::test]
async fn failed_and_vanished_members_leave_the_pool_and_are_replaced() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let chromium = poolable_template(&t, &admin, "chromium").await;
    set_pool(&t, &admin, chromium, 2).await;
    let warm = refill(&t, &mut agent).await;

    agent.report(&t, warm[0], ActualState::Failed { reason: "crashed".into() }).await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, warm[0])]);
    // The agent lost the other one: its inventory no longer lists it.
    agent.report(&t, warm[1], running()).await;
    t.app.reconcile(agent.id, &[]).await.unwrap();
    assert_eq!(t.app.store.list_pool_members().await.unwrap().len(), 1, "an inventory may predate its start");
    t.clock.advance(chrono::Duration::seconds(11));
    t.app.reconcile(agent.id, &[]).await.unwrap();
    assert!(t.app.store.list_pool_members().await.unwrap().is_empty());
    assert_eq!(refill(&t, &mut agent).await.len(), 2);

    // A member reported by another agent is not that agent's to report.
    let other = FakeAgent::connect(&t, &admin, "docker-2").await;
    let members = t.app.store.list_pool_members().await.unwrap();
    other.report(&t, members[0].id, running()).await;
    assert!(t.app.store.list_pool_members().await.unwrap().iter().all(|m| !m.is_ready()));
}

#[tokio::test]
async fn only_template_managers_set_pools_within_bounds() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, org_admin, member) = t.org_with_users(&admin, "acme").await;
    let chromium = poolable_template(&t, &admin, "chromium").await;

    assert_eq!(set_pool(&t, &member, chromium, 1).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        set_pool(&t, &org_admin, chromium, 1).await.0,
        StatusCode::FORBIDDEN,
        "global templates are the platform's"
    );
    let (status, body) = set_pool(&t, &admin, chromium, 21).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
        "{body}"
    );
    assert_eq!(set_pool(&t, &admin, Uuid::now_v7(), 1).await.0, StatusCode::NOT_FOUND);
    let firefox = template_id(&t, &admin, "firefox").await;
    let (status, body) = set_pool(&t, &admin, firefox, 1).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("template_keeps_home")),
        "its sessions mount the user's home: {body}"
    );
    assert_eq!(set_pool(&t, &admin, firefox, 0).await.0, StatusCode::OK, "no pool is always allowed");
    assert_eq!(t.get("/api/v1/pools", &member).await.status, StatusCode::FORBIDDEN);

    // An org's own template: its admin manages the pool, another org's admin does not see it.
    let created = t
        .post(
            "/api/v1/templates",
            &org_admin,
            json!({"name": "tools", "display_name": "Tools", "image": "streamspace/chromium:latest"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let tools = id_of(&created.body);
    assert_eq!(set_pool(&t, &org_admin, tools, 1).await.0, StatusCode::OK);
    let (_, other_admin, _) = t.org_with_users(&admin, "globex").await;
    assert_eq!(set_pool(&t, &other_admin, tools, 0).await.0, StatusCode::NOT_FOUND);
    assert_eq!(pools(&t, &other_admin).await, json!([]));
    assert_eq!(pools(&t, &org_admin).await[0]["template_name"], "tools");
    assert!(t.audit_actions().await.contains(&("template.pool".to_owned(), "success".to_owned())));
}

/// Two replicas on one PostgreSQL database: only the one holding the timers' lease refills the
/// pools, so a pool is not started once per replica (ADR 0030).
#[tokio::test]
async fn only_the_replica_on_duty_refills_the_pools() {
    let database = Postgres::fresh().await;
    let t = TestApp::with_config(|c| c.database_url = Some(database.url.clone())).await;
    let other = t.replica().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let chromium = poolable_template(&t, &admin, "chromium").await;
    assert_eq!(set_pool(&t, &admin, chromium, 2).await.0, StatusCode::OK);

    assert!(t.app.holds(Duty::SessionTimers).await);
    assert!(!other.holds(Duty::SessionTimers).await, "one replica at a time");
    streamspace_server::background_round(&other).await;
    assert_eq!(t.app.store.list_pool_members().await.unwrap(), vec![], "the replica off duty starts nothing");
    streamspace_server::background_round(&t.app).await;
    assert_eq!(t.app.store.list_pool_members().await.unwrap().len(), 2);
    assert_eq!(agent.commands(&t).await.len(), 2, "each member started once");
    drop((t, other));
    database.drop_database().await;
}

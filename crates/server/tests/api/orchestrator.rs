//! The orchestrator in-process: a real store and `App`, the manual clock, and a fake agent that
//! holds the agent's end of the hub (the outbox a WebSocket connection would drain), so timers,
//! reports and reconciliation run without Docker or a socket.

use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::json;
use streamspace_proto::SessionPhase;
use streamspace_proto::SessionState::{self, *};
use streamspace_proto::hub::{ActualState, Capacity, Command, CommandKind, InventoryItem, ServerMessage, SessionSpec};
use streamspace_server::clock::Clock;
use streamspace_store::{Scope, Session};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::harness::TestApp;

const ENDPOINT: &str = "http://192.0.2.10:8080";

/// An agent played by the test: registered through the API, its hello recorded, and connected
/// to the hub and held by this replica as the WebSocket connection would connect it.
pub(crate) struct FakeAgent {
    pub(crate) id: Uuid,
    inbox: mpsc::UnboundedReceiver<ServerMessage>,
}

impl FakeAgent {
    pub(crate) async fn connect(t: &TestApp, admin: &str, name: &str) -> FakeAgent {
        let capacity = Capacity { max_sessions: 10, cpu_millis: 16_000, memory_mb: 32_768 };
        FakeAgent::connect_with(t, admin, name, capacity).await
    }

    pub(crate) async fn connect_with(t: &TestApp, admin: &str, name: &str, capacity: Capacity) -> FakeAgent {
        let reply = t.post("/api/v1/agents", admin, json!({"name": name, "platform": "docker"})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let id = reply.body["id"].as_str().unwrap().parse().unwrap();
        t.app.store.record_agent_hello(id, "0.0.0-fake", capacity, &Default::default(), t.clock.now()).await.unwrap();
        let (outbox, inbox) = mpsc::unbounded_channel();
        t.app.hub.connect(id, outbox);
        t.app.store.claim_agent_connection(id, t.app.cluster.replica()).await.unwrap();
        FakeAgent { id, inbox }
    }

    /// The commands received since the last call, each acknowledged as carried out.
    pub(crate) async fn commands(&mut self, t: &TestApp) -> Vec<(CommandKind, Uuid)> {
        self.full_commands(t).await.into_iter().map(|command| (command.kind, command.session_id)).collect()
    }

    /// The same, whole.
    pub(crate) async fn full_commands(&mut self, t: &TestApp) -> Vec<Command> {
        let mut received = Vec::new();
        while let Ok(message) = self.inbox.try_recv() {
            if let ServerMessage::Command(command) = message {
                t.app.store.ack_command(self.id, command.id, None, t.clock.now()).await.unwrap();
                received.push(command);
            }
        }
        received
    }

    /// The spec of the next start command, acknowledged.
    async fn start_spec(&mut self, t: &TestApp) -> SessionSpec {
        while let Ok(message) = self.inbox.try_recv() {
            if let ServerMessage::Command(command) = message {
                t.app.store.ack_command(self.id, command.id, None, t.clock.now()).await.unwrap();
                if let Some(spec) = command.spec.filter(|_| command.kind == CommandKind::Start) {
                    return spec;
                }
            }
        }
        panic!("no start command");
    }

    pub(crate) async fn report(&self, t: &TestApp, session_id: Uuid, actual: ActualState) {
        t.app.on_report(self.id, session_id, &actual).await.unwrap();
    }
}

pub(crate) fn running() -> ActualState {
    ActualState::Running { endpoint: ENDPOINT.into() }
}

pub(crate) async fn stored(t: &TestApp, id: Uuid) -> Session {
    t.app.store.get_session(Scope::Platform, id).await.unwrap().unwrap()
}

async fn state(t: &TestApp, id: Uuid) -> SessionState {
    stored(t, id).await.state
}

async fn create(t: &TestApp, token: &str) -> Uuid {
    let created = t.post("/api/v1/sessions", token, json!({"template": "chromium"})).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    created.body["id"].as_str().unwrap().parse().unwrap()
}

/// A session created through the API, started by `agent` and reported running.
async fn running_session(t: &TestApp, agent: &mut FakeAgent, token: &str) -> Uuid {
    let id = create(t, token).await;
    assert_eq!(agent.commands(t).await, [(CommandKind::Start, id)]);
    agent.report(t, id, running()).await;
    assert_eq!(state(t, id).await, Running);
    id
}

/// Asks for `action` (`hibernate`, `wake`) on the session through the API.
async fn ask(t: &TestApp, token: &str, id: Uuid, action: &str) {
    let reply = t.send(Method::POST, &format!("/api/v1/sessions/{id}/{action}"), Some(token), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{action}: {}", reply.body);
}

#[tokio::test]
async fn a_session_starts_on_its_agent_and_follows_its_reports_until_stopped() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;

    let id = create(&t, &admin).await;
    let session = stored(&t, id).await;
    assert_eq!(
        (session.state, session.agent_id, session.phase.as_deref()),
        (Scheduled, Some(agent.id), Some("scheduling"))
    );
    assert_eq!(agent.commands(&t).await, [(CommandKind::Start, id)]);

    agent.report(&t, id, ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(30) }).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.phase.as_deref(), session.progress), (Starting, Some("pulling"), Some(30)));

    t.clock.advance(Duration::seconds(20));
    agent.report(&t, id, running()).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.endpoint.as_deref()), (Running, Some(ENDPOINT)));
    assert_eq!((session.phase.as_deref(), session.started_at), (None, Some(t.clock.now())));

    // A report the store has moved past changes nothing.
    t.clock.advance(Duration::seconds(5));
    agent.report(&t, id, ActualState::Starting { phase: SessionPhase::Pulling, progress: Some(90) }).await;
    assert_eq!(stored(&t, id).await, session);

    let stop = t.send(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(&admin), None).await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.body);
    assert_eq!(state(&t, id).await, Stopping);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, id)]);
    agent.report(&t, id, ActualState::Stopped).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.endpoint, session.stopped_at), (Stopped, None, Some(t.clock.now())));
}

#[tokio::test]
async fn a_stop_asked_for_while_the_agent_moves_the_session_on_is_not_refused() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = create(&t, &admin).await;
    // What the request read, before the agent's reports moved the session on.
    let read = stored(&t, id).await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::Start, id)]);
    agent.report(&t, id, ActualState::Starting { phase: SessionPhase::Pulling, progress: None }).await;
    agent.report(&t, id, running()).await;

    let cause = streamspace_server::orchestrator::Cause::system();
    let trigger = streamspace_server::lifecycle::Trigger::Stop;
    let stopping = t.app.advance_requested(read, trigger, &cause).await.unwrap();
    assert_eq!(stopping.state, Stopping);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, id)]);

    // A hibernation asked of a running session whose container has died meanwhile meets a state that
    // refuses it, and says so.
    let other = running_session(&t, &mut agent, &admin).await;
    let read = stored(&t, other).await;
    agent.report(&t, other, ActualState::Stopped).await;
    assert!(state(&t, other).await.is_terminal());
    let hibernate = streamspace_server::lifecycle::Trigger::Hibernate;
    let refused = t.app.advance_requested(read, hibernate, &cause).await.unwrap_err();
    assert_eq!(refused.code, "invalid_state");
    assert!(!refused.message.contains("changed meanwhile"), "{}", refused.message);
}

#[tokio::test]
async fn a_start_that_outlasts_the_start_timeout_fails() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = create(&t, &admin).await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::Start, id)]);

    t.clock.advance(t.app.config.sessions.start_timeout);
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Scheduled);

    t.clock.advance(Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.failure_reason.as_deref()), (Failed, Some("did not start within 300 s")));
    assert!(
        agent.commands(&t).await.is_empty(),
        "a failure tells the agent nothing; a later stop removes what is left"
    );
}

#[tokio::test]
async fn an_idle_session_hibernates_unless_proxied_traffic_keeps_it_awake() {
    let t = TestApp::with_config(|config| {
        config.sessions.idle_timeout = Some(Duration::minutes(10));
        config.sessions.max_lifetime = None;
    })
    .await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = running_session(&t, &mut agent, &admin).await;
    let first_start = stored(&t, id).await.started_at;

    t.clock.advance(Duration::minutes(8));
    // The proxy carries a request: its traffic is stamped by the control plane's clock.
    t.app.session_cache.store(id, uuid::Uuid::nil(), Running, Some(ENDPOINT.into())).traffic.touch();
    streamspace_server::background_round(&t.app).await;
    assert_eq!(stored(&t, id).await.last_activity_at, Some(t.clock.now()));

    t.clock.advance(Duration::minutes(10));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Running, "quiet for exactly the timeout, not longer");
    assert!(agent.commands(&t).await.is_empty());

    t.clock.advance(Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Hibernating);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Hibernate, id)]);
    agent.report(&t, id, ActualState::Hibernated).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.endpoint), (Hibernated, None));

    t.clock.advance(Duration::hours(1));
    // Back an hour later (with a new access token), the owner wakes it.
    let admin = t.admin().await;
    ask(&t, &admin, id, "wake").await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::Wake, id)]);
    agent.report(&t, id, running()).await;
    let session = stored(&t, id).await;
    assert_eq!((session.state, session.started_at), (Running, first_start), "a wake is not a first start");

    // Its traffic from before the hibernation does not count against the woken session.
    t.clock.advance(Duration::minutes(10));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Running);
}

#[tokio::test]
async fn a_session_past_its_maximum_lifetime_is_stopped_however_busy() {
    let t = TestApp::with_config(|config| {
        config.sessions.idle_timeout = None;
        config.sessions.max_lifetime = Some(Duration::hours(1));
    })
    .await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = running_session(&t, &mut agent, &admin).await;

    t.clock.advance(Duration::hours(1));
    t.app.session_cache.store(id, uuid::Uuid::nil(), Running, Some(ENDPOINT.into())).traffic.touch();
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Running);

    t.clock.advance(Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Stopping);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, id)]);
    agent.report(&t, id, ActualState::Stopped).await;
    assert_eq!(state(&t, id).await, Stopped);
}

#[tokio::test]
async fn a_session_hibernated_past_its_expiry_is_stopped_and_its_container_removed() {
    let t = TestApp::with_config(|config| {
        config.sessions.idle_timeout = None;
        config.sessions.max_lifetime = None;
        config.sessions.hibernated_expiry = Some(Duration::days(7));
    })
    .await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = running_session(&t, &mut agent, &admin).await;
    ask(&t, &admin, id, "hibernate").await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::Hibernate, id)]);
    t.clock.advance(Duration::minutes(1));
    agent.report(&t, id, ActualState::Hibernated).await;

    t.clock.advance(Duration::days(7));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Hibernated, "hibernated for exactly the expiry, not longer");
    assert!(agent.commands(&t).await.is_empty());

    t.clock.advance(Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(state(&t, id).await, Stopping);
    assert_eq!(agent.commands(&t).await, [(CommandKind::Stop, id)], "stop removes the kept container");
    agent.report(&t, id, ActualState::Stopped).await;
    assert_eq!(state(&t, id).await, Stopped);
}

#[tokio::test]
async fn the_streamer_gets_the_stricter_policy_which_a_template_environment_cannot_loosen() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let org_id = t.get("/api/v1/me", &admin).await.body["org_id"].as_str().unwrap().to_owned();
    let org_policy = json!({"session_policy": {"clipboard": "in", "file_download": false}});
    let patched = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(org_policy)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    // The template's author closes the sound and tries to open what the org closed through the
    // streamer's own settings.
    let template_id = t.get("/api/v1/templates", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|template| template["name"] == "chromium")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let loosening = json!({"SELKIES_ENABLE_CLIPBOARD": "true", "SELKIES_FILE_TRANSFERS": "upload,download",
        "SELKIES_MICROPHONE_ENABLED": "true"});
    let patch = json!({"env": loosening, "session_policy": {"audio": false}});
    let patched = t.send(Method::PATCH, &format!("/api/v1/templates/{template_id}"), Some(&admin), Some(patch)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    create(&t, &admin).await;
    let env = agent.start_spec(&t).await.env;
    let setting = |name: &str| env.get(name).map(String::as_str);
    assert_eq!(setting("SELKIES_ENABLE_CLIPBOARD"), Some("in"));
    assert_eq!(setting("SELKIES_FILE_TRANSFERS"), Some("upload"));
    assert_eq!(setting("SELKIES_AUDIO_ENABLED"), Some("false|locked"));
    assert_eq!(setting("SELKIES_MICROPHONE_ENABLED"), Some("false|locked"));
}

#[tokio::test]
async fn a_policy_with_an_unknown_channel_or_direction_is_refused() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let org_id = t.get("/api/v1/me", &admin).await.body["org_id"].as_str().unwrap().to_owned();
    for policy in [json!({"printing": false}), json!({"clipboard": "sideways"})] {
        let patch = json!({"session_policy": policy});
        let reply = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&admin), Some(patch)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{policy}: {}", reply.body);
        assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
    }
}

/// Stops `id` through the API and plays its agent's answer.
async fn stop(t: &TestApp, agent: &mut FakeAgent, token: &str, id: Uuid) {
    let reply = t.send(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(token), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(agent.commands(t).await, [(CommandKind::Stop, id)]);
    agent.report(t, id, ActualState::Stopped).await;
}

#[tokio::test]
async fn a_users_sessions_run_where_their_home_is_and_an_admin_deletes_it_only_when_unused() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (_, acme_admin, member) = t.org_with_users(&admin, "acme").await;
    let (_, globex_admin, _) = t.org_with_users(&admin, "globex").await;
    let mut holder = FakeAgent::connect(&t, &admin, "docker-1").await;
    // The catalog's Chromium keeps the user's home.
    let first = create(&t, &member).await;
    let home = holder.start_spec(&t).await.home.expect("a home in the spec");
    holder.report(&t, first, running()).await;
    let listed = t.get("/api/v1/me/homes", &member).await.body;
    assert_eq!(listed["items"][0]["id"], home.id.to_string(), "{listed}");
    assert_eq!(listed["items"][0]["agent_id"], holder.id.to_string(), "it lives where it was first mounted");

    // An idle agent joins; the least loaded would be it, but the home is not there.
    let mut idle = FakeAgent::connect(&t, &admin, "docker-2").await;
    let second = create(&t, &member).await;
    assert_eq!(stored(&t, second).await.agent_id, Some(holder.id));
    assert_eq!(holder.start_spec(&t).await.home, Some(home.clone()));
    holder.report(&t, second, running()).await;
    assert!(idle.commands(&t).await.is_empty());

    let path = format!("/api/v1/homes/{}", home.id);
    let busy = t.send(Method::DELETE, &path, Some(&acme_admin), None).await;
    assert_eq!((busy.status, busy.code()), (StatusCode::CONFLICT, "home_in_use"), "{}", busy.body);
    for id in [first, second] {
        stop(&t, &mut holder, &member, id).await;
    }
    let foreign = t.send(Method::DELETE, &path, Some(&globex_admin), None).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another org's home is not found");
    let forbidden = t.send(Method::DELETE, &path, Some(&member), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "members reset their homes, they do not delete them");
    assert_eq!(t.send(Method::DELETE, &path, Some(&acme_admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(holder.commands(&t).await, [(CommandKind::RemoveHome, home.id)]);
    assert!(t.get("/api/v1/me/homes", &member).await.body["items"].as_array().unwrap().is_empty());
    assert!(t.audit_actions().await.iter().any(|(action, _)| action == "home.delete"));
}

#[tokio::test]
async fn a_reset_home_is_removed_and_a_deleted_users_homes_go_after_the_grace_period() {
    let t = TestApp::with_config(|config| config.home_deletion_grace = Duration::days(7)).await;
    let admin = t.admin().await;
    let (_, acme_admin, member) = t.org_with_users(&admin, "acme").await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = create(&t, &member).await;
    let home = agent.start_spec(&t).await.home.unwrap();
    agent.report(&t, id, running()).await;
    let reset = format!("/api/v1/me/homes/{}/reset", home.id);
    let busy = t.send(Method::POST, &reset, Some(&member), None).await;
    assert_eq!((busy.status, busy.code()), (StatusCode::CONFLICT, "home_in_use"));
    stop(&t, &mut agent, &member, id).await;
    let (_, _, other_member) = t.org_with_users(&admin, "globex").await;
    let foreign = t.send(Method::POST, &reset, Some(&other_member), None).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(t.send(Method::POST, &reset, Some(&member), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(agent.commands(&t).await, [(CommandKind::RemoveHome, home.id)]);

    // The next session starts with a new, empty home.
    let id = create(&t, &member).await;
    let fresh = agent.start_spec(&t).await.home.unwrap();
    assert_ne!(fresh.id, home.id);
    agent.report(&t, id, running()).await;
    stop(&t, &mut agent, &member, id).await;

    let member_id = t.get("/api/v1/me", &member).await.body["id"].as_str().unwrap().to_owned();
    let deleted = t.send(Method::DELETE, &format!("/api/v1/users/{member_id}"), Some(&acme_admin), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    t.clock.advance(Duration::days(7) - Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    assert!(agent.commands(&t).await.is_empty(), "kept through the grace period");
    let acme_admin = t.login("acme-admin", "password-123").await;
    assert_eq!(t.get("/api/v1/homes", &acme_admin).await.body["items"].as_array().unwrap().len(), 1);
    t.clock.advance(Duration::seconds(1));
    streamspace_server::background_round(&t.app).await;
    assert_eq!(agent.commands(&t).await, [(CommandKind::RemoveHome, fresh.id)]);
    assert!(t.get("/api/v1/homes", &acme_admin).await.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn reconciliation_fails_what_the_agent_lost_and_removes_what_the_store_does_not_run() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut agent = FakeAgent::connect(&t, &admin, "docker-1").await;
    let kept = running_session(&t, &mut agent, &admin).await;
    let lost = running_session(&t, &mut agent, &admin).await;
    let resting = running_session(&t, &mut agent, &admin).await;
    ask(&t, &admin, resting, "hibernate").await;
    let stranger = Uuid::now_v7();

    let item = |session_id, state| InventoryItem { session_id, state };
    let inventory = [item(kept, running()), item(stranger, running())];
    // An inventory listed before the sessions started may arrive after their reports: it may leave a
    // session out, or list its container as created and not running yet.
    t.app.reconcile(agent.id, &inventory[..1]).await.unwrap();
    t.app.reconcile(agent.id, &[item(kept, running()), item(lost, ActualState::Hibernated)]).await.unwrap();
    assert_eq!(state(&t, lost).await, Running, "it changed within the last heartbeat interval");

    t.clock.advance(Duration::seconds(11));
    t.app.reconcile(agent.id, &inventory).await.unwrap();
    assert_eq!(state(&t, kept).await, Running);
    let session = stored(&t, lost).await;
    assert_eq!((session.state, session.failure_reason.as_deref()), (Failed, Some("the session's container is gone")));
    assert_eq!(state(&t, resting).await, Hibernating, "its hibernate command is still in flight");
    assert_eq!(agent.commands(&t).await, [(CommandKind::Hibernate, resting), (CommandKind::Stop, stranger)]);

    // The hibernation was acknowledged, yet the agent no longer has the container.
    t.app.reconcile(agent.id, &inventory[..1]).await.unwrap();
    assert_eq!(state(&t, resting).await, Failed);
    assert_eq!(state(&t, kept).await, Running);
    assert!(agent.commands(&t).await.is_empty());
}

#[tokio::test]
async fn an_agent_reporting_a_session_it_does_not_hold_changes_nothing_and_is_told_to_stop_it() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let mut holder = FakeAgent::connect(&t, &admin, "docker-1").await;
    let id = running_session(&t, &mut holder, &admin).await;
    let mut other = FakeAgent::connect(&t, &admin, "docker-2").await;
    let before = stored(&t, id).await;

    other.report(&t, id, ActualState::Failed { reason: "made up".into() }).await;
    assert_eq!(stored(&t, id).await, before);
    assert_eq!(other.commands(&t).await, [(CommandKind::Stop, id)]);
    assert!(holder.commands(&t).await.is_empty());
}

//! Control-plane replicas for real (ADR 0030): several `streamspace serve` processes on one
//! PostgreSQL database with one key file, Docker agents connected to different replicas, the API
//! called on yet another, and replicas killed with SIGKILL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A database and a key file shared by the replicas, and a data directory for each.
struct Installation {
    postgres: sqlx::PgPool,
    database: String,
    url: String,
    key_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Installation {
    async fn new() -> Installation {
        let (postgres, url, database) = fresh_postgres_database().await;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("replicas.key");
        std::fs::write(&key_file, format!("{}\n", uuid::Uuid::new_v4().simple().to_string().repeat(2))).unwrap();
        Installation { postgres, database, url, key_file, dir }
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A replica with a data directory of its own: nothing is shared but the database and the key file.
    async fn replica(&self, name: &str) -> ControlPlane {
        let key_file = self.key_file.display().to_string();
        let args = ["--heartbeat-interval", "1", "--database-url", &self.url, "--key-file", &key_file];
        ControlPlane::start(&self.data_dir(name), &args).await
    }

    /// A Docker agent registered through `api` and connected to `replica`; answers its name and id.
    async fn agent(&self, api: &Api, replica: &ControlPlane, name: &str) -> (Agent, String) {
        let name = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let token = api.register_agent(&name).await;
        let agent = Agent::start(&replica.api, &token, self.dir.path().join(format!("{name}.log")));
        api.wait_for_agent_online(&name).await;
        let agents = api.get("/api/v1/agents").await;
        let id = agents["items"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["id"].clone();
        (agent, id.as_str().unwrap().to_owned())
    }

    async fn drop_database(self) {
        let statement = format!("DROP DATABASE {} WITH (FORCE)", self.database);
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&self.postgres).await.unwrap();
    }
}

async fn fixture_template(api: &Api) {
    let template = json!({"name": "fixture", "display_name": "Fixture", "image": FIXTURE_IMAGE, "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16});
    api.post("/api/v1/templates", template).await;
}

async fn create_session(api: &Api) -> String {
    let (status, session) =
        api.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"template": "fixture"}))).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{session}");
    session["id"].as_str().unwrap().to_owned()
}

/// `streamspace admin audit verify` over the shared database with the shared key file.
fn verify_audit(installation: &Installation, data_dir: &Path) -> (i32, String) {
    let output = Command::new(BIN)
        .args(["admin", "audit", "verify", "--database-url", &installation.url])
        .args(["--data-dir", &data_dir.display().to_string()])
        .args(["--key-file", &installation.key_file.display().to_string()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn three_replicas_run_sessions_on_agents_held_by_the_other_two() {
    require_docker();
    let installation = Installation::new().await;
    let first = installation.replica("a").await;
    let (second, third) = tokio::join!(installation.replica("b"), installation.replica("c"));
    let admin = third.admin().await;
    fixture_template(&admin).await;
    let (_on_first, agent_on_first) = installation.agent(&admin, &first, "on-first").await;
    let (_on_second, agent_on_second) = installation.agent(&admin, &second, "on-second").await;

    // A watcher on the first replica sees what the third does.
    let events = reqwest::Client::new()
        .get(format!("{}/api/v1/events", first.api))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();

    // The scheduler spreads sessions over the least loaded agents: both get some, though
    // neither is connected to the replica that took the requests.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create_session(&admin).await);
    }
    let mut placed = Vec::new();
    for id in &ids {
        let session = admin.wait_for_state(id, "running", START).await;
        placed.push(session["agent_id"].as_str().unwrap().to_owned());
        assert_eq!(session_containers(id).len(), 1, "one container for {id}");
    }
    assert!(placed.contains(&agent_on_first) && placed.contains(&agent_on_second), "{placed:?}");
    let running_here = |seen: &[(String, Value)]| {
        ids.iter().all(|id| {
            seen.iter().any(|(event, data)| event == "session" && data["id"] == *id && data["state"] == "running")
        })
    };
    watch_events(events, running_here).await;

    // Stopped through the second replica: the agent on the first stops its sessions too.
    let member_of_second = second.admin().await;
    for id in &ids {
        member_of_second.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    }
    for id in &ids {
        admin.wait_for_state(id, "stopped", START).await;
        eventually("the session's container to go", START, || async {
            session_containers(id).is_empty().then_some(())
        })
        .await;
    }

    // Every replica appended to one audit chain; it is still one line.
    let (code, out) = verify_audit(&installation, &installation.data_dir("verify"));
    assert_eq!(code, 0, "{out}");
    drop((first, second, third));
    installation.drop_database().await;
}

#[tokio::test]
async fn a_replica_killed_mid_start_leaves_the_session_starting_on_the_others() {
    require_docker();
    let installation = Installation::new().await;
    let holder = installation.replica("holder").await;
    let mut doomed = installation.replica("doomed").await;
    let witness = installation.replica("witness").await;
    let admin = witness.admin().await;
    fixture_template(&admin).await;
    let (_agent, agent_id) = installation.agent(&admin, &holder, "agent").await;

    // The request is taken by a replica that dies at once, before the agent has even answered.
    let id = create_session(&doomed.admin().await).await;
    doomed.kill();
    let session = admin.wait_for_state(&id, "running", START).await;
    assert_eq!(session["agent_id"], agent_id.as_str());

    // The replica holding the agent dies: the agent goes offline, and comes back with the
    // replica (a load balancer's address stays the same); commands sent meanwhile are kept.
    let mut holder = holder;
    holder.kill();
    let (status, stopping) = admin.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert!(status.is_success(), "{stopping}");
    let agent = admin.get("/api/v1/agents").await["items"][0]["name"].as_str().unwrap().to_owned();
    admin.wait_for_agent_status(&agent, "offline").await;
    holder.restart_after_kill().await;
    admin.wait_for_agent_online(&agent).await;
    admin.wait_for_state(&id, "stopped", START).await;
    eventually("the session's container to go", START, || async { session_containers(&id).is_empty().then_some(()) })
        .await;
    drop((holder, doomed, witness));
    installation.drop_database().await;
}

#[tokio::test]
async fn a_replica_with_other_keys_refuses_to_start() {
    let installation = Installation::new().await;
    let first = installation.replica("first").await;
    // A replica left to generate its own keys in its data directory.
    let output = Command::new(BIN)
        .args(["serve", "--database-url", &installation.url])
        .args(["--data-dir", &installation.data_dir("stray").display().to_string()])
        .args(listen_args(None))
        .env("STREAMSPACE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("refusing to start") && stderr.contains("jwt, seal, session, audit"), "{stderr}");
    assert!(!stderr.contains(&std::fs::read_to_string(&installation.key_file).unwrap()));
    // The first replica is unaffected: it still serves.
    first.admin().await;
    drop(first);
    installation.drop_database().await;
}

#[tokio::test]
async fn an_agent_given_two_replicas_follows_when_its_replica_is_killed() {
    require_docker();
    let installation = Installation::new().await;
    let mut first = installation.replica("first").await;
    let second = installation.replica("second").await;
    let admin = second.admin().await;
    fixture_template(&admin).await;
    let name = format!("follower-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let token = admin.register_agent(&name).await;
    // The first URL is dialed first: the agent is held by the replica about to die.
    let servers = format!("{},{}", first.api, second.api);
    let agent = Agent::start(&servers, &token, installation.dir.path().join("follower.log"));
    admin.wait_for_agent_online(&name).await;
    let id = create_session(&admin).await;
    admin.wait_for_state(&id, "running", START).await;
    const CONNECTED: &str = "connected to the control plane";
    assert_eq!(agent.log_count(CONNECTED), 1);

    // Its replica dies; a command is sent through the other one before the agent is back.
    first.kill();
    let killed = std::time::Instant::now();
    let (status, stopping) = admin.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert!(status.is_success(), "{stopping}");
    agent.wait_for_log_count(CONNECTED, 2, Duration::from_secs(5)).await;
    eprintln!("the agent was connected to the other replica {:?} after its own died", killed.elapsed());
    admin.wait_for_state(&id, "stopped", START).await;
    eventually("the session's container to go", START, || async { session_containers(&id).is_empty().then_some(()) })
        .await;
    let next = create_session(&admin).await;
    admin.wait_for_state(&next, "running", START).await;
    admin.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{next}"), None).await;
    admin.wait_for_state(&next, "stopped", START).await;
    drop((first, second, agent));
    installation.drop_database().await;
}

/// Well inside the two seconds for which a replica reuses what it read of a caller: a refusal this
/// soon came from the other replica's signal, not from the answer growing old.
const TOLD_WITHIN: Duration = Duration::from_millis(500);

async fn answers_within(api: &Api, path: &str, expected: reqwest::StatusCode, what: &str) {
    eventually(what, TOLD_WITHIN, || async {
        (api.call(reqwest::Method::GET, path, None).await.0 == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_user_changed_on_one_replica_is_read_again_on_the_others_at_once() {
    let installation = Installation::new().await;
    let (first, second) = tokio::join!(installation.replica("a"), installation.replica("b"));
    let admin = first.admin().await;
    let org = admin.post("/api/v1/orgs", json!({"name": "acme"})).await;
    let org_path = format!("/api/v1/orgs/{}", org["id"].as_str().unwrap());
    let user = json!({"username": "alice", "password": "password-123", "role": "member", "org_id": org["id"]});
    let user_path = format!("/api/v1/users/{}", admin.post("/api/v1/users", user).await["id"].as_str().unwrap());
    let alice = Api::login(&second.api, "alice", "password-123").await;
    alice.get("/api/v1/templates").await;

    let (status, body) = admin.call(reqwest::Method::PATCH, &org_path, Some(json!({"mfa_required": true}))).await;
    assert!(status.is_success(), "{body}");
    let forbidden = reqwest::StatusCode::FORBIDDEN;
    answers_within(&alice, "/api/v1/templates", forbidden, "the org's MFA requirement on the other replica").await;

    let (status, body) = admin.call(reqwest::Method::PATCH, &user_path, Some(json!({"disabled": true}))).await;
    assert!(status.is_success(), "{body}");
    let unauthorized = reqwest::StatusCode::UNAUTHORIZED;
    answers_within(&alice, "/api/v1/me", unauthorized, "the user disabled on the other replica").await;
    drop((first, second));
    installation.drop_database().await;
}

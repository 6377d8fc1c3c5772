//! Docker agents in HA groups, for real (ADR 0031): two `streamspace agent docker --ha ...` processes sharing a
//! token, the real Docker engine, and the lease in a file, a real Redis or a real Docker Swarm. The leader is
//! paused past its lease (resumed, it must not act) and killed (the standby leads within 15 s); sessions
//! survive both, each with one container.

mod common;

use std::time::{Duration, Instant};

use common::swarm::PrivateSwarm;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use streamspace_agent::ha::conformance::{self, RedisServer};
use streamspace_docker::SwarmLease;

const LEADING: &str = "leading: this agent is the active one";
const STANDING_BY: &str = "waiting for the lease";
const STEPPED_DOWN: &str = "lost the lease: stepping down";
const EXECUTING: &str = "executing command";
/// A standby leads within this long of the leader's death or pause (R8).
const TAKEOVER: Duration = Duration::from_secs(15);

/// A control plane with a fixture template, a member, and one agent registered for the group.
struct Group {
    plane: ControlPlane,
    admin: Api,
    member: Api,
    name: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Group {
    async fn start() -> Group {
        require_docker();
        let dir = tempfile::tempdir().unwrap();
        let plane = ControlPlane::start(dir.path(), &["--heartbeat-interval", "2"]).await;
        let admin = plane.admin().await;
        let name = format!("pair-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let token = admin.register_agent(&name).await;
        let template = json!({"name": "fixture", "display_name": "Fixture", "image": FIXTURE_IMAGE, "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16});
        admin.post("/api/v1/templates", template).await;
        admin.post("/api/v1/users", json!({"username": "member", "password": "password-123", "role": "member"})).await;
        let member = Api::login(&plane.api, "member", "password-123").await;
        Group { plane, admin, member, name, token, dir }
    }

    /// One agent of the group, with the lease settings `ha`.
    fn agent(&self, identity: &str, ha: &[&str]) -> Agent {
        let mut args = vec!["agent", "docker", "--server", &self.plane.api, "--ha-identity", identity];
        args.extend_from_slice(ha);
        Agent::start_with(&args, &[], &self.token, self.dir.path().join(format!("{identity}.log")))
    }
}

/// The session's one container; fails if it has none or several.
fn only_container(session_id: &str) -> String {
    let containers = session_containers(session_id);
    assert_eq!(containers.len(), 1, "session {session_id} has exactly one container: {containers:?}");
    containers[0].split_whitespace().next().unwrap().to_owned()
}

/// The whole story for one lease backend: a leads; paused past its lease, b takes over and adopts the session;
/// resumed, a steps down without acting; b killed, a leads again within 15 s and adopts every session.
async fn a_paused_leader_never_acts_again_and_a_dead_one_is_replaced(ha: &[&str]) {
    let g = Group::start().await;
    let mut a = g.agent("agent-a", ha);
    a.wait_for_log(LEADING, Duration::from_secs(30)).await;
    let mut b = g.agent("agent-b", ha);
    b.wait_for_log(STANDING_BY, Duration::from_secs(30)).await;
    g.admin.wait_for_agent_online(&g.name).await;
    let first = running_session(&g.member).await;
    let first_container = only_container(&first);

    // A partition: a is paused for longer than its lease.
    let executed_by_a = a.log_count(EXECUTING);
    a.signal("STOP");
    let paused = Instant::now();
    b.wait_for_log(LEADING, TAKEOVER).await;
    eprintln!("the standby led {:?} after the leader was paused", paused.elapsed());
    // Leading comes before connecting: until b's connection is up, the control plane has no agent online.
    g.admin.wait_for_agent_online(&g.name).await;
    let second = running_session(&g.member).await;

    // a wakes up believing it leads: it learns otherwise and touches nothing.
    a.signal("CONT");
    a.wait_for_log(STEPPED_DOWN, Duration::from_secs(10)).await;
    let third = running_session(&g.member).await;
    assert_eq!(a.log_count(EXECUTING), executed_by_a, "the former leader executed nothing after its pause");
    assert_eq!(a.log_count(LEADING), 1, "the former leader did not lead again while b led");
    assert_eq!(only_container(&first), first_container, "the first session kept its container");

    // A crash: b dies, a leads again and adopts every session.
    b.kill();
    let killed = Instant::now();
    a.wait_for_log_count(LEADING, 2, TAKEOVER).await;
    eprintln!("the standby led {:?} after the leader was killed", killed.elapsed());
    g.admin.wait_for_agent_online(&g.name).await;
    for id in [&first, &second, &third] {
        assert_eq!(g.member.session(id).await["state"], "running", "session {id} survived both failovers");
        only_container(id);
    }
    assert_eq!(only_container(&first), first_container, "no session was started again");
    // The new leader acts on commands, for the sessions it adopted too (and leaves no container behind).
    for id in [&second, &first, &third] {
        let (status, _) = g.member.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        g.member.wait_for_state(id, "stopped", START).await;
        assert!(session_containers(id).is_empty(), "session {id} stopped by the new leader");
    }
    a.stop();
}

#[tokio::test]
async fn file_lease_failover() {
    let lease_dir = tempfile::tempdir().unwrap();
    let lease = lease_dir.path().join("agents.lease").display().to_string();
    a_paused_leader_never_acts_again_and_a_dead_one_is_replaced(&["--ha", "file", "--ha-lease-file", &lease]).await;
}

#[tokio::test]
async fn redis_lease_failover() {
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(redis_dir.path());
    a_paused_leader_never_acts_again_and_a_dead_one_is_replaced(&["--ha", "redis", "--ha-redis-url", &redis.url]).await;
}

#[tokio::test]
async fn swarm_lease_failover() {
    let swarm = PrivateSwarm::start();
    a_paused_leader_never_acts_again_and_a_dead_one_is_replaced(&["--ha", "swarm", "--ha-swarm-host", &swarm.host])
        .await;
}

#[tokio::test]
async fn the_swarm_lease_keeps_the_lease_contract() {
    let swarm = PrivateSwarm::start();
    let lease = SwarmLease::connect(Some(&swarm.host), "pair-1").unwrap();
    conformance::terms_are_exclusive_numbered_and_end_on_expiry_or_release(&lease).await;
    let racing = SwarmLease::connect(Some(&swarm.host), "pair-2").unwrap();
    conformance::racing_acquisitions_have_one_winner(std::sync::Arc::new(racing)).await;
}

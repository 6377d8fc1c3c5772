//! Fencing of agents in an HA group (ADR 0031): a leader's hello carries its term's epoch; an older term is
//! refused, and a connection whose term was overtaken (on this replica or another) is dropped.

use std::collections::BTreeMap;

use serde_json::json;
use streamspace_proto::hub::{ActualState, AgentMessage, CommandKind};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::hostile_agents::{Peer, create_session, register, roomy, stored_endpoint, wait_for_state, wait_online};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leader_is_refused_and_an_overtaken_one_is_dropped() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let registration = json!({"name": "pair", "platform": "docker", "endpoint_cidrs": ["192.0.2.0/24"]});
    let (agent_id, token) = register(&t, &admin, registration).await;
    let agent_uuid: Uuid = agent_id.parse().unwrap();
    let leader = |epoch| Peer::hello_as(served.api, &token, roomy(), BTreeMap::new(), Some(epoch));

    let mut first = leader(2).await;
    wait_online(&t, &admin, &agent_id).await;
    let id = create_session(&t, &admin).await;
    first.command(CommandKind::Start, id).await;

    // A former leader, resumed after a pause, says hello with its old epoch: refused outright.
    let mut stale = leader(1).await;
    assert!(stale.closed().await, "a stale leader's connection is closed");
    assert_eq!(t.app.store.agent_epoch(agent_uuid).await.unwrap(), 2);

    // The standby took over with a newer epoch: the old leader is cut off, and the unacknowledged start goes to
    // the new one, whose report counts.
    let mut second = leader(3).await;
    assert!(first.closed().await, "the overtaken leader's connection is closed");
    second.command(CommandKind::Start, id).await;
    second.report(id, ActualState::Running { endpoint: "http://192.0.2.20:8080".into() }).await;
    wait_for_state(&t, &admin, id, "running").await;
    assert_eq!(stored_endpoint(&t, id).await.as_deref(), Some("http://192.0.2.20:8080"));

    // Another replica recorded a newer leader: this connection's next message is not applied, it is dropped.
    assert!(t.app.store.advance_agent_epoch(agent_uuid, 4).await.unwrap());
    second.report(id, ActualState::Failed { reason: "stale report".into() }).await;
    assert!(second.closed().await, "a leader overtaken elsewhere is dropped at its next message");
    assert_eq!(wait_for_state(&t, &admin, id, "running").await["state"], "running");
    second = leader(4).await;
    second.send(AgentMessage::Heartbeat { inventory: Vec::new(), homes: Vec::new() }).await;
    wait_online(&t, &admin, &agent_id).await;
}

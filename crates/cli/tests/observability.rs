//! Monitoring for real: Debian's Prometheus scrapes the built binary with the shipped alert rules,
//! and an agent process going away fires the agent-offline alert.

mod common;

use std::time::Duration;

use common::prometheus::{Prometheus, rules_holding_for};
use common::*;

#[tokio::test]
async fn prometheus_scrapes_the_binary_and_alerts_when_an_agent_goes_offline() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::start(dir.path(), &["--heartbeat-interval", "1"]).await;
    let admin = plane.admin().await;
    let token = admin.register_agent("watched").await;
    let mut agent = Agent::start(&plane.api, &token, dir.path().join("agent.log"));
    admin.wait_for_agent_online("watched").await;

    let target = plane.api.trim_start_matches("http://");
    let prometheus = Prometheus::start(dir.path(), target, &rules_holding_for("1s")).await;
    eventually("Prometheus to see the agent online", Duration::from_secs(30), || async {
        let online = prometheus.query(r#"streamspace_agents{state="online"} == 1"#).await;
        (!online.is_empty()).then_some(())
    })
    .await;
    let rules = prometheus.api("rules", &[]).await;
    let loaded = rules["groups"][0]["rules"].as_array().unwrap();
    assert!(loaded.iter().all(|rule| rule["health"] == "ok"), "{rules}");
    assert_eq!(prometheus.alert_state("StreamSpaceAgentOffline").await, None, "the agent is online");

    agent.kill();
    let state = eventually("the agent-offline alert to fire", Duration::from_secs(30), || async {
        prometheus.alert_state("StreamSpaceAgentOffline").await.filter(|state| state == "firing")
    })
    .await;
    assert_eq!(state, "firing");
}

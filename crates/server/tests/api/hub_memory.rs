//! What a connected agent costs the control plane in memory: every connection holds its WebSocket read buffer for
//! as long as the agent stays, so with a thousand agents (target P5: at most 300 MB) its size matters.

use std::collections::BTreeMap;

use serde_json::json;
use streamspace_proto::hub::{AgentMessage, Capacity};
use streamspace_server::rate_limit::RateLimits;

use crate::harness::TestApp;
use crate::hostile_agents::{Peer, eventually, register};

const AGENTS: usize = 200;
/// Per connected agent, what the control plane may hold: its task, channel and socket state, and a read buffer
/// sized for the hub's small messages. tungstenite's default buffer alone is 128 KiB, zeroed on the first read.
const MAX_KIB_PER_AGENT: i64 = 48;

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Set in the process that measures.
const MEASURING: &str = "STREAMSPACE_TEST_MEASURING_HUB_MEMORY";

/// RSS is the whole process's, and the other tests of this binary allocate as they run beside this one:
/// the measurement runs in a process of its own (this test binary again, running this test alone).
#[test]
fn a_connected_agent_costs_the_control_plane_little_memory() {
    if std::env::var_os(MEASURING).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        return runtime.block_on(measure());
    }
    let name = "hub_memory::a_connected_agent_costs_the_control_plane_little_memory";
    let measured = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(MEASURING, "1")
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&measured.stdout) + String::from_utf8_lossy(&measured.stderr);
    assert!(measured.status.success(), "the measuring process failed:\n{output}");
    assert!(output.contains("1 passed"), "the measuring process ran no test:\n{output}");
}

async fn measure() {
    let no_budgets = RateLimits { per_address: None, per_user: None, per_org: None };
    let t = TestApp::with_config(|config| config.rate_limits = no_budgets).await;
    let admin = t.admin().await;
    let served = t.listen().await;
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        tokens.push(register(&t, &admin, json!({"name": format!("agent-{i}"), "platform": "docker"})).await.1);
    }
    let capacity = Capacity { max_sessions: 10, cpu_millis: 0, memory_mb: 0 };
    let connected = |count: usize| {
        let hub = &t.app.hub;
        eventually("the agents connected", move || async move { (hub.connected_count() == count).then_some(()) })
    };
    // One agent first, so what the first connection sets up once (the hub's tables, pools) is not counted.
    let mut agents = vec![Peer::hello(served.api, &tokens[0], capacity, BTreeMap::new()).await];
    connected(1).await;

    let before = rss_kib();
    for token in &tokens[1..] {
        let mut agent = Peer::hello(served.api, token, capacity, BTreeMap::new()).await;
        // A second message, so the control plane has read from every socket more than once.
        agent.send(AgentMessage::Heartbeat { inventory: Vec::new(), homes: Vec::new() }).await;
        agents.push(agent);
    }
    connected(AGENTS).await;
    let per_agent = (rss_kib() - before) / (AGENTS as i64 - 1);
    assert!(per_agent <= MAX_KIB_PER_AGENT, "{per_agent} KiB of RSS per connected agent");
    drop(agents);
}

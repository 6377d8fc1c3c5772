//! What the control plane holds in memory as it works: per connected agent (every connection holds its
//! WebSocket read buffer for as long as the agent stays, so with a thousand agents, target P5's 300 MB, its size
//! matters), and per request served while nobody scrapes the metrics.
//!
//! RSS is the whole process's, and the other tests of this binary allocate as they run beside these: each
//! measurement runs in a process of its own (this test binary again, running that one test alone).

use std::collections::BTreeMap;
use std::future::Future;

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

/// Set, to the test's name, in the process that measures.
const MEASURING: &str = "STREAMSPACE_TEST_MEASURING_MEMORY";

/// Runs `measure` in a process of its own: the test `name` of this binary, run again alone.
fn alone<F: Future<Output = ()>>(name: &str, measure: impl FnOnce() -> F) {
    if std::env::var_os(MEASURING).is_some_and(|measuring| measuring == name) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        return runtime.block_on(measure());
    }
    let measured = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(MEASURING, name)
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&measured.stdout) + String::from_utf8_lossy(&measured.stderr);
    assert!(measured.status.success(), "the measuring process failed:\n{output}");
    assert!(output.contains("1 passed"), "the measuring process ran no test:\n{output}");
}

#[test]
fn a_connected_agent_costs_the_control_plane_little_memory() {
    alone("memory::a_connected_agent_costs_the_control_plane_little_memory", agents);
}

/// Histogram samples recorded in a burst of requests (a million, as a busy hour's), with the background rounds
/// of that time running beside them, and nobody scraping `/metrics`.
#[test]
fn a_control_plane_nobody_scrapes_does_not_grow_with_the_requests_it_serves() {
    alone("memory::a_control_plane_nobody_scrapes_does_not_grow_with_the_requests_it_serves", unscraped);
}

async fn unscraped() {
    const SAMPLES: usize = 1_000_000;
    const ROUNDS: usize = 20;
    let t = TestApp::new().await;
    let latency = metrics::histogram!("streamspace_http_request_duration_seconds", "route" => "/api/v1/memory-test");
    streamspace_server::background_round(&t.app).await;
    let before = rss_kib();
    for _ in 0..ROUNDS {
        for _ in 0..SAMPLES / ROUNDS {
            latency.record(0.004);
        }
        streamspace_server::background_round(&t.app).await;
    }
    let grown = rss_kib() - before;
    // Kept until a scrape, the samples alone would take 8 MB.
    assert!(grown < 2048, "{grown} KiB more after {SAMPLES} requests");
}

async fn agents() {
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

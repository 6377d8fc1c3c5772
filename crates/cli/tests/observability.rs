//! Monitoring for real: Debian's Prometheus scrapes the built binary with the shipped alert rules,
//! an agent process going away fires the agent-offline alert, and every query of the Grafana
//! dashboards runs on that Prometheus against catalogued metrics.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::prometheus::{Prometheus, RULES, rules_holding_for};
use common::*;
use serde_json::Value;

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana");

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

    for (file, dashboard) in dashboards() {
        check_layout(&file, &dashboard);
        for expr in expressions(&dashboard) {
            // Grafana's own variables, as Grafana would fill them in.
            let promql = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s");
            let data = prometheus.api("query", &[("query", &promql)]).await;
            assert!(data["result"].is_array(), "{file}: {expr} gave {data}");
            assert_catalogued_metrics(&format!("{file}: {expr}"), &expr);
        }
    }
    let rules = std::fs::read_to_string(RULES).unwrap();
    for expr in rules.split("expr:").skip(1) {
        let expr = expr.split("for:").next().unwrap().split("labels:").next().unwrap();
        assert_catalogued_metrics("the alert rules", expr);
    }
}

fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(DASHBOARDS)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let dashboard = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
            (name, dashboard)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "dashboards in deploy/grafana");
    found
}

/// What Grafana needs to import a dashboard and lay it out: a uid and title, the data source as a
/// variable (so it imports into any Grafana), unique panel ids, panels within the 24-column grid,
/// each query with a unique refId on that data source.
fn check_layout(file: &str, dashboard: &Value) {
    assert!(dashboard["uid"].as_str().is_some_and(|uid| !uid.is_empty() && uid.len() <= 40), "{file}: uid");
    assert!(dashboard["title"].as_str().is_some_and(|title| !title.is_empty()), "{file}: title");
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|version| version >= 36), "{file}: schemaVersion");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "{file}"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|panel| panel["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "{file}: panel ids are unique");
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(w >= 1 && x + w <= 24 && grid["h"].as_u64().unwrap() >= 1, "{file}: {title} {grid}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{file}: {title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{file}: {title} has a query");
        let refs: BTreeSet<&str> = targets.iter().map(|target| target["refId"].as_str().unwrap()).collect();
        assert_eq!(refs.len(), targets.len(), "{file}: {title} refIds are unique");
        assert!(targets.iter().all(|target| target["datasource"]["uid"] == "${datasource}"), "{file}: {title}");
    }
}

fn expressions(dashboard: &Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().unwrap();
    let targets = panels.iter().filter_map(|panel| panel["targets"].as_array()).flatten();
    targets.map(|target| target["expr"].as_str().unwrap().to_owned()).collect()
}

/// Every `streamspace_*` metric `expr` names (a histogram by its `_bucket` series) is in docs/metrics.md.
fn assert_catalogued_metrics(context: &str, expr: &str) {
    let catalogue = common::catalogue::catalogue(&std::fs::read_to_string(common::catalogue::PATH).unwrap());
    let names =
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|word| word.starts_with("streamspace_"));
    for name in names {
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        let entry = catalogue.get(family).unwrap_or_else(|| panic!("{context}: {name} is not in docs/metrics.md"));
        let histogram_series = family != name;
        assert_eq!(histogram_series, entry.family.kind == "histogram", "{context}: {name} vs {:?}", entry.family);
    }
}

//! Monitoring for real: Debian's Prometheus scrapes the built binary with the shipped alert rules,
//! an agent process going away fires the agent-offline alert, an edit of the audit log in the
//! database fires the broken-chain alert, and every query of the Grafana
//! dashboards runs on that Prometheus against catalogued metrics. Tracing for real: the control
//! plane and a Docker agent export over OTLP to a receiver, which sees one trace per session start.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::prometheus::{Prometheus, RULES, rules_holding_for};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana");

#[tokio::test]
async fn prometheus_scrapes_the_binary_and_alerts_when_an_agent_goes_offline_or_the_audit_log_is_edited() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::start(dir.path(), &["--heartbeat-interval", "1", "--audit-verify-interval", "1"]).await;
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
    assert_eq!(prometheus.alert_state("StreamSpaceAuditChainBroken").await, None, "the chain is intact");
    assert!(!prometheus.query("streamspace_audit_chain_intact == 1").await.is_empty());

    agent.kill();
    let state = eventually("the agent-offline alert to fire", Duration::from_secs(30), || async {
        prometheus.alert_state("StreamSpaceAgentOffline").await.filter(|state| state == "firing")
    })
    .await;
    assert_eq!(state, "firing");

    // Someone with the database edits an audit event (agent.create, above).
    let database = format!("sqlite://{}", dir.path().join("streamspace.db").display());
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let edited = sqlx::query("UPDATE audit_events SET target = 'agent:innocent' WHERE action = 'agent.create'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    eventually("the broken-chain alert to fire", Duration::from_secs(30), || async {
        prometheus.alert_state("StreamSpaceAuditChainBroken").await.filter(|state| state == "firing")
    })
    .await;

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

#[tokio::test]
async fn one_trace_runs_from_the_start_request_through_the_agent_and_back() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let receiver = common::otlp::Receiver::start().await;
    let exporting = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let plane = ControlPlane::start_with_env(dir.path(), &["--heartbeat-interval", "2"], &exporting).await;
    let admin = plane.admin().await;
    let token = admin.register_agent("traced").await;
    let args = ["agent", "docker", "--server", plane.api.as_str()];
    let _agent = Agent::start_with(&args, &exporting, &token, dir.path().join("agent.log"));
    admin.wait_for_agent_online("traced").await;
    let template = serde_json::json!({"name": "fixture", "display_name": "Fixture", "image": FIXTURE_IMAGE, "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16});
    admin.post("/api/v1/templates", template).await;

    // The caller's own trace context, as a browser instrumented with OpenTelemetry would send it.
    let (trace_id, caller_span) = ("5e55105ea27500000000000000000001", "ca11e45000000001");
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", plane.api))
        .bearer_auth(&admin.token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&serde_json::json!({"template": "fixture"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    admin.wait_for_state(&id, "running", START).await;

    let trace = eventually("the whole start in one trace", Duration::from_secs(30), || async {
        let trace: Vec<_> = receiver.spans().into_iter().filter(|span| span.trace_id == trace_id).collect();
        let by_id = |id: &str| trace.iter().find(|span| span.span_id == id);
        let request =
            trace.iter().find(|span| span.service == "streamspace" && span.name == "POST /api/v1/sessions")?;
        let agent_start =
            trace.iter().find(|span| span.service == "streamspace-agent" && span.name == "agent start")?;
        let report = trace.iter().find(|span| {
            span.service == "streamspace"
                && span.name == "session status"
                && by_id(&span.parent_span_id).is_some_and(|parent| parent.service == "streamspace-agent")
        })?;
        // Connected: every span hangs from another of the trace, up to the request, which hangs from the caller.
        let connected =
            trace.iter().all(|span| span.parent_span_id == caller_span || by_id(&span.parent_span_id).is_some());
        let from_the_control_plane =
            by_id(&agent_start.parent_span_id).is_some_and(|parent| parent.service == "streamspace");
        (connected && from_the_control_plane && request.parent_span_id == caller_span && !report.span_id.is_empty())
            .then_some(trace)
    })
    .await;
    let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(services, BTreeSet::from(["streamspace", "streamspace-agent"]), "{trace:#?}");
    // The session goes with the test rather than staying on the machine's engine.
    let (status, _) = admin.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    admin.wait_for_state(&id, "stopped", START).await;
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

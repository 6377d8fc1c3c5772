//! A real Prometheus (Debian's `prometheus`) scraping a control plane, with StreamSpace's alert rules.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::eventually;

/// The rules as shipped (`deploy/prometheus/streamspace-rules.yml`).
pub const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus/streamspace-rules.yml");

/// The shipped rules with every `for:` shortened to `hold`, so a test sees an alert fire within seconds:
/// derived from the real file, not a copy of it. Prometheus reads JSON as YAML.
pub fn rules_holding_for(hold: &str) -> String {
    let text = std::fs::read_to_string(RULES).expect("the alert rules");
    let mut rules: Value = serde_saphyr::from_str(&text).expect("the alert rules are YAML");
    for group in rules["groups"].as_array_mut().expect("rule groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            if rule.get("for").is_some() {
                rule["for"] = json!(hold);
            }
        }
    }
    rules.to_string()
}

/// A `prometheus` process on a free loopback port, scraping `target` (`host:port`) every second.
pub struct Prometheus {
    child: Child,
    pub url: String,
}

impl Prometheus {
    pub async fn start(dir: &Path, target: &str, rules: &str) -> Prometheus {
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dir.join("rules.yml")],
            "scrape_configs": [{"job_name": "streamspace", "static_configs": [{"targets": [target]}]}],
        });
        std::fs::write(dir.join("prometheus.yml"), config.to_string()).unwrap();
        // Prometheus does not report the port it bound, so it gets one that was free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("prometheus.log")).unwrap()))
            .spawn()
            .expect("prometheus (Debian package `prometheus`, installed by scripts/ci/install-deps.sh)");
        let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}") };
        let ready = format!("{}/-/ready", prometheus.url);
        eventually("Prometheus to be ready", Duration::from_secs(30), || async {
            reqwest::get(&ready).await.ok().filter(|r| r.status().is_success()).map(drop)
        })
        .await;
        prometheus
    }

    /// The `data` of an API call, which must succeed.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let reply: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["status"], "success", "{path} {query:?}: {reply}");
        reply["data"].clone()
    }

    /// The result of an instant query.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        self.api("query", &[("query", promql)]).await["result"].as_array().cloned().unwrap_or_default()
    }

    /// The state of alert `name` (`pending`, `firing`), if it is active.
    pub async fn alert_state(&self, name: &str) -> Option<String> {
        let alerts = self.api("alerts", &[]).await["alerts"].as_array().cloned().unwrap_or_default();
        alerts
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name)
            .map(|alert| alert["state"].as_str().unwrap().to_owned())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Compliance reports, their settings, scheduled delivery and audit retention, through the real
//! router, with the manual clock driving the delivery rounds (ADR 0029).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};
use streamspace_server::clock::Clock;
use streamspace_server::compliance;
use streamspace_server::compliance::delivery::{DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use streamspace_server::config::{Config, Urls};
use streamspace_server::tls::{Tls, TlsSettings, TlsSource};
use streamspace_store::audit::verify_store;
use streamspace_store::{AuditPage, Scope};

use crate::harness::{Reply, TestApp};

/// The harness's clock starts at 2026-12-01 12:00 UTC (a Tuesday).
const DAY: &str = "from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z";
const SECRET: &str = "webhook-secret-0123456789";

async fn report(t: &TestApp, token: &str, org_id: &str, query: &str) -> Reply {
    t.get(&format!("/api/v1/orgs/{org_id}/reports/compliance?{query}"), token).await
}

async fn put_settings(t: &TestApp, token: &str, org_id: &str, body: Value) -> Reply {
    t.send(Method::PUT, &format!("/api/v1/orgs/{org_id}/reports/settings"), Some(token), Some(body)).await
}

async fn settings(t: &TestApp, token: &str, org_id: &str) -> Value {
    let reply = t.get(&format!("/api/v1/orgs/{org_id}/reports/settings"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// Daily delivery to the webhook at `url`.
fn webhook(url: &str, secret: Option<&str>) -> Value {
    json!({"schedule": "daily", "destination": "webhook", "webhook_url": url, "webhook_secret": secret})
}

fn actions(entries: &Value) -> Vec<&str> {
    entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_org_admin_reports_on_their_org_and_nobody_else_does() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, member) = t.org_with_users(&admin, "acme").await;
    let (_, other_admin, _) = t.org_with_users(&admin, "globex").await;
    assert_eq!(t.login_reply("acme-member", "wrong-password", json!({})).await.status, StatusCode::UNAUTHORIZED);
    let patch = json!({"session_policy": {"clipboard": "off"}});
    let patched = t.send(Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(&org_admin), Some(patch)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    let reply = report(&t, &org_admin, &org_id, DAY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["org_name"], "acme");
    assert_eq!(body["sign_ins"]["successes"], 2, "the org admin's and the member's: {}", body["sign_ins"]);
    assert_eq!(body["sign_ins"]["failures_by_reason"], json!({"invalid_credentials": 1}));
    assert_eq!(
        (&body["mfa"]["users"], &body["mfa"]["enrolled"], &body["mfa"]["required"]),
        (&json!(2), &json!(0), &json!(false))
    );
    assert_eq!(body["mfa"]["not_enrolled"][0], json!({"username": "acme-admin", "role": "org_admin"}));
    let privileged = actions(&body["privileged_actions"]);
    assert!(privileged.contains(&"user.create") && privileged.contains(&"org.update"), "{privileged:?}");
    assert_eq!(actions(&body["policy_changes"]), vec!["org.update"]);
    assert_eq!(body["chain"]["intact"], true, "{}", body["chain"]);
    assert!(body["chain"]["events_verified"].as_i64().unwrap() >= body["chain"]["events_in_period"].as_i64().unwrap());
    // Nothing of the other org shows.
    assert!(!body.to_string().contains("globex"), "{body}");

    let csv = report(&t, &org_admin, &org_id, &format!("{DAY}&format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with("section,time,until,actor,action,target,result,value\n"), "{text}");
    assert!(text.contains("summary,,,,sign_ins.failures.invalid_credentials,,,1\n"), "{text}");

    assert_eq!(report(&t, &admin, &org_id, DAY).await.status, StatusCode::OK, "a platform admin reports on any org");
    let other = report(&t, &other_admin, &org_id, DAY).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(report(&t, &member, &org_id, DAY).await.status, StatusCode::FORBIDDEN);
    let backwards = report(&t, &org_admin, &org_id, "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z").await;
    assert_eq!((backwards.status, backwards.code()), (StatusCode::BAD_REQUEST, "invalid_period"));
    let too_long = report(&t, &org_admin, &org_id, "from=2025-01-01T00:00:00Z&to=2026-12-01T00:00:00Z").await;
    assert_eq!(too_long.code(), "invalid_period");
}

#[tokio::test]
async fn report_settings_keep_the_webhook_secret_sealed_and_retention_for_platform_admins() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, member) = t.org_with_users(&admin, "acme").await;
    let (_, other_admin, _) = t.org_with_users(&admin, "globex").await;
    let defaults = settings(&t, &org_admin, &org_id).await;
    assert_eq!((&defaults["retention_days"], &defaults["has_webhook_secret"]), (&Value::Null, &json!(false)));
    assert_eq!(defaults["directory_available"], false);

    let bad_request = |body: Value, code: &'static str| (body, StatusCode::BAD_REQUEST, code);
    let refused = [
        (json!({"retention_days": 1}), StatusCode::FORBIDDEN, "forbidden"),
        bad_request(json!({"schedule": "daily"}), "invalid_destination"),
        bad_request(json!({"schedule": "daily", "destination": "directory"}), "reports_directory_not_configured"),
        bad_request(webhook("http://169.254.169.254/latest/meta-data", Some(SECRET)), "webhook_refused"),
        bad_request(webhook("http://[::1]:9/", Some(SECRET)), "webhook_refused"),
        bad_request(webhook("ftp://reports.example.test/", Some(SECRET)), "invalid_webhook"),
        bad_request(webhook("http://u:p@reports.example.test/", Some(SECRET)), "invalid_webhook"),
        bad_request(webhook("http://reports.example.test/", None), "invalid_webhook"),
        bad_request(webhook("http://reports.example.test/", Some("short")), "invalid_webhook"),
        (json!({"schedule": "hourly"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ];
    for (body, status, code) in refused {
        let reply = put_settings(&t, &org_admin, &org_id, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}: {}", reply.body);
    }

    let webhook = json!({"schedule": "weekly", "destination": "webhook", "webhook_url": "http://reports.example.test/hook", "webhook_secret": SECRET});
    let saved = put_settings(&t, &org_admin, &org_id, webhook).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!((&saved.body["schedule"], &saved.body["has_webhook_secret"]), (&json!("weekly"), &json!(true)));
    assert!(!saved.body.to_string().contains(SECRET));
    assert!(!settings(&t, &org_admin, &org_id).await.to_string().contains(SECRET));
    let stored = t.app.store.compliance_settings(org_id.parse().unwrap()).await.unwrap().unwrap();
    assert!(!stored.webhook_secret.unwrap().contains(SECRET), "the secret is sealed at rest");
    let audit = t.app.store.list_audit(Scope::Platform, Default::default(), AuditPage { limit: 500, before_seq: None });
    let audit = serde_json::to_string(&audit.await.unwrap()).unwrap();
    assert!(audit.contains("compliance.update") && !audit.contains(SECRET), "audited, without the secret");

    // The platform admin sets the retention; leaving the secret out keeps it.
    let retention = json!({"retention_days": 30, "schedule": "weekly", "destination": "webhook", "webhook_url": "http://reports.example.test/hook"});
    let kept = put_settings(&t, &admin, &org_id, retention).await;
    assert_eq!(
        (kept.status, &kept.body["retention_days"], &kept.body["has_webhook_secret"]),
        (StatusCode::OK, &json!(30), &json!(true))
    );
    // Org admins can still change the rest, as long as they leave the retention as it is.
    let daily = json!({"retention_days": 30, "schedule": "daily", "destination": "webhook", "webhook_url": "http://reports.example.test/hook"});
    assert_eq!(put_settings(&t, &org_admin, &org_id, daily).await.status, StatusCode::OK);

    let other = put_settings(&t, &other_admin, &org_id, json!({})).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(put_settings(&t, &member, &org_id, json!({})).await.status, StatusCode::FORBIDDEN);
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn scheduled_reports_land_in_the_platform_directory_once_per_period() {
    let reports = tempfile::tempdir().unwrap();
    let base = reports.path().to_path_buf();
    let t = TestApp::with_config(|config| config.reports.directory = Some(base)).await;
    let admin = t.admin().await;
    let (org_id, org_admin, _) = t.org_with_users(&admin, "acme").await;
    let daily = json!({"schedule": "daily", "destination": "directory"});
    assert_eq!(put_settings(&t, &org_admin, &org_id, daily).await.status, StatusCode::OK);
    let folder = reports.path().join("acme");

    // Before any delivery, the last complete day is due (not the whole history).
    compliance::round(&t.app).await;
    assert_eq!(files_in(&folder), vec!["acme_2026-11-30_2026-12-01.csv", "acme_2026-11-30_2026-12-01.json"]);
    compliance::round(&t.app).await;
    assert_eq!(files_in(&folder).len(), 2, "a period is delivered once");

    t.clock.advance(Duration::days(1));
    compliance::round(&t.app).await;
    let json_path = folder.join("acme_2026-12-01_2026-12-02.json");
    let delivered: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(delivered["org_name"], "acme");
    assert_eq!(delivered["sign_ins"]["successes"], 2, "the day's sign-ins: {}", delivered["sign_ins"]);
    assert_eq!(actions(&delivered["policy_changes"]), vec!["compliance.update"]);
    let view = settings(&t, &t.login("acme-admin", "password-123").await, &org_id).await;
    assert_eq!((&view["delivered_until"], &view["last_error"]), (&json!("2026-12-02T00:00:00Z"), &Value::Null));
    assert!(t.audit_actions().await.contains(&("compliance.report_delivery".to_owned(), "success".to_owned())));
}

/// What a receiver was sent: each request's headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on a loopback port: it answers the statuses queued, then 200, and keeps
/// what it was sent.
struct Receiver {
    url: String,
    received: Received,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    received: Received,
    statuses: Arc<Mutex<VecDeque<StatusCode>>>,
}

async fn receive(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    state.received.lock().unwrap().push((headers, body.to_vec()));
    state.statuses.lock().unwrap().pop_front().unwrap_or(StatusCode::OK)
}

impl Receiver {
    async fn start(statuses: &[StatusCode]) -> Receiver {
        Receiver::serve(statuses, None).await
    }

    /// A receiver at `https://127.0.0.1:<port>/hook` with a certificate from a CA of its own, kept in
    /// `ca_dir/tls/ca.pem`.
    async fn start_https(ca_dir: &std::path::Path) -> Receiver {
        let config = Config { public_url: Some("https://127.0.0.1/".to_owned()), ..Config::default() };
        let settings = TlsSettings::new(TlsSource::SelfSigned);
        let tls = Tls::new(&settings, &Urls::new(&config), ca_dir).unwrap();
        Receiver::serve(&[], Some(tls.acceptor)).await
    }

    async fn serve(statuses: &[StatusCode], tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/hook", listener.local_addr().unwrap());
        let state = ReceiverState {
            received: Arc::new(Mutex::new(Vec::new())),
            statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
        };
        let received = state.received.clone();
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state);
        let server = match tls {
            None => tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
            Some(acceptor) => tokio::spawn(serve_tls(listener, acceptor, app)),
        };
        Receiver { url, received, _server: server }
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

#[tokio::test]
async fn webhook_deliveries_are_signed_and_retried_with_backoff() {
    let receiver = Receiver::start(&[StatusCode::INTERNAL_SERVER_ERROR]).await;
    let t = TestApp::with_config(|config| config.reports.webhooks_allow_private = true).await;
    let admin = t.admin().await;
    let (org_id, org_admin, _) = t.org_with_users(&admin, "acme").await;
    let weekly =
        json!({"schedule": "weekly", "destination": "webhook", "webhook_url": receiver.url, "webhook_secret": SECRET});
    assert_eq!(put_settings(&t, &org_admin, &org_id, weekly).await.status, StatusCode::OK);

    compliance::round(&t.app).await;
    assert_eq!(receiver.count(), 1);
    let failed = settings(&t, &org_admin, &org_id).await;
    assert_eq!(failed["last_error"], "the webhook answered 500");
    assert_eq!(
        (&failed["next_attempt_at"], &failed["delivered_until"]),
        (&json!("2026-12-01T12:01:00Z"), &Value::Null)
    );
    assert!(t.audit_actions().await.contains(&("compliance.report_delivery".to_owned(), "failure".to_owned())));

    compliance::round(&t.app).await;
    t.clock.advance(Duration::seconds(59));
    compliance::round(&t.app).await;
    assert_eq!(receiver.count(), 1, "no retry before the backoff has passed");
    t.clock.advance(Duration::seconds(1));
    compliance::round(&t.app).await;
    assert_eq!(receiver.count(), 2);
    let delivered = settings(&t, &org_admin, &org_id).await;
    assert_eq!(
        (&delivered["delivered_until"], &delivered["last_error"]),
        (&json!("2026-11-30T00:00:00Z"), &Value::Null)
    );
    compliance::round(&t.app).await;
    assert_eq!(receiver.count(), 2, "the week is delivered once");

    let (headers, body) = receiver.received.lock().unwrap()[1].clone();
    let timestamp: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
    assert_eq!(headers[SIGNATURE_HEADER].to_str().unwrap(), signature(SECRET.as_bytes(), timestamp, &body));
    assert_ne!(headers[SIGNATURE_HEADER].to_str().unwrap(), signature(b"another-secret-0123456789", timestamp, &body));
    assert_eq!(headers[DELIVERY_HEADER].to_str().unwrap(), format!("{org_id}/2026-11-23_2026-11-30"));
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((&report["org_name"], &report["from"]), (&json!("acme"), &json!("2026-11-23T00:00:00Z")));
}

async fn serve_tls(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: axum::Router) {
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that refuses the certificate ends the handshake: nothing to serve.
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhooks_are_delivered_only_to_a_certificate_the_platform_trusts() {
    let ca_dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start_https(ca_dir.path()).await;
    let daily = webhook(&receiver.url, Some(SECRET));
    let trusting = |trust: bool| {
        let ca = ca_dir.path().join("tls/ca.pem");
        move |config: &mut Config| {
            config.reports.webhooks_allow_private = true;
            config.outbound_ca = trust.then_some(ca);
        }
    };

    let untrusting = TestApp::with_config(trusting(false)).await;
    let admin = untrusting.admin().await;
    let (org_id, org_admin, _) = untrusting.org_with_users(&admin, "acme").await;
    assert_eq!(put_settings(&untrusting, &org_admin, &org_id, daily.clone()).await.status, StatusCode::OK);
    compliance::round(&untrusting.app).await;
    assert_eq!(receiver.count(), 0, "nothing is sent to a certificate no trusted CA issued");
    let view = settings(&untrusting, &org_admin, &org_id).await;
    assert_eq!(view["last_error"], "the webhook cannot be reached (its certificate is not trusted)", "{view}");

    let t = TestApp::with_config(trusting(true)).await;
    let admin = t.admin().await;
    let (org_id, org_admin, _) = t.org_with_users(&admin, "acme").await;
    assert_eq!(put_settings(&t, &org_admin, &org_id, daily).await.status, StatusCode::OK);
    compliance::round(&t.app).await;
    let view = settings(&t, &org_admin, &org_id).await;
    assert_eq!((&view["last_error"], &view["delivered_until"]), (&Value::Null, &json!("2026-12-01T00:00:00Z")));
    let (headers, body) = receiver.received.lock().unwrap()[0].clone();
    let timestamp: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
    assert_eq!(headers[SIGNATURE_HEADER].to_str().unwrap(), signature(SECRET.as_bytes(), timestamp, &body));
}

#[tokio::test]
async fn a_webhook_leading_to_an_internal_address_is_refused_at_delivery() {
    // A host name (unlike a literal address) passes the settings check; resolved at delivery, it
    // leads to loopback, and nothing is sent.
    let receiver = Receiver::start(&[]).await;
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, org_admin, _) = t.org_with_users(&admin, "acme").await;
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let daily = webhook(&url, Some(SECRET));
    assert_eq!(put_settings(&t, &org_admin, &org_id, daily).await.status, StatusCode::OK);
    compliance::round(&t.app).await;
    assert_eq!(receiver.count(), 0);
    let view = settings(&t, &org_admin, &org_id).await;
    assert!(view["last_error"].as_str().unwrap().contains("internal address"), "{view}");
}

#[tokio::test]
async fn retention_removes_old_events_behind_checkpoints_and_the_chain_still_verifies() {
    let t = TestApp::new().await;
    let admin = t.admin().await;
    let (org_id, _, _) = t.org_with_users(&admin, "acme").await;
    let set = put_settings(&t, &admin, &org_id, json!({"retention_days": 30})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let before = t.app.store.audit_chain(0, 1000).await.unwrap();
    let old_acme = before.iter().filter(|e| e.org_id.map(|id| id.to_string()) == Some(org_id.clone())).count();
    assert!(old_acme >= 3, "user creations, sign-ins and the setting");

    t.clock.advance(Duration::days(31));
    let org_admin = t.login("acme-admin", "password-123").await;
    compliance::round(&t.app).await;

    let after = t.app.store.audit_chain(0, 1000).await.unwrap();
    let acme: Vec<_> = after.iter().filter(|e| e.org_id.map(|id| id.to_string()) == Some(org_id.clone())).collect();
    assert!(acme.iter().all(|e| e.time > t.clock.now() - Duration::days(30)), "only recent events of acme are left");
    assert!(acme.iter().any(|e| e.action == "compliance.retention" && e.details["removed"] == json!(old_acme)));
    let admins_sign_in = |e: &&streamspace_store::AuditEvent| e.action == "auth.login" && e.actor_name == "admin";
    assert!(after.iter().any(|e| admins_sign_in(&e)), "the events of orgs without retention are kept");
    assert!(!t.app.store.audit_checkpoints(0, 100).await.unwrap().is_empty());
    let verified = verify_store(t.app.store.as_ref(), &t.app.audit_key, None).await.unwrap();
    assert!(verified.is_ok(), "{verified:?}");

    let window = "from=2026-12-31T00:00:00Z&to=2027-01-02T00:00:00Z";
    let reply = report(&t, &org_admin, &org_id, window).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["chain"]["intact"], true, "{}", reply.body["chain"]);
    assert_eq!(reply.body["chain"]["events_verified"], json!(after.last().unwrap().seq));
}

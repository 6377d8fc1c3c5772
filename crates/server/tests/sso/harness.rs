//! The control plane served for real on a loopback port (its public URL is that address, so the
//! providers send the browser back to it), and a browser made of reqwest and a cookie jar.

use std::sync::Arc;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use streamspace_server::clock::SystemClock;
use streamspace_server::{AppState, Config, bootstrap};
use streamspace_store::{AuditEvent, AuditFilter, AuditPage, Scope};

use crate::idp::idp;

pub const ROOT_PASSWORD: &str = "root-password-1";

pub struct Sso {
    /// On the wall clock: the providers' tokens carry real times.
    pub app: AppState,
    pub base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// An org with an admin, ready for providers.
pub struct TestOrg {
    pub id: String,
    pub admin: String,
}

/// A provider configured on both sides: in the org and at the identity provider.
pub struct TestProvider {
    pub id: String,
    pub client_id: String,
}

impl Sso {
    pub async fn start() -> Sso {
        let dir = tempfile::tempdir().unwrap();
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sessions = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", api.local_addr().unwrap().port());
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_password: Some(ROOT_PASSWORD.to_owned()),
            public_url: Some(base.clone()),
            ..Config::default()
        };
        let store = streamspace_store::connect(&config.database_url()).await.unwrap();
        let keys = streamspace_server::keys::Keys::load(&config).unwrap();
        let cluster = streamspace_store::cluster::join(&config.database_url()).await.unwrap();
        let app = Arc::new(streamspace_server::App::new(config, keys, store, cluster, Arc::new(SystemClock)).unwrap());
        bootstrap::run(&app).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listeners = streamspace_server::Listeners { api, sessions };
        tokio::spawn(streamspace_server::run(app.clone(), listeners, async move {
            let _ = stopped.await;
        }));
        Sso { app, base, _stop: stop, _dir: dir }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let body = json!({"username": username, "password": password});
        let (status, reply) = self.call(Method::POST, "/api/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        reply["access_token"].as_str().unwrap().to_owned()
    }

    /// An org named `name` with an org admin `<name>-admin`.
    pub async fn org(&self, name: &str) -> TestOrg {
        let root = self.login("admin", ROOT_PASSWORD).await;
        let (status, org) = self.call(Method::POST, "/api/v1/orgs", Some(&root), Some(json!({"name": name}))).await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let id = org["id"].as_str().unwrap().to_owned();
        let admin =
            json!({"username": format!("{name}-admin"), "password": "password-123", "role": "org_admin", "org_id": id});
        let (status, reply) = self.call(Method::POST, "/api/v1/users", Some(&root), Some(admin)).await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        TestOrg { admin: self.login(&format!("{name}-admin"), "password-123").await, id }
    }

    /// Adds an OIDC provider to the org, registered at the test provider as its own client.
    pub async fn oidc_provider(&self, org: &TestOrg, extra: Value) -> TestProvider {
        let idp = idp();
        let settings = json!({"issuer": idp.issuer, "client_id": "pending"});
        let provider = self.provider(org, "oidc", "oidc", settings, extra.clone()).await;
        let redirect_uri = format!("{}/api/v1/auth/sso/{provider}/callback", self.base);
        let (client_id, secret) = idp.register_oidc_client(&redirect_uri, &format!("{}/login", self.base)).await;
        let mut oidc = json!({"issuer": idp.issuer, "client_id": client_id, "client_secret": secret});
        merge(&mut oidc, extra.get("oidc"));
        self.patch_provider(org, &provider, json!({"oidc": oidc})).await;
        TestProvider { id: provider, client_id }
    }

    /// Adds a GitHub-style OAuth2 provider to the org.
    pub async fn github_provider(&self, org: &TestOrg, extra: Value) -> TestProvider {
        let idp = idp();
        let settings = |client_id: &str| {
            json!({
                "authorize_url": format!("{}/login/oauth/authorize", idp.github),
                "token_url": format!("{}/login/oauth/access_token", idp.github),
                "userinfo_url": format!("{}/user", idp.github),
                "client_id": client_id,
                "scopes": ["read:user", "user:email"],
                "claims": {"subject": "id", "email": "email", "name": "login"},
            })
        };
        let provider = self.provider(org, "github", "oauth2", settings("pending"), extra).await;
        let redirect_uri = format!("{}/api/v1/auth/sso/{provider}/callback", self.base);
        let (client_id, secret) = idp.register_github_client(&redirect_uri).await;
        let mut oauth2 = settings(&client_id);
        oauth2["client_secret"] = json!(secret);
        self.patch_provider(org, &provider, json!({"oauth2": oauth2})).await;
        TestProvider { id: provider, client_id }
    }

    async fn provider(&self, org: &TestOrg, name: &str, kind: &str, settings: Value, extra: Value) -> String {
        let mut body = json!({"name": name, "display_name": format!("{name} sign-in"), "kind": kind, kind: settings});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.iter().filter(|(key, _)| *key != "oidc").map(|(k, v)| (k.clone(), v.clone())));
        }
        let path = format!("/api/v1/orgs/{}/identity-providers", org.id);
        let (status, created) = self.call(Method::POST, &path, Some(&org.admin), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    pub async fn patch_provider(&self, org: &TestOrg, provider: &str, patch: Value) {
        let path = format!("/api/v1/orgs/{}/identity-providers/{provider}", org.id);
        let (status, reply) = self.call(Method::PATCH, &path, Some(&org.admin), Some(patch)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// The newest audit record of `action`.
    pub async fn last_audit(&self, action: &str) -> AuditEvent {
        let filter = AuditFilter { action: Some(action.to_owned()), ..AuditFilter::default() };
        let events = self.app.store.list_audit(Scope::Platform, filter, AuditPage { limit: 1, before_seq: None }).await;
        events.unwrap().into_iter().next().unwrap_or_else(|| panic!("no {action} in the audit log"))
    }

    /// Asserts the newest `sso.sign_in` record is a failure whose reason starts with `reason`.
    pub async fn assert_refused(&self, reason: &str) {
        let event = self.last_audit("sso.sign_in").await;
        assert_eq!(event.result, "failure", "{:?}", event.details);
        let recorded = event.details["reason"].as_str().unwrap_or_default();
        assert!(recorded.starts_with(reason), "expected reason {reason}, got {recorded:?}");
    }

    pub async fn user(&self, username: &str) -> streamspace_store::User {
        self.app.store.get_user_by_username(username).await.unwrap().unwrap_or_else(|| panic!("no user {username}"))
    }
}

fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(into), Some(Value::Object(from))) = (into.as_object_mut(), from) {
        into.extend(from.clone());
    }
}

/// Where a flow ended: the UI page and its query.
#[derive(Debug)]
pub struct Landed {
    pub url: Url,
}

impl Landed {
    pub fn path(&self) -> &str {
        self.url.path()
    }

    pub fn param(&self, key: &str) -> Option<String> {
        self.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
    }
}

/// A browser: one cookie jar, redirects followed until the flow lands on a UI page (or, when
/// asked, until the provider sends it back to the callback).
pub struct Browser {
    base: String,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser { base: base.to_owned(), jar: Arc::new(reqwest::cookie::Jar::default()) }
    }

    fn client(&self, stop_at_callback: bool) -> reqwest::Client {
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let path = attempt.url().path();
            let landed = path == "/login/sso" || path == "/account" || path == "/login";
            if landed || (stop_at_callback && path.ends_with("/callback")) || attempt.previous().len() > 15 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        reqwest::Client::builder().cookie_provider(self.jar.clone()).redirect(policy).build().unwrap()
    }

    async fn follow(&self, url: &str, stop_at_callback: bool) -> Landed {
        let response = self.client(stop_at_callback).get(url).send().await.unwrap();
        let status = response.status();
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let at = response.url().clone();
            panic!("the flow stopped at {at} with {status}: {}", response.text().await.unwrap_or_default());
        };
        Landed { url: response.url().join(&location).unwrap() }
    }

    /// Starts a sign-in at the provider and follows it to the UI page it ends on.
    pub async fn sign_in(&self, provider: &TestProvider) -> Landed {
        self.follow(&format!("{}/api/v1/auth/sso/{}/start?return_to=/catalog", self.base, provider.id), false).await
    }

    /// Starts a sign-in and stops where the provider sends the browser back: the callback URL.
    pub async fn until_callback(&self, provider: &TestProvider) -> Landed {
        self.follow(&format!("{}/api/v1/auth/sso/{}/start?return_to=/catalog", self.base, provider.id), true).await
    }

    /// Visits `url` (a callback) and follows it to the UI page it ends on.
    pub async fn visit(&self, url: &Url) -> Landed {
        self.follow(url.as_str(), false).await
    }

    /// `POST /api/v1/auth/refresh` with the refresh cookie the flow set: the UI's next step.
    pub async fn refresh(&self) -> (StatusCode, Value) {
        let response = self
            .client(false)
            .post(format!("{}/api/v1/auth/refresh", self.base))
            .header("x-streamspace-csrf", "1")
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.client(false).post(format!("{}{path}", self.base)).header("x-streamspace-csrf", "1");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.json(&body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

//! Drives the real router in-process over a fresh SQLite store (or a fresh PostgreSQL database, for
//! the tests of replicas), with a clock the test moves.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use streamspace_server::clock::ManualClock;
use streamspace_server::{App, AppState, Config, bootstrap};
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The default UI origin, `http://localhost:8000`, is a secure context: the cookie is `__Host-`.
pub const REFRESH_COOKIE: &str = "__Host-ss_refresh";

/// Metrics have one recorder per process, shared by the tests running side by side. A test that counts
/// a series holds this from its first reading to its last, and so does each test that adds to it.
pub async fn counting_alone() -> tokio::sync::MutexGuard<'static, ()> {
    static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    COUNTING.lock().await
}

pub struct TestApp {
    pub app: AppState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// The addresses of a running control plane; dropping this stops it.
pub struct Listening {
    pub api: std::net::SocketAddr,
    pub sessions: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The value of a cookie this reply sets.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|cookie| {
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    }
}

/// A control plane over the database `config` names, as it is before its first start's bootstrap.
pub async fn unbootstrapped(config: Config, clock: Arc<ManualClock>) -> Arc<App> {
    let store = streamspace_store::connect(&config.database_url()).await.unwrap();
    let keys = streamspace_server::keys::Keys::load(&config).unwrap();
    let cluster = streamspace_store::cluster::join(&config.database_url()).await.unwrap();
    Arc::new(App::new(config, keys, store, cluster, clock).unwrap())
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_password: Some(ADMIN_PASSWORD.to_owned()),
            ..Config::default()
        };
        adjust(&mut config);
        // A fixed, recent time: TOTP codes and token expiry follow this clock.
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()));
        let app = unbootstrapped(config, clock.clone()).await;
        let outcome = bootstrap::run(&app).await.unwrap();
        assert_eq!(outcome, bootstrap::Outcome::Bootstrapped { generated_password: None });
        TestApp { router: streamspace_server::router(app.clone()), app, clock, _dir: dir }
    }

    /// A second replica over the same store and keys, joined to the cluster the database URL names.
    pub async fn replica(&self) -> AppState {
        let keys = streamspace_server::keys::Keys::load(&self.app.config).unwrap();
        let cluster = streamspace_store::cluster::join(&self.app.config.database_url()).await.unwrap();
        Arc::new(App::new(self.app.config.clone(), keys, self.app.store.clone(), cluster, self.clock.clone()).unwrap())
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.send_with(method, path, token, body, &[]).await
    }

    /// [`TestApp::send`] with further request headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.call(request.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn login_reply(&self, username: &str, password: &str, extra: Value) -> Reply {
        let mut body = json!({"username": username, "password": password});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.send(Method::POST, "/api/v1/auth/login", None, Some(body)).await
    }

    /// Signs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self.login_reply(username, password, json!({})).await;
        assert_eq!(reply.status, StatusCode::OK, "login {username}: {}", reply.body);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates an org with an org admin and a member; returns (org id, admin token, member token).
    pub async fn org_with_users(&self, platform_admin: &str, name: &str) -> (String, String, String) {
        let org = self.post("/api/v1/orgs", platform_admin, json!({"name": name})).await;
        assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
        let org_id = org.body["id"].as_str().unwrap().to_owned();
        for (user, role) in [(format!("{name}-admin"), "org_admin"), (format!("{name}-member"), "member")] {
            let body = json!({"username": user, "password": "password-123", "role": role, "org_id": org_id});
            let reply = self.post("/api/v1/users", platform_admin, body).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        }
        let admin = self.login(&format!("{name}-admin"), "password-123").await;
        let member = self.login(&format!("{name}-member"), "password-123").await;
        (org_id, admin, member)
    }

    /// Refresh/logout call with a refresh cookie and the CSRF header.
    pub async fn cookie_call(&self, path: &str, refresh_cookie: &str) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("cookie", HeaderValue::from_str(&format!("{REFRESH_COOKIE}={refresh_cookie}")).unwrap())
            .header("x-streamspace-csrf", "1")
            .body(Body::empty())
            .unwrap();
        self.call(request).await
    }

    /// Serves both listeners for real on loopback ports until the returned handle is dropped.
    pub async fn listen(&self) -> Listening {
        let listeners = streamspace_server::Listeners {
            api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            sessions: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let (api, sessions) = (listeners.api.local_addr().unwrap(), listeners.sessions.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        tokio::spawn(streamspace_server::run(self.app.clone(), listeners, shutdown));
        Listening { api, sessions, _stop: stop }
    }

    pub async fn audit_actions(&self) -> Vec<(String, String)> {
        let events = self
            .app
            .store
            .list_audit(
                streamspace_store::Scope::Platform,
                Default::default(),
                streamspace_store::AuditPage { limit: 500, before_seq: None },
            )
            .await
            .unwrap();
        events.into_iter().map(|e| (e.action, e.result)).collect()
    }
}

/// A fresh database on the PostgreSQL server `STREAMSPACE_TEST_DATABASE_URL` names, dropped with this.
pub struct Postgres {
    pub url: String,
    name: String,
    server: sqlx::PgPool,
}

impl Postgres {
    pub async fn fresh() -> Postgres {
        let server_url = std::env::var("STREAMSPACE_TEST_DATABASE_URL")
            .expect("STREAMSPACE_TEST_DATABASE_URL is not set: run eval \"$(scripts/dev/postgres-up.sh)\"");
        let server = sqlx::PgPool::connect(&server_url).await.unwrap();
        let name = format!("ss_api_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&server).await.unwrap();
        let (base, _) = server_url.rsplit_once('/').unwrap();
        Postgres { url: format!("{base}/{name}"), name, server }
    }

    pub async fn drop_database(self) {
        let statement = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&self.server).await.unwrap();
    }
}

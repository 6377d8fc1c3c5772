//! End to end against the built binary: a fresh installation from first start to audit
//! verification, on SQLite and on PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, free_port, fresh_postgres_database};
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    admin_password: String,
    started_in: Duration,
}

fn store_args(data_dir: &std::path::Path, database_url: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    if let Some(url) = database_url {
        args.extend(["--database-url".to_owned(), url.to_owned()]);
    }
    args
}

/// Starts `streamspace serve` with no admin password configured, and reads the generated one
/// from its console.
async fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Server {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}"), "--session-listen", &format!("127.0.0.1:{}", free_port())])
        .args(store_args(data_dir, database_url))
        .env_remove("STREAMSPACE_ADMIN_PASSWORD")
        .env("STREAMSPACE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started_in = loop {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not answer /healthz");
        assert!(child.try_wait().unwrap().is_none(), "the server exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let admin_password = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once("password: ").map(|(_, p)| p.trim().to_owned()))
        .expect("the first start prints the generated admin password");
    Server { child, base, admin_password, started_in }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Value) -> Value {
    let response = client.request(method, url).bearer_auth(token).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

fn verify_audit(data_dir: &std::path::Path, database_url: Option<&str>) -> (i32, String) {
    let output =
        Command::new(BIN).args(["admin", "audit", "verify"]).args(store_args(data_dir, database_url)).output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn first_start_to_audit_verification(database_url: Option<&str>, tamper: impl AsyncFnOnce(i64)) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), database_url).await;
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"username": "admin", "password": server.admin_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("the bootstrap admin signs in").to_owned();
    let org =
        call(&client, reqwest::Method::POST, format!("{}/api/v1/orgs", server.base), &token, json!({"name": "acme"}))
            .await;
    let user = json!({"username": "alice", "password": "password-123", "role": "member", "org_id": org["id"]});
    call(&client, reqwest::Method::POST, format!("{}/api/v1/users", server.base), &token, user).await;
    let audit = call(&client, reqwest::Method::GET, format!("{}/api/v1/audit", server.base), &token, json!(null)).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in ["user.create", "org.create", "auth.login", "system.bootstrap"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    println!("healthz answered {:?} after start; RSS {} KiB", server.started_in, server.rss_kib());
    server.stop();

    let (code, out) = verify_audit(dir.path(), database_url);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");

    tamper(2).await;
    let (code, out) = verify_audit(dir.path(), database_url);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("#2"), "names the altered event: {out}");
}

#[tokio::test]
async fn sqlite_installation_from_first_start_to_tamper_detection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("streamspace.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    first_start_to_audit_verification(Some(&url), async |seq| {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit_events SET target = 'tampered' WHERE seq = ?")
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_installation_from_first_start_to_tamper_detection() {
    let (admin, url, name) = fresh_postgres_database().await;
    first_start_to_audit_verification(Some(&url), async |seq| {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit_events SET target = 'tampered' WHERE seq = $1")
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&admin).await.unwrap();
}

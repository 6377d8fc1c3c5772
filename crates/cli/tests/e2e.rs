//! End to end against the built binary: a fresh installation from first start to audit
//! verification, on SQLite and on PostgreSQL, and the audit chain against someone who holds the
//! database but not the audit key.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BIN, bound_ports, fresh_postgres_database, listen_args};
use serde_json::{Value, json};
use streamspace_store::audit::{AuditKey, GENESIS_HASH, content};
use streamspace_store::conformance::{STRIP_THE_SEAL, Subject, relink_with_sha256};
use streamspace_store::{PostgresStore, SqliteStore};

struct Server {
    child: Child,
    base: String,
    admin_password: String,
    started_in: Duration,
    _logs: tempfile::TempDir,
}

fn store_args(data_dir: &Path, database_url: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    if let Some(url) = database_url {
        args.extend(["--database-url".to_owned(), url.to_owned()]);
    }
    args
}

/// Starts `streamspace serve` on a fresh installation with no admin password configured, and reads
/// the generated one from its console. `audit_key`: the `STREAMSPACE_AUDIT_KEY` setting, if any.
async fn start(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>) -> Server {
    let mut server = launch(data_dir, database_url, audit_key).await;
    let stdout = BufReader::new(server.child.stdout.take().unwrap());
    server.admin_password = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split_once("password: ").map(|(_, p)| p.trim().to_owned()))
        .expect("the first start prints the generated admin password");
    server
}

/// Starts `streamspace serve` and waits until it answers.
async fn launch(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>) -> Server {
    let started = Instant::now();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .args(listen_args(None))
        .args(store_args(data_dir, database_url))
        .env_remove("STREAMSPACE_ADMIN_PASSWORD")
        .env("STREAMSPACE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    with_audit_key(&mut command, audit_key);
    let mut child = command.spawn().unwrap();
    let (port, _) = bound_ports(&log, &mut child).await;
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
    Server { child, base, admin_password: String::new(), started_in, _logs: logs }
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

fn with_audit_key(command: &mut Command, audit_key: Option<&str>) {
    command.env_remove("STREAMSPACE_AUDIT_KEY");
    if let Some(key) = audit_key {
        command.env("STREAMSPACE_AUDIT_KEY", key);
    }
}

fn verify_audit(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>) -> (i32, String) {
    let mut command = Command::new(BIN);
    command.args(["admin", "audit", "verify"]).args(store_args(data_dir, database_url));
    with_audit_key(&mut command, audit_key);
    let output = command.output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A fresh installation used through its API (first start, a login, an org, a user) and stopped:
/// its audit chain holds a handful of events.
async fn used_installation(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>) {
    let server = start(data_dir, database_url, audit_key).await;
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
}

/// Verifies an untouched chain: exit 0, and the head's position, which `verify` prints.
fn verify_intact(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>) -> i64 {
    let (code, out) = verify_audit(data_dir, database_url, audit_key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    recorded_head(&out).split_once(':').unwrap().0.parse().unwrap()
}

/// The head `verify` printed, as an operator records it.
fn recorded_head(out: &str) -> String {
    let head = out.split_once("chain head: ").expect("verify prints the chain head").1;
    head.split_whitespace().next().unwrap().to_owned()
}

fn assert_broken(data_dir: &Path, database_url: Option<&str>, audit_key: Option<&str>, expected: &[&str]) {
    let (code, out) = verify_audit(data_dir, database_url, audit_key);
    assert_eq!(code, 2, "{out}");
    for part in expected {
        assert!(out.contains(part), "{part:?} missing from: {out}");
    }
}

async fn first_start_to_audit_verification(database_url: Option<&str>, tamper: impl AsyncFnOnce(i64)) {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), database_url, None).await;
    verify_intact(dir.path(), database_url, None);
    tamper(2).await;
    assert_broken(dir.path(), database_url, None, &["#2"]);
}

/// The database of an installation, opened as someone who edits it directly.
async fn attacker(database_url: &str) -> Subject {
    if database_url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(database_url).await.unwrap())
    } else {
        Arc::new(PostgresStore::connect(database_url).await.unwrap())
    }
}

/// Deleting the newest events is named as a truncation after the last one left.
async fn tail_truncation_is_detected(database_url: &str, audit_key: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), Some(database_url), audit_key).await;
    assert_eq!(dir.path().join("audit.key").exists(), audit_key.is_none(), "a configured key is not written out");
    let newest = verify_intact(dir.path(), Some(database_url), audit_key);
    let db = attacker(database_url).await;
    let deleted = db.execute_raw(&format!("DELETE FROM audit_events WHERE seq > {}", newest - 2)).await.unwrap();
    assert_eq!(deleted, 2);
    let truncated = format!("truncated after #{}", newest - 2);
    assert_broken(dir.path(), Some(database_url), audit_key, &[&truncated]);
}

/// Rewriting the chain with the database alone: with plain SHA-256 links, and as the software
/// itself would with a key of the attacker's own.
async fn rewrite_without_the_key_is_detected(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), Some(database_url), None).await;
    verify_intact(dir.path(), Some(database_url), None);
    let db = attacker(database_url).await;
    db.execute_raw("UPDATE audit_events SET actor_name = 'mallory' WHERE seq = 2").await.unwrap();
    relink_with_sha256(&db, 2).await;
    assert_broken(dir.path(), Some(database_url), None, &["#2", "without the audit key"]);

    let events = db.audit_chain(0, 1000).await.unwrap();
    let genuine_check = db.audit_head().await.unwrap().seal.expect("the chain is sealed").key_check;
    db.execute_raw("DELETE FROM audit_events").await.unwrap();
    db.execute_raw(&format!("UPDATE audit_chain_head SET seq = 0, hash = '{GENESIS_HASH}'")).await.unwrap();
    db.execute_raw(STRIP_THE_SEAL).await.unwrap();
    let forger = AuditKey::new(*b"not-the-installation-s-audit-key");
    for event in &events {
        db.append_audit(&forger, content(event)).await.unwrap();
    }
    assert_broken(dir.path(), Some(database_url), None, &["audit key is not the one"]);
    // Copying the genuine key check beside the forged links only moves the report to event 1.
    db.execute_raw(&format!("UPDATE audit_chain_head SET key_check = '{genuine_check}'")).await.unwrap();
    assert_broken(dir.path(), Some(database_url), None, &["#1", "without the audit key"]);
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

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("streamspace.db").display())
}

#[tokio::test]
async fn sqlite_audit_tail_truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    tail_truncation_is_detected(&sqlite_url(dir.path()), None).await;
}

#[tokio::test]
async fn sqlite_audit_chain_rewritten_without_the_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    rewrite_without_the_key_is_detected(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn audit_verify_with_the_wrong_key_or_none_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), None, None).await;
    let key = std::fs::read(dir.path().join("audit.key")).expect("the first start writes audit.key");
    assert_eq!(key.len(), 32);
    for file in ["streamspace.db", "streamspace.db-wal"] {
        let stored = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(!stored.windows(32).any(|w| w == key.as_slice()), "the audit key is in {file}");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!String::from_utf8_lossy(&stored).contains(&hex), "the audit key is in {file}, in hex");
    }
    verify_intact(dir.path(), None, None);
    let wrong = "a-wrong-audit-key-of-at-least-32-bytes";
    assert_broken(dir.path(), None, Some(wrong), &["audit key is not the one", "STREAMSPACE_AUDIT_KEY"]);

    // Pointed at the database without the data directory and without the setting, it says so.
    let elsewhere = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut command = Command::new(BIN);
    command.args(["admin", "audit", "verify"]).args(store_args(elsewhere.path(), Some(&url)));
    with_audit_key(&mut command, None);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no audit key"), "{stderr}");
    assert!(!elsewhere.path().join("audit.key").exists(), "verify never makes up a key");
}

/// Runs `streamspace serve` expecting it to refuse to start: its exit code and what it said.
fn serve_refuses(data_dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(listen_args(None))
        .args(store_args(data_dir, None))
        .env_remove("STREAMSPACE_AUDIT_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server started on a chain it should refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// An installation from before keyed links: the control plane will not seal its chain by itself
/// (a stripped seal looks the same), the operator adopts it once, then it runs keyed.
#[tokio::test]
async fn an_unkeyed_chain_is_adopted_by_the_operator_once() {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), None, None).await;
    let db = attacker(&sqlite_url(dir.path())).await;
    relink_with_sha256(&db, 1).await;
    db.execute_raw(STRIP_THE_SEAL).await.unwrap();
    let legacy = db.audit_head().await.unwrap().seq;
    assert_broken(dir.path(), None, None, &["carries no seal", "--adopt"]);

    let (code, stderr) = serve_refuses(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--adopt"), "{stderr}");

    let mut adopt = Command::new(BIN);
    adopt.args(["admin", "audit", "verify", "--adopt"]).args(store_args(dir.path(), None));
    with_audit_key(&mut adopt, None);
    let output = adopt.output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("adopted") && out.contains("intact"), "{out}");
    let keyed_from = db.audit_head().await.unwrap().seal.expect("adoption seals the head").keyed_from;
    assert_eq!(keyed_from, legacy + 1);

    let server = launch(dir.path(), None, None).await;
    let failed_login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"username": "admin", "password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed_login.status(), reqwest::StatusCode::UNAUTHORIZED, "audited, as every login");
    server.stop();
    assert_eq!(verify_intact(dir.path(), None, None), legacy + 1, "the new event is keyed and verifies");
}

/// Restoring an older backup of the database passes for intact on its own; against a head
/// recorded since, it does not.
#[tokio::test]
async fn a_restored_older_backup_fails_against_a_recorded_head() {
    let dir = tempfile::tempdir().unwrap();
    used_installation(dir.path(), None, None).await;
    let backup = tempfile::tempdir().unwrap();
    let backup_file = backup.path().join("streamspace.db");
    let db = attacker(&sqlite_url(dir.path())).await;
    db.execute_raw(&format!("VACUUM INTO '{}'", backup_file.display())).await.unwrap();
    drop(db);
    let server = launch(dir.path(), None, None).await;
    let login = json!({"username": "admin", "password": "not-the-password"});
    reqwest::Client::new().post(format!("{}/api/v1/auth/login", server.base)).json(&login).send().await.unwrap();
    server.stop();
    let (code, out) = verify_audit(dir.path(), None, None);
    assert_eq!(code, 0, "{out}");
    let recorded = recorded_head(&out);

    for file in ["streamspace.db-wal", "streamspace.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    std::fs::copy(&backup_file, dir.path().join("streamspace.db")).unwrap();
    verify_intact(dir.path(), None, None);
    let mut command = Command::new(BIN);
    command.args(["admin", "audit", "verify", "--recorded-head", &recorded]).args(store_args(dir.path(), None));
    with_audit_key(&mut command, None);
    let output = command.output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{out}");
    assert!(out.contains("rolled back"), "{out}");
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

/// Runs `test` on a fresh PostgreSQL database, then drops it.
async fn on_postgres(test: impl AsyncFnOnce(&str)) {
    let (admin, url, name) = fresh_postgres_database().await;
    test(&url).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&admin).await.unwrap();
}

/// Replicas share the key through `STREAMSPACE_AUDIT_KEY`: no key file is involved.
#[tokio::test]
async fn postgres_audit_tail_truncation_is_detected() {
    on_postgres(async |url| {
        let shared = "the-key-every-replica-is-given-by-the-operator";
        tail_truncation_is_detected(url, Some(shared)).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_audit_chain_rewritten_without_the_key_is_detected() {
    on_postgres(async |url| rewrite_without_the_key_is_detected(url).await).await;
}

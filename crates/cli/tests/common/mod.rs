//! Runs the real `streamspace` binary: control planes and agents as processes, driven over HTTP.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

pub mod catalogue;
pub mod otlp;
pub mod prometheus;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_streamspace");
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Where a control plane listens: port 0 lets the system pick ports no other process holds.
pub fn listen_args(ports: Option<(u16, u16)>) -> Vec<String> {
    let (api, sessions) = ports.unwrap_or((0, 0));
    ["--listen", &format!("127.0.0.1:{api}"), "--session-listen", &format!("127.0.0.1:{sessions}")]
        .map(str::to_owned)
        .to_vec()
}

/// The API and session ports a control plane bound, from the `control plane listening` line of
/// its JSON log; fails after 60 s, or at once if the process exits.
pub async fn bound_ports(log: &Path, child: &mut Child) -> (u16, u16) {
    eventually("the control plane to listen", Duration::from_secs(60), || {
        let found = listening(&std::fs::read_to_string(log).unwrap_or_default());
        let running = child.try_wait().unwrap().is_none();
        assert!(found.is_some() || running, "the control plane exited early: see {}", log.display());
        async move { found }
    })
    .await
}

fn listening(log: &str) -> Option<(u16, u16)> {
    log.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).find_map(|entry| {
        let fields = &entry["fields"];
        let port = |name: &str| fields[name].as_str()?.rsplit_once(':')?.1.parse().ok();
        (fields["message"] == "control plane listening").then(|| Some((port("api")?, port("sessions")?)))?
    })
}

/// Waits for `check` to return `Some`, polling every 100 ms, failing with `what` after `timeout`.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm_and_wait(child: &mut Child, what: &str) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `streamspace serve` process on its own ports and data directory.
pub struct ControlPlane {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub api: String,
    pub sessions: String,
    /// Chosen by the system at the first start, kept by restarts so that agents find it again.
    ports: Option<(u16, u16)>,
    args: Vec<String>,
    /// Settings given as environment variables, the way a Kubernetes pod gets them.
    env: Vec<(String, String)>,
    pub started_in: Duration,
    launches: u32,
}

impl ControlPlane {
    /// Starts with the given extra flags (timers, database URL ...).
    pub async fn start(data_dir: &Path, args: &[&str]) -> ControlPlane {
        ControlPlane::start_with_env(data_dir, args, &[]).await
    }

    pub async fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ControlPlane {
        let mut plane = ControlPlane {
            child: None,
            data_dir: data_dir.to_path_buf(),
            api: String::new(),
            sessions: String::new(),
            ports: None,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
            started_in: Duration::ZERO,
            launches: 0,
        };
        plane.launch().await;
        plane
    }

    async fn launch(&mut self) {
        let started = Instant::now();
        self.launches += 1;
        let log = self.data_dir.join(format!("server-{}.log", self.launches));
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(listen_args(self.ports))
            .args(["--data-dir", &self.data_dir.display().to_string()])
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("STREAMSPACE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("STREAMSPACE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let (api, sessions) = bound_ports(&log, &mut child).await;
        self.ports = Some((api, sessions));
        self.child = Some(child);
        self.api = format!("http://127.0.0.1:{api}");
        self.sessions = format!("http://localhost:{sessions}");
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.api);
        eventually("/healthz", Duration::from_secs(60), || {
            let request = client.get(&url).send();
            async move { request.await.ok().filter(|r| r.status().is_success()).map(drop) }
        })
        .await;
        self.started_in = started.elapsed();
    }

    /// The origin of one session: `http://<id>.localhost:<session port>`.
    pub fn session_origin(&self, id: &str) -> String {
        self.sessions.replace("http://", &format!("http://{id}."))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub async fn restart_after_kill(&mut self) {
        self.kill();
        self.launch().await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sigterm_and_wait(&mut child, "the control plane");
            assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");
        }
    }

    pub async fn admin(&self) -> Api {
        Api::login(&self.api, "admin", ADMIN_PASSWORD).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `streamspace agent ...` process.
pub struct Agent {
    child: Option<Child>,
    args: Vec<String>,
    token: String,
    /// Settings given as environment variables (besides the token), such as `KUBECONFIG`.
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Agent {
    /// A control plane with heartbeats every 2 s and one Docker agent online, and its administrator.
    pub async fn docker_online(data_dir: &Path) -> (ControlPlane, Agent, Api) {
        let plane = ControlPlane::start(data_dir, &["--heartbeat-interval", "2"]).await;
        let admin = plane.admin().await;
        let name = format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let token = admin.register_agent(&name).await;
        let agent = Agent::start(&plane.api, &token, data_dir.join("agent.log"));
        admin.wait_for_agent_online(&name).await;
        (plane, agent, admin)
    }

    /// A `streamspace agent docker`.
    pub fn start(server: &str, token: &str, log: PathBuf) -> Agent {
        Agent::start_with(&["agent", "docker", "--server", server], &[], token, log)
    }

    /// Any agent command (`args` after the binary's name), with these environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)], token: &str, log: PathBuf) -> Agent {
        let mut agent = Agent {
            child: None,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            token: token.to_owned(),
            env: env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
            log,
        };
        agent.launch();
        agent
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(BIN)
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("STREAMSPACE_AGENT_TOKEN", &self.token)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends the agent a signal by name (`STOP`, `CONT`, `KILL` ...).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the agent runs").id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    }

    /// How many lines of the agent's log hold `text`.
    pub fn log_count(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|line| line.contains(text)).count()
    }

    /// Waits until the agent's log holds `line` at least `times` times, failing after `timeout`.
    pub async fn wait_for_log_count(&self, line: &str, times: usize, timeout: Duration) {
        eventually(&format!("the agent to log {line:?} {times} times"), timeout, || async {
            (self.log_count(line) >= times).then_some(())
        })
        .await;
    }

    /// Waits until the agent's log holds `line`, failing after `timeout`.
    pub async fn wait_for_log(&self, line: &str, timeout: Duration) {
        eventually(&format!("the agent to log {line:?}"), timeout, || async {
            std::fs::read_to_string(&self.log).unwrap_or_default().contains(line).then_some(())
        })
        .await;
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sigterm_and_wait(&mut child, "the agent");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds `localhost` and every `*.localhost` on loopback, as browsers do; glibc does not resolve
/// the per-session hosts.
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let local = name.as_str() == "localhost" || name.as_str().ends_with(".localhost");
        Box::pin(async move {
            if !local {
                return Err(format!("{} is not a loopback name", name.as_str()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}

/// A client for session origins: loopback names, no redirects followed.
pub fn session_client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(Loopback))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens a WebSocket on a session origin (`ws://<id>.localhost:<port>/...`) with these headers.
pub async fn session_websocket(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let port = request.uri().port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(socket)
}

/// An API client signed in as one user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    client: reqwest::Client,
}

impl Api {
    pub async fn login(base: &str, username: &str, password: &str) -> Api {
        let client = reqwest::Client::new();
        let reply: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reply["access_token"].as_str().unwrap_or_else(|| panic!("login {username}: {reply}")).to_owned();
        Api { base: base.to_owned(), token, client }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (reqwest::StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {reply}");
        reply
    }

    pub async fn session(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/sessions/{id}")).await
    }

    /// Waits until the session is in `state`, failing early if it fails instead.
    pub async fn wait_for_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        eventually(&format!("session {id} to be {state}"), timeout, || async {
            let session = self.session(id).await;
            if session["state"] == "failed" && state != "failed" {
                panic!("session failed: {session}");
            }
            (session["state"] == state).then_some(session)
        })
        .await
    }

    /// Registers an agent; returns its token.
    pub async fn register_agent(&self, name: &str) -> String {
        let reply = self.post("/api/v1/agents", json!({"name": name, "platform": "docker"})).await;
        reply["token"].as_str().unwrap().to_owned()
    }

    pub async fn wait_for_agent_online(&self, name: &str) {
        self.wait_for_agent_status(name, "online").await;
    }

    pub async fn wait_for_agent_status(&self, name: &str, status: &str) {
        eventually(&format!("agent {name} {status}"), Duration::from_secs(30), || async {
            let agents = self.get("/api/v1/agents").await;
            agents["items"].as_array().unwrap().iter().any(|a| a["name"] == name && a["status"] == status).then_some(())
        })
        .await;
    }
}

/// Reads an open event stream until `until` says enough, returning the `event:` names and data seen.
pub async fn watch_events(
    mut response: reqwest::Response,
    until: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut seen = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + START;
    while !until(&seen) {
        let chunk =
            tokio::time::timeout_at(deadline, response.chunk()).await.expect("events in time").unwrap().unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_owned);
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                seen.push((event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    seen
}

/// How long a session may take to run (pulls included).
pub const START: Duration = Duration::from_secs(90);

/// Starts a session of the `fixture` template as `api`'s user and waits until it runs; returns its id.
pub async fn running_session(api: &Api) -> String {
    let (status, session) =
        api.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"template": "fixture"}))).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    api.wait_for_state(&id, "running", START).await;
    id
}

/// Docker, for checking what really runs.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker CLI (run scripts/images/docker-up.sh)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn require_docker() {
    let ok = Command::new("docker")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "these tests need the Docker engine: run scripts/images/docker-up.sh");
    let image = docker(&["image", "inspect", "--format", "{{.Id}}", FIXTURE_IMAGE]);
    assert!(!image.is_empty(), "these tests need {FIXTURE_IMAGE}: run scripts/images/build.sh fixture");
}

pub const FIXTURE_IMAGE: &str = "streamspace/fixture:latest";

/// Containers of one session, running or not.
pub fn session_containers(session_id: &str) -> Vec<String> {
    let listing = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=streamspace.session={session_id}"),
        "--format",
        "{{.ID}} {{.State}}",
    ]);
    listing.lines().map(str::to_owned).collect()
}

/// A fresh PostgreSQL database for one test, on the server `STREAMSPACE_TEST_DATABASE_URL` names.
pub async fn fresh_postgres_database() -> (sqlx::PgPool, String, String) {
    let admin_url = std::env::var("STREAMSPACE_TEST_DATABASE_URL")
        .expect("STREAMSPACE_TEST_DATABASE_URL is not set: run eval \"$(scripts/dev/postgres-up.sh)\"");
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let name = format!("ss_e2e_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    (admin, format!("{base}/{name}"), name)
}

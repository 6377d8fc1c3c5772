//! The Docker runtime against the real engine and the test fixture image (`streamspace/fixture:latest`).
//!
//! Needs a running engine (`scripts/images/docker-up.sh`) and the fixture (`scripts/images/build.sh fixture`);
//! without them these tests fail, they never skip.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use streamspace_agent::Runtime;
use streamspace_docker::{DockerOptions, DockerRuntime};
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::{ActualState, InventoryItem, SessionSpec};
use uuid::Uuid;

const FIXTURE: &str = "streamspace/fixture:latest";

/// Runs the docker CLI; its output, whatever the exit status.
fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI runs (scripts/images/docker-up.sh installs it)")
}

fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn exists(kind: &str, name: &str) -> bool {
    docker(&[kind, "inspect", name]).status.success()
}

async fn runtime_with(options: DockerOptions) -> DockerRuntime {
    let runtime = DockerRuntime::connect_local(options)
        .await
        .unwrap_or_else(|error| panic!("{error:#}\nthese tests need Docker: run scripts/images/docker-up.sh"));
    assert!(exists("image", FIXTURE), "the fixture image {FIXTURE} is missing: run scripts/images/build.sh fixture");
    // As after an agent's welcome; one agent id for every runtime here, so a second runtime plays a
    // restarted agent, while the agents of other test binaries on this engine stay apart.
    runtime.bind(TEST_AGENT);
    runtime
}

const TEST_AGENT: Uuid = Uuid::from_u128(0x5e55_1015_d0c4_e000_0000_0000_0000_0001);

async fn runtime() -> DockerRuntime {
    runtime_with(DockerOptions { start_timeout: Duration::from_secs(30), ..DockerOptions::default() }).await
}

/// A unique session whose container and network are removed when the test ends, passed or not.
struct Session {
    id: Uuid,
}

impl Session {
    fn new() -> Session {
        Session { id: Uuid::new_v4() }
    }

    fn container(&self) -> String {
        format!("ss-{}", self.id)
    }

    fn network(&self) -> String {
        format!("ss-net-{}", self.id)
    }

    fn spec(&self) -> SessionSpec {
        SessionSpec {
            session_id: self.id,
            org_id: Uuid::new_v4(),
            owner_id: Uuid::new_v4(),
            image: FIXTURE.into(),
            env: BTreeMap::from([("FIXTURE_GREETING".to_string(), "hello there".to_string())]),
            cpu_millis: 500,
            memory_mb: 256,
            shm_mb: 128,
            port: 8080,
            egress_allow: Vec::new(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.container()]);
        let _ = docker(&["network", "rm", &self.network()]);
        // Its egress chains, if the test failed before stopping it, go with the next runtime's reconcile.
    }
}

/// Records the progress a start reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<ActualState>>);

impl Recorder {
    fn report(&self) -> impl Fn(ActualState) + Send + Sync + '_ {
        |state| self.0.lock().unwrap().push(state)
    }

    fn phases(&self) -> Vec<SessionPhase> {
        let states = self.0.lock().unwrap();
        states
            .iter()
            .filter_map(|state| match state {
                ActualState::Starting { phase, .. } => Some(*phase),
                _ => None,
            })
            .collect()
    }
}

async fn start(runtime: &DockerRuntime, spec: &SessionSpec) -> String {
    runtime.start(spec, &|_| {}).await.unwrap_or_else(|error| panic!("start failed: {error:#}"))
}

async fn state_in_inventory(runtime: &DockerRuntime, session_id: Uuid) -> Option<ActualState> {
    let inventory = runtime.inventory().await.unwrap();
    inventory.into_iter().find(|item| item.session_id == session_id).map(|item: InventoryItem| item.state)
}

type Events = futures::stream::BoxStream<'static, (Uuid, ActualState)>;

/// The next event about `session_id` within `wait`. Tests run in parallel, each with its own runtime, so every
/// runtime also sees the other tests' containers stop.
async fn event_for(events: &mut Events, session_id: Uuid, wait: Duration) -> Option<ActualState> {
    events_until(events, session_id, wait).await?.pop().map(|(_, state)| state)
}

/// Every event up to and including the next about `session_id`, if one comes within `wait`. Deaths are
/// reported in order: what an earlier one caused has arrived by then.
async fn events_until(events: &mut Events, session_id: Uuid, wait: Duration) -> Option<Vec<(Uuid, ActualState)>> {
    let mut seen = Vec::new();
    let until = async {
        while let Some(event) = events.next().await {
            let found = event.0 == session_id;
            seen.push(event);
            if found {
                return true;
            }
        }
        false
    };
    matches!(tokio::time::timeout(wait, until).await, Ok(true)).then_some(seen)
}

async fn get(url: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(url).send().await.unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

#[tokio::test]
async fn capacity_reports_the_hosts_resources() {
    let runtime = runtime().await;
    let capacity = runtime.capacity().await.unwrap();
    assert_eq!(capacity.max_sessions, DockerOptions::default().max_sessions);
    assert!(capacity.cpu_millis >= 1000 && capacity.memory_mb >= 256, "{capacity:?}");
}

#[tokio::test]
async fn start_runs_the_session_and_its_endpoint_answers() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = session.spec();
    let recorder = Recorder::default();
    let endpoint = runtime.start(&spec, &recorder.report()).await.unwrap();
    assert_eq!(
        recorder.phases(),
        [SessionPhase::Creating, SessionPhase::Starting],
        "the image is local: nothing to pull"
    );
    assert!(endpoint.starts_with("http://") && endpoint.ends_with(":8080"), "{endpoint}");

    let page = get(&format!("{endpoint}/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("StreamSpace fixture"));

    let inspect: serde_json::Value = serde_json::from_str(&docker_ok(&["inspect", &session.container()])).unwrap();
    let container = &inspect[0];
    let host = &container["HostConfig"];
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 256 * 1024 * 1024);
    assert_eq!(host["ShmSize"], 128 * 1024 * 1024);
    assert_eq!(host["RestartPolicy"]["Name"], "no");
    assert_eq!(host["NetworkMode"], session.network());
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["streamspace.session"], session.id.to_string());
    assert_eq!(labels["streamspace.managed"], "true");
    assert_eq!(labels["streamspace.org"], spec.org_id.to_string());
    assert_eq!(labels["streamspace.owner"], spec.owner_id.to_string());
    let env = container["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|var| var == "FIXTURE_GREETING=hello there"), "{env:?}");
    let networks = container["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.keys().collect::<Vec<_>>(), [&session.network()], "on its own network only");

    // Idempotent: starting again reports the same endpoint and creates nothing.
    let again = Recorder::default();
    assert_eq!(runtime.start(&spec, &again.report()).await.unwrap(), endpoint);
    assert_eq!(again.phases(), []);
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));
}

#[tokio::test]
async fn hibernate_keeps_the_container_and_wake_brings_it_back() {
    let runtime = runtime().await;
    let mut events = runtime.events();
    let session = Session::new();
    start(&runtime, &session.spec()).await;

    runtime.hibernate(session.id).await.unwrap();
    assert_eq!(docker_ok(&["inspect", "-f", "{{.State.Status}}", &session.container()]), "exited");
    assert!(exists("network", &session.network()));
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Hibernated));
    runtime.hibernate(session.id).await.expect("hibernating twice is fine");

    let recorder = Recorder::default();
    let endpoint = runtime.wake(&session.spec(), &recorder.report()).await.unwrap();
    assert_eq!(recorder.phases(), [SessionPhase::Starting]);
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));

    // The requested exit was not reported as a failure: the death of another session, later, comes first.
    let later = Session::new();
    start(&runtime, &later.spec()).await;
    docker_ok(&["kill", &later.container()]);
    let seen = events_until(&mut events, later.id, Duration::from_secs(10)).await.expect("the later death is reported");
    assert!(seen.iter().all(|(id, _)| *id != session.id), "{seen:?}");
}

#[tokio::test]
async fn stop_removes_the_container_and_its_network() {
    let runtime = runtime().await;
    let session = Session::new();
    start(&runtime, &session.spec()).await;
    assert!(exists("container", &session.container()) && exists("network", &session.network()));

    runtime.stop(session.id).await.unwrap();
    assert!(!exists("container", &session.container()), "container removed");
    assert!(!exists("network", &session.network()), "network removed");
    assert_eq!(state_in_inventory(&runtime, session.id).await, None);
    runtime.stop(session.id).await.expect("stopping what is gone is fine");
    runtime.remove(session.id).await.expect("removing what is gone is fine");
    let error = runtime.hibernate(session.id).await.unwrap_err();
    assert!(error.to_string().contains("no container to hibernate"), "{error:#}");

    // Waking a session whose container is gone recreates it from the spec.
    let endpoint = runtime.wake(&session.spec(), &|_| {}).await.unwrap();
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
}

#[tokio::test]
async fn inventory_lists_every_managed_session() {
    let runtime = runtime().await;
    let (running, hibernated) = (Session::new(), Session::new());
    let endpoint = start(&runtime, &running.spec()).await;
    start(&runtime, &hibernated.spec()).await;
    runtime.hibernate(hibernated.id).await.unwrap();
    // An unmanaged container is none of the agent's business.
    let stranger = Session::new();
    docker_ok(&["create", "--name", &stranger.container(), FIXTURE]);

    let inventory = runtime.inventory().await.unwrap();
    let of = |id| inventory.iter().find(|item| item.session_id == id).map(|item| item.state.clone());
    assert_eq!(of(running.id), Some(ActualState::Running { endpoint }));
    assert_eq!(of(hibernated.id), Some(ActualState::Hibernated));
    assert_eq!(of(stranger.id), None);
}

#[tokio::test]
async fn sessions_cannot_reach_each_other() {
    let runtime = runtime().await;
    let (a, b) = (Session::new(), Session::new());
    let endpoint_a = start(&runtime, &a.spec()).await;
    let endpoint_b = start(&runtime, &b.spec()).await;
    let address = |endpoint: &str| endpoint.trim_start_matches("http://").split_once(':').unwrap().0.to_string();
    let connect = |from: &Session, to: &str| {
        let script = format!("import socket; socket.create_connection(('{to}', 8080), timeout=3).close()");
        docker(&["exec", &from.container(), "python3", "-c", &script]).status.success()
    };
    assert!(connect(&a, &address(&endpoint_a)), "control: a reaches its own streamer");
    assert!(!connect(&a, &address(&endpoint_b)), "a must not reach b");
    assert!(!connect(&b, &address(&endpoint_a)), "b must not reach a");
}

#[tokio::test]
async fn a_killed_container_is_reported_failed() {
    let runtime = runtime().await;
    let mut events = runtime.events();
    let session = Session::new();
    start(&runtime, &session.spec()).await;

    docker_ok(&["kill", &session.container()]);
    let state = event_for(&mut events, session.id, Duration::from_secs(3)).await.expect("an event within 3 s");
    let reason = "the container exited unexpectedly with code 137 (killed by signal 9)";
    assert_eq!(state, ActualState::Failed { reason: reason.into() });
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Failed { reason: reason.into() }));
}

#[tokio::test]
async fn a_streamer_that_crashes_while_starting_fails_fast() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = SessionSpec { env: BTreeMap::from([("PORT".to_string(), "not-a-port".to_string())]), ..session.spec() };
    let began = std::time::Instant::now();
    let error = runtime.start(&spec, &|_| {}).await.unwrap_err();
    assert_eq!(error.to_string(), "the container exited unexpectedly with code 1 while starting");
    assert!(began.elapsed() < Duration::from_secs(10), "did not wait for the start timeout");
}

#[tokio::test]
async fn a_missing_image_fails_with_a_clear_reason() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = SessionSpec { image: "streamspace.invalid/no-such-image:1".into(), ..session.spec() };
    let recorder = Recorder::default();
    let error = format!("{:#}", runtime.start(&spec, &recorder.report()).await.unwrap_err());
    assert!(error.starts_with("pulling image streamspace.invalid/no-such-image:1 failed: "), "{error}");
    assert!(error.contains("no such host"), "{error}");
    assert_eq!(recorder.phases(), [SessionPhase::Pulling]);
    assert!(!exists("container", &session.container()), "nothing was created");
}

#[tokio::test]
async fn publish_host_reports_an_ephemeral_host_port() {
    let options = DockerOptions {
        publish_host: Some("127.0.0.1".parse().unwrap()),
        start_timeout: Duration::from_secs(30),
        ..DockerOptions::default()
    };
    let runtime = runtime_with(options).await;
    let session = Session::new();
    let endpoint = start(&runtime, &session.spec()).await;
    let port: u16 = endpoint.strip_prefix("http://127.0.0.1:").and_then(|port| port.parse().ok()).expect(&endpoint);
    assert_ne!(port, 8080);
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(state_in_inventory(&runtime, session.id).await, Some(ActualState::Running { endpoint }));
}

#[tokio::test]
async fn sessions_run_hardened_as_the_images_non_root_user() {
    let runtime = runtime().await;
    let session = Session::new();
    start(&runtime, &session.spec()).await;

    let inspect: serde_json::Value = serde_json::from_str(&docker_ok(&["inspect", &session.container()])).unwrap();
    let host = &inspect[0]["HostConfig"];
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert!(host["CapAdd"].as_array().is_none_or(Vec::is_empty), "{}", host["CapAdd"]);
    assert_eq!(host["SecurityOpt"], serde_json::json!(["no-new-privileges:true"]));
    assert_eq!(host["PidsLimit"], 2048);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["Tmpfs"], serde_json::json!({"/tmp": "rw,noexec,nosuid,nodev,mode=1777"}));
    assert_eq!(
        host["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "10485760", "max-file": "3"}})
    );
    assert_eq!(inspect[0]["Config"]["User"], "1000", "the image's own user, enforced");

    // What the kernel says of the session's main process: no capability, no way to gain privileges, seccomp on.
    let status = docker_ok(&["exec", &session.container(), "cat", "/proc/1/status"]);
    let field = |name: &str| {
        let line =
            status.lines().find(|line| line.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("{name}"));
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!((field("CapEff"), field("CapPrm"), field("CapBnd")), ("0".repeat(16), "0".repeat(16), "0".repeat(16)));
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "Docker's default seccomp filter");
    assert_eq!(field("Uid"), "1000");

    let writes = "import errno\nfor path in ('/srv/fixture/x', '/etc/x', '/tmp/x'):\n    try:\n        open(path, 'w').close(); print(path, 'ok')\n    except OSError as e:\n        print(path, errno.errorcode[e.errno])";
    let written = docker_ok(&["exec", &session.container(), "python3", "-c", writes]);
    assert_eq!(written, "/srv/fixture/x EROFS\n/etc/x EROFS\n/tmp/x ok", "only the tmpfs is writable");
}

#[tokio::test]
async fn an_image_that_would_run_as_root_is_refused() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = SessionSpec { image: "debian:bookworm-slim".into(), ..session.spec() };
    assert!(exists("image", &spec.image), "the Debian base image is there wherever the session images were built");
    let error = runtime.start(&spec, &|_| {}).await.unwrap_err().to_string();
    assert_eq!(
        error,
        "refusing to run image debian:bookworm-slim: the image sets no USER, so it would run as root; \
         session images must set USER to a numeric uid other than 0"
    );
    assert!(!exists("container", &session.container()), "nothing was created");
}

/// How a TCP connection from inside a session's container to `address:port` ends: `connected`, or the error's
/// errno name (`EHOSTUNREACH` for the egress rules' rejects).
fn connect_from(session: &Session, address: &str, port: u16) -> String {
    let script = format!(
        "import errno, socket\ntry:\n    socket.create_connection(('{address}', {port}), timeout=5).close()\n    \
         print('connected')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, str(e)))"
    );
    docker_ok(&["exec", &session.container(), "python3", "-c", &script])
}

fn gateway(network: &str) -> String {
    docker_ok(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", network])
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A network namespace of the egress test's own (one test only: the addresses below are routed host-wide), joined to the host by a veth pair, that answers for a link-local
/// (cloud metadata), a private and a public-range address with one TCP listener: destinations on this machine
/// that stand in for the ones a session must or may reach, so no packet leaves the machine.
struct Namespace {
    name: String,
    host_veth: String,
    listener: std::process::Child,
    port: u16,
}

impl Namespace {
    const PRIVATE: &str = "10.254.77.2";
    const METADATA: &str = "169.254.169.254";
    const PUBLIC: &str = "203.0.113.77";

    fn new() -> Namespace {
        let short = &Uuid::new_v4().simple().to_string()[..8];
        let (name, host_veth, peer) = (format!("ss-test-{short}"), format!("sst{short}"), format!("ssp{short}"));
        run_ok("ip", &["netns", "add", &name]);
        run_ok("ip", &["link", "add", &host_veth, "type", "veth", "peer", "name", &peer]);
        run_ok("ip", &["link", "set", &peer, "netns", &name]);
        run_ok("ip", &["addr", "add", "10.254.77.1/30", "dev", &host_veth]);
        run_ok("ip", &["link", "set", &host_veth, "up"]);
        for command in [
            vec!["addr", "add", "10.254.77.2/30", "dev", &peer],
            vec!["addr", "add", "169.254.169.254/32", "dev", &peer],
            vec!["addr", "add", "203.0.113.77/32", "dev", &peer],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", "10.254.77.1"],
        ] {
            run_ok("ip", &[&["-n", name.as_str()], command.as_slice()].concat());
        }
        for address in [Namespace::METADATA, Namespace::PUBLIC] {
            run_ok("ip", &["route", "add", &format!("{address}/32"), "via", Namespace::PRIVATE]);
        }
        let script = "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 0))\ns.listen(64)\n\
                      print(s.getsockname()[1], flush=True)\ntime.sleep(300)";
        let mut listener = Command::new("ip")
            .args(["netns", "exec", &name, "python3", "-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(listener.stdout.take().unwrap()), &mut port).unwrap();
        Namespace { name, host_veth, listener, port: port.trim().parse().unwrap() }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        // Deleting the veth also deletes the routes through it.
        let _ = Command::new("ip").args(["link", "del", &self.host_veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

#[tokio::test]
async fn sessions_reach_the_internet_and_allowed_networks_but_not_the_host_other_sessions_or_private_ranges() {
    let runtime = runtime().await;
    let (a, b, allowed) = (Session::new(), Session::new(), Session::new());
    start(&runtime, &a.spec()).await;
    let endpoint_b = start(&runtime, &b.spec()).await;
    // A template or org policy allowing a private network and a public range.
    let allow = vec!["10.254.77.0/30".parse().unwrap(), "203.0.113.0/24".parse().unwrap()];
    start(&runtime, &SessionSpec { egress_allow: allow, ..allowed.spec() }).await;
    let b_address = endpoint_b.trim_start_matches("http://").split_once(':').unwrap().0.to_string();

    // The control plane's port: a listener on every host address, as `streamspace up` has.
    let host_listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    let (gateway_a, gateway_b) = (gateway(&a.network()), gateway(&b.network()));
    // Control: a container without session rules does reach that listener through the same gateway address.
    let control = docker_ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "python3",
        FIXTURE,
        "-c",
        &format!(
            "import socket; socket.create_connection(('{gateway_a}', {host_port}), timeout=5).close(); print('connected')"
        ),
    ]);
    assert_eq!(control, "connected");

    let namespace = Namespace::new();
    for address in [Namespace::PRIVATE, Namespace::METADATA, Namespace::PUBLIC] {
        let reached = std::net::TcpStream::connect((address, namespace.port));
        assert!(reached.is_ok(), "control: the host reaches {address}:{}", namespace.port);
    }

    for (what, address, port) in [
        ("its own bridge gateway (the host)", gateway_a.as_str(), host_port),
        ("another session's gateway (the host)", gateway_b.as_str(), host_port),
        ("another session", b_address.as_str(), 8080),
        ("cloud metadata", Namespace::METADATA, namespace.port),
        ("a private network", Namespace::PRIVATE, namespace.port),
    ] {
        assert_eq!(connect_from(&a, address, port), "EHOSTUNREACH", "a must not reach {what} at {address}:{port}");
    }
    assert_eq!(connect_from(&a, Namespace::PUBLIC, namespace.port), "connected", "the internet stays reachable");
    assert_eq!(connect_from(&b, &gateway_b, host_port), "EHOSTUNREACH", "b is held the same way");

    assert_eq!(connect_from(&allowed, Namespace::PRIVATE, namespace.port), "connected", "allowed by policy");
    assert_eq!(connect_from(&allowed, Namespace::PUBLIC, namespace.port), "connected", "allowed by policy");
    assert_eq!(connect_from(&allowed, Namespace::METADATA, namespace.port), "EHOSTUNREACH", "not on the list");
    let own_gateway = gateway(&allowed.network());
    assert_eq!(connect_from(&allowed, &own_gateway, host_port), "EHOSTUNREACH", "the host stays closed");
}

/// The lines of both tables' listings that belong to the session's egress chains (Docker's own rules for its
/// bridge are not the runtime's).
fn rules_of(session: &Session) -> Vec<String> {
    let tag = &session.id.simple().to_string()[20..];
    ["iptables", "ip6tables"]
        .into_iter()
        .flat_map(|program| run_ok(program, &["-w", "-S"]).lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|line| line.contains(&format!("SS-FWD-{tag}")) || line.contains(&format!("SS-IN-{tag}")))
        .collect()
}

#[tokio::test]
async fn egress_rules_go_with_the_session_and_stale_ones_go_at_the_next_start() {
    let agent = runtime().await;
    let (stopped, vanished, kept) = (Session::new(), Session::new(), Session::new());
    for session in [&stopped, &vanished, &kept] {
        start(&agent, &session.spec()).await;
    }
    let tag = &stopped.id.simple().to_string()[20..];
    let installed = rules_of(&stopped);
    for family_rule in [
        format!("-N SS-FWD-{tag}"),
        format!("-N SS-IN-{tag}"),
        format!("-A DOCKER-USER -i ss-{tag} -j SS-FWD-{tag}"),
        format!("-A INPUT -i ss-{tag} -j SS-IN-{tag}"),
        format!("-A FORWARD -i ss-{tag} -j SS-FWD-{tag}"),
    ] {
        assert!(installed.contains(&family_rule), "{family_rule} in {installed:#?}");
    }

    agent.stop(stopped.id).await.unwrap();
    assert_eq!(rules_of(&stopped), Vec::<String>::new(), "stopping removes the rules");

    // A container removed behind the agent's back (or while it was down) leaves its rules; the next runtime
    // removes them and keeps those of sessions that still exist.
    docker_ok(&["rm", "--force", &vanished.container()]);
    assert!(!rules_of(&vanished).is_empty());
    let _restarted = runtime().await;
    assert_eq!(rules_of(&vanished), Vec::<String>::new(), "stale rules removed at start");
    let kept_rules = rules_of(&kept);
    assert!(!kept_rules.is_empty(), "a live session keeps its rules");

    // A firewall reload loses a running session's rules; the next runtime puts them back.
    flush_rules_of(&kept);
    assert_eq!(rules_of(&kept), Vec::<String>::new());
    let _restarted = runtime().await;
    assert_eq!(rules_of(&kept), kept_rules, "reinstalled at start");
}

/// Packets the session's IPv4 forward chain has matched, by iptables' own counters, which emptying the chain
/// resets.
fn forward_packets(session: &Session) -> u64 {
    let chain = format!("SS-FWD-{}", &session.id.simple().to_string()[20..]);
    let listing = run_ok("iptables", &["-w", "-L", &chain, "-v", "-x", "-n"]);
    listing.lines().skip(2).filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok()).sum()
}

/// Installing rules empties a chain before filling it, and traffic passes meanwhile: rules already in place,
/// as when a session wakes or another agent on the engine reconciles them, are left as they are.
#[tokio::test]
async fn rules_already_in_place_are_not_emptied_and_refilled() {
    let agent = runtime().await;
    let session = Session::new();
    start(&agent, &session.spec()).await;
    assert_eq!(connect_from(&session, "10.254.77.2", 9), "EHOSTUNREACH");
    let counted = forward_packets(&session);
    assert!(counted > 0, "the refused connection is counted");

    let _another_agent = runtime().await;
    agent.hibernate(session.id).await.unwrap();
    agent.wake(&session.spec(), &|_| {}).await.unwrap();
    assert_eq!(forward_packets(&session), counted, "the chain kept its rules and their counters");
}

/// Deletes a session's chains and the jumps into them behind the runtime's back.
fn flush_rules_of(session: &Session) {
    for program in ["iptables", "ip6tables"] {
        let tag = &session.id.simple().to_string()[20..];
        let listing = run_ok(program, &["-w", "-S"]);
        let chains = [format!("SS-FWD-{tag}"), format!("SS-IN-{tag}")];
        let jumps_into_ours = |line: &&str| chains.iter().any(|chain| line.ends_with(&format!("-j {chain}")));
        for jump in listing.lines().filter(jumps_into_ours) {
            let rule: Vec<&str> = jump.split_whitespace().skip(1).collect();
            run_ok(program, &[&["-w", "-D"], rule.as_slice()].concat());
        }
        for chain in &chains {
            run_ok(program, &["-w", "-F", chain]);
            run_ok(program, &["-w", "-X", chain]);
        }
    }
}

#[tokio::test]
async fn a_network_without_the_named_bridge_is_refused_rather_than_left_unprotected() {
    let runtime = runtime().await;
    let session = Session::new();
    // As a version without egress rules made it: Docker names the bridge br-<network id>.
    docker_ok(&["network", "create", &session.network()]);
    let error = runtime.start(&session.spec(), &|_| {}).await.unwrap_err().to_string();
    let bridge = format!("ss-{}", &session.id.simple().to_string()[20..]);
    assert_eq!(
        error,
        format!(
            "network {} has no bridge named {bridge}, so egress rules cannot apply to it: stop the session",
            session.network()
        )
    );
    assert!(!exists("container", &session.container()), "nothing was created");
}

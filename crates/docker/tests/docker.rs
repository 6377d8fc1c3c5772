//! The Docker runtime against the real engine and the test fixture image (`streamspace/fixture:latest`): the
//! runtime conformance suite, then what only Docker does (the container's options, host ports, egress rules).
//!
//! Needs a running engine (`scripts/images/docker-up.sh`) and the fixture (`scripts/images/build.sh fixture`);
//! without them these tests fail, they never skip.

use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use streamspace_agent::Runtime;
use streamspace_agent::conformance::{FIXTURE, Harness, ROOT_IMAGE, Reasons, fixture_spec, get};
use streamspace_docker::{DockerOptions, DockerRuntime};
use streamspace_proto::hub::{ActualState, HomeVolume, SessionSpec};
use uuid::Uuid;

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

/// The container of a session.
fn container_of(session_id: Uuid) -> String {
    format!("ss-{session_id}")
}

/// The network of a session.
fn network_of(session_id: Uuid) -> String {
    format!("ss-net-{session_id}")
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
        container_of(self.id)
    }

    fn network(&self) -> String {
        network_of(self.id)
    }

    fn spec(&self) -> SessionSpec {
        fixture_spec(self.id)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", &self.container()]);
        let _ = docker(&["network", "rm", &self.network()]);
        // Its egress chains, if the test failed before stopping it, go with the next runtime's reconcile.
    }
}

async fn start(runtime: &DockerRuntime, spec: &SessionSpec) -> String {
    runtime.start(spec, &|_| {}).await.unwrap_or_else(|error| panic!("start failed: {error:#}"))
}

async fn state_in_inventory(runtime: &DockerRuntime, session_id: Uuid) -> Option<ActualState> {
    let inventory = runtime.inventory().await.unwrap();
    inventory.into_iter().find(|item| item.session_id == session_id).map(|item| item.state)
}

/// The runtime conformance suite's view of the Docker engine: a session's workload is its container.
struct DockerHarness {
    runtime: DockerRuntime,
    sessions: Mutex<Vec<Session>>,
}

async fn harness() -> DockerHarness {
    DockerHarness { runtime: runtime().await, sessions: Mutex::default() }
}

#[async_trait]
impl Harness for DockerHarness {
    fn runtime(&self) -> &dyn Runtime {
        &self.runtime
    }

    fn max_sessions(&self) -> i64 {
        DockerOptions::default().max_sessions
    }

    fn reasons(&self) -> Reasons {
        Reasons {
            killed: "the container exited unexpectedly with code 137 (killed by signal 9)".into(),
            crashed_while_starting: "the container exited unexpectedly with code 1 while starting".into(),
            missing_image: "failed: ".into(),
            root_refused: format!(
                "refusing to run image {ROOT_IMAGE}: the image sets no USER, so it would run as root; \
                 session images must set USER to a numeric uid other than 0"
            ),
        }
    }

    fn new_session(&self) -> Uuid {
        let session = Session::new();
        let id = session.id;
        self.sessions.lock().unwrap().push(session);
        id
    }

    async fn running_workloads(&self, session_id: Uuid) -> usize {
        let filter = format!("label=streamspace.session={session_id}");
        docker_ok(&["ps", "--quiet", "--filter", &filter]).lines().count()
    }

    async fn remains(&self, session_id: Uuid) -> Vec<String> {
        let (container, network) = (container_of(session_id), network_of(session_id));
        let status = docker(&["inspect", "-f", "{{.State.Status}}", &container]);
        let container = status
            .status
            .success()
            .then(|| format!("container {container} ({})", String::from_utf8_lossy(&status.stdout).trim()));
        let network = exists("network", &network).then(|| format!("network {network}"));
        container.into_iter().chain(network).collect()
    }

    async fn kill(&self, session_id: Uuid) {
        docker_ok(&["kill", &container_of(session_id)]);
    }

    async fn exec(&self, session_id: Uuid, command: &[&str]) -> String {
        let container = container_of(session_id);
        docker_ok(&[&["exec", container.as_str()], command].concat())
    }

    async fn create_stranger(&self, session_id: Uuid) {
        docker_ok(&["create", "--name", &container_of(session_id), FIXTURE]);
    }
}

streamspace_agent::runtime_conformance_tests!(harness);
streamspace_agent::runtime_isolation_tests!(harness);

/// What the suite cannot see: the container is made from the spec (limits, labels, environment) and sits on a
/// network of its own.
#[tokio::test]
async fn the_container_carries_the_specs_limits_and_labels_on_its_own_network() {
    let runtime = runtime().await;
    let session = Session::new();
    let spec = session.spec();
    start(&runtime, &spec).await;

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
}

/// How the hardening the suite sees from inside the container is asked of the engine.
#[tokio::test]
async fn the_container_is_created_with_the_hardening_options() {
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

    // Docker deletes and re-inserts its own jumps whenever a network comes or goes (any session's start or
    // stop): the session's rules must hold in between, for every connection.
    let outcomes = connections_while_docker_changes_networks(&a, Namespace::PRIVATE, namespace.port);
    assert!(outcomes.contains("EHOSTUNREACH") && !outcomes.contains("connected"), "{outcomes}");
}

/// What the session's connections to `address` met, counted by outcome, while Docker created and removed
/// networks; the session tries again and again until Docker is done.
fn connections_while_docker_changes_networks(session: &Session, address: &str, port: u16) -> String {
    let probe = format!(
        "import collections, errno, os, socket\nseen = collections.Counter()\n\
         while not os.path.exists('/tmp/done'):\n    try:\n        \
         socket.create_connection(('{address}', {port}), timeout=1).close()\n        seen['connected'] += 1\n    \
         except OSError as e:\n        seen[errno.errorcode.get(e.errno, str(e))] += 1\nprint(dict(seen))"
    );
    let prober = Command::new("docker")
        .args(["exec", &session.container(), "python3", "-c", &probe])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..10 {
        let network = format!("ss-test-churn-{}", &Uuid::new_v4().simple().to_string()[..8]);
        docker_ok(&["network", "create", &network]);
        docker_ok(&["network", "rm", &network]);
    }
    docker_ok(&["exec", &session.container(), "touch", "/tmp/done"]);
    String::from_utf8_lossy(&prober.wait_with_output().unwrap().stdout).trim().to_string()
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

    // Rules an older agent installed lack the jump from FORWARD itself; the next runtime adds it.
    let kept_tag = &kept.id.simple().to_string()[20..];
    run_ok("iptables", &["-w", "-D", "FORWARD", "-i", &format!("ss-{kept_tag}"), "-j", &format!("SS-FWD-{kept_tag}")]);
    let _restarted = runtime().await;
    assert_eq!(rules_of(&kept), kept_rules, "the missing jump added at start");
}

/// A network left without its container (the agent stopped, or a start failed, between the two) is removed by
/// its agent, with its egress rules, once it has stayed so for the grace period. A hibernated session's network
/// stays with its stopped container, and another agent's orphan is not this agent's to remove.
#[tokio::test]
async fn a_network_left_without_its_container_goes_with_its_rules_after_the_grace_period() {
    // An agent of its own: the networks of the other tests here are not its to judge.
    let agent = Uuid::new_v4();
    let patient = runtime().await;
    patient.bind(agent);
    // Made before the container goes: a new runtime removes the rules of sessions without a container at once.
    let prompt = runtime_with(DockerOptions { orphan_network_grace: Duration::ZERO, ..DockerOptions::default() }).await;
    prompt.bind(agent);
    let (orphaned, hibernated, foreign) = (Session::new(), Session::new(), Session::new());
    start(&patient, &orphaned.spec()).await;
    start(&patient, &hibernated.spec()).await;
    patient.hibernate(hibernated.id).await.unwrap();
    docker_ok(&["rm", "--force", &orphaned.container()]);
    let labels = ["streamspace.managed=true".to_string(), format!("streamspace.session={}", foreign.id)];
    let foreign_agent = format!("streamspace.agent={}", Uuid::new_v4());
    let network = foreign.network();
    docker_ok(&[
        "network",
        "create",
        "--label",
        &labels[0],
        "--label",
        &labels[1],
        "--label",
        &foreign_agent,
        &network,
    ]);

    patient.inventory().await.unwrap();
    assert!(
        exists("network", &orphaned.network()),
        "a network just seen without its container may be a start in progress"
    );

    let inventory = prompt.inventory().await.unwrap();
    assert!(!exists("network", &orphaned.network()), "the orphaned network is removed");
    assert_eq!(rules_of(&orphaned), Vec::<String>::new(), "its egress rules go with it");
    assert!(exists("network", &hibernated.network()), "a hibernated session keeps its network");
    assert!(!rules_of(&hibernated).is_empty(), "and its rules");
    assert!(exists("network", &foreign.network()), "another agent's network stays");
    assert_eq!(inventory.iter().map(|item| item.session_id).collect::<Vec<_>>(), [hibernated.id]);
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

/// The base session image: it declares its user's home as a volume, which a persistent home replaces.
const STREAMER_IMAGE: &str = "streamspace/base:latest";

/// A persistent home whose volume is removed when the test ends, passed or not.
struct Home(HomeVolume);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "--force", &HomeVolume::volume_name(self.0.id)]);
    }
}

fn streamer_spec(session: &Session, home: &Home) -> SessionSpec {
    SessionSpec {
        image: STREAMER_IMAGE.into(),
        // Without the control plane's master token the streamer would insist on a password.
        env: [("SELKIES_ENABLE_BASIC_AUTH".to_string(), "false".to_string())].into(),
        memory_mb: 1024,
        home: Some(home.0.clone()),
        ..session.spec()
    }
}

#[tokio::test]
async fn a_persistent_home_outlives_its_sessions_until_it_is_removed() {
    let runtime = runtime().await;
    assert!(exists("image", STREAMER_IMAGE), "the session image {STREAMER_IMAGE} is missing: scripts/images/build.sh");
    // This engine's storage (overlay2 on ext4 here) has no quotas: the size cannot hold and the home
    // is created without it rather than failing the session.
    let home = Home(HomeVolume { id: Uuid::new_v4(), size_mb: Some(64) });
    let volume = HomeVolume::volume_name(home.0.id);
    let first = Session::new();
    start(&runtime, &streamer_spec(&first, &home)).await;
    let mounted =
        docker_ok(&["inspect", "--format", "{{range .Mounts}}{{.Name}}={{.Destination}} {{end}}", &first.container()]);
    assert!(mounted.contains(&format!("{volume}=/home/streamspace")), "{mounted}");
    // The image's skeleton files were copied in, owned by the session's user, who can write there.
    docker_ok(&["exec", &first.container(), "sh", "-c", "test -f .bashrc && echo kept > notes.txt"]);
    assert_eq!(
        docker_ok(&["volume", "inspect", "--format", "{{index .Labels \"streamspace.home\"}}", &volume]),
        home.0.id.to_string()
    );

    let busy = runtime.remove_home(home.0.id).await.unwrap_err().to_string();
    assert!(busy.contains("still mounted"), "{busy}");
    runtime.stop(first.id).await.unwrap();
    assert!(!exists("container", &first.container()));
    assert!(exists("volume", &volume), "stopping a session keeps its home");

    let second = Session::new();
    start(&runtime, &streamer_spec(&second, &home)).await;
    assert_eq!(docker_ok(&["exec", &second.container(), "cat", "/home/streamspace/notes.txt"]), "kept");
    runtime.stop(second.id).await.unwrap();

    runtime.remove_home(home.0.id).await.unwrap();
    assert!(!exists("volume", &volume));
    runtime.remove_home(home.0.id).await.expect("removing a removed home is done");
}

#[tokio::test]
async fn a_homes_used_space_is_what_docker_accounts_for_its_files() {
    let runtime = runtime().await;
    let home = Home(HomeVolume { id: Uuid::new_v4(), size_mb: None });
    let session = Session::new();
    start(&runtime, &streamer_spec(&session, &home)).await;
    // 3 MiB and 4 bytes of the user's, beside the skeleton files the image copied in.
    let write = "head -c 3145728 /dev/urandom > big.bin && printf 1234 > small.txt";
    docker_ok(&["exec", &session.container(), "sh", "-c", write]);
    runtime.stop(session.id).await.unwrap();
    // Docker adds up the sizes of everything in the volume that is not a directory; counted once
    // the session is gone, so nothing writes meanwhile.
    let mount = format!("{}:/home/streamspace:ro", HomeVolume::volume_name(home.0.id));
    let total = "find /home/streamspace ! -type d -printf '%s\\n' | awk '{ s += $1 } END { print s }'";
    let count = ["run", "--rm", "--network", "none", "--entrypoint", "sh", "-v", &mount, STREAMER_IMAGE, "-c", total];
    let expected: i64 = docker_ok(&count).parse().unwrap();
    assert!(expected >= 3_145_728 + 4, "{expected}");

    let usage = runtime.home_usage().await.unwrap();
    let measured = usage.iter().find(|usage| usage.home_id == home.0.id).map(|usage| usage.used_bytes);
    assert_eq!(measured, Some(expected), "{usage:?}");
}

#[tokio::test]
async fn an_image_without_a_home_directory_cannot_keep_one() {
    let runtime = runtime().await;
    let home = Home(HomeVolume { id: Uuid::new_v4(), size_mb: None });
    let session = Session::new();
    let spec = SessionSpec { home: Some(home.0.clone()), ..session.spec() };
    let error = runtime.start(&spec, &|_| {}).await.unwrap_err().to_string();
    assert!(error.contains("has no home directory to keep"), "{error}");
    assert!(
        !exists("volume", &HomeVolume::volume_name(home.0.id)),
        "nothing is created for a session that cannot start"
    );
}

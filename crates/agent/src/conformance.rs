//! The behaviour every [`Runtime`] must show, whatever it runs sessions on: one public async function per
//! behaviour, each given a fresh [`Harness`] around the runtime under test, panicking when the runtime falls short.
//!
//! [`runtime_conformance_tests!`](crate::runtime_conformance_tests) turns every one of them into a
//! `#[tokio::test]` for a runtime:
//!
//! ```ignore
//! async fn harness() -> MyHarness { ... }
//! streamspace_agent::runtime_conformance_tests!(harness);
//! ```
//!
//! The sessions run the test fixture image ([`FIXTURE`], `images/fixture`): an HTTP server on :8080 whose image
//! sets `USER 1000` and has `python3`, which the checks use to look at a session from inside.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use streamspace_proto::SessionPhase;
use streamspace_proto::hub::{ActualState, SessionSpec};
use uuid::Uuid;

use crate::Runtime;

/// The test fixture image every check's sessions run.
pub const FIXTURE: &str = "streamspace/fixture:latest";

/// An image that sets no `USER`, so it would run as root; present wherever the session images were built.
pub const ROOT_IMAGE: &str = "debian:bookworm-slim";

/// What a check needs from the platform under the runtime that the [`Runtime`] trait does not expose: the view an
/// operator (or the operating system) has of a session's workload (a container, a pod).
#[async_trait]
pub trait Harness: Send + Sync {
    /// The runtime under test, bound to an agent id of the harness's choosing.
    fn runtime(&self) -> &dyn Runtime;

    /// The session limit the harness configured the runtime with.
    fn max_sessions(&self) -> i64;

    /// The failure reasons this runtime words for users, which the checks expect verbatim or in part.
    fn reasons(&self) -> Reasons;

    /// A fresh session id; whatever of that session is left when the harness is dropped is removed then.
    fn new_session(&self) -> Uuid;

    /// How many workloads of the session are running (a running container, a pod that is not terminated).
    async fn running_workloads(&self, session_id: Uuid) -> usize;

    /// Everything of the session that exists on the platform, running or not, described for a failure message
    /// (`container ss-… (exited)`, `network ss-net-…`).
    async fn remains(&self, session_id: Uuid) -> Vec<String>;

    /// Kills the session's workload the way the operating system would (SIGKILL), behind the runtime's back.
    async fn kill(&self, session_id: Uuid);

    /// Runs a command inside the session's running workload, as its user; what it prints. Panics if the command
    /// cannot be run or fails.
    async fn exec(&self, session_id: Uuid, command: &[&str]) -> String;

    /// Creates a workload named as the runtime would name the session's, but not managed by any runtime: what an
    /// operator might leave on the platform.
    async fn create_stranger(&self, session_id: Uuid);
}

/// The reasons a runtime gives for failures, as the control plane shows them.
pub struct Reasons {
    /// The `Failed` reason of a session whose workload was killed with SIGKILL.
    pub killed: String,
    /// The error of a start whose streamer exits with code 1 at once.
    pub crashed_while_starting: String,
    /// Part of the error of a start whose image does not exist (the error also names the image).
    pub missing_image: String,
    /// How the error of a start refused because [`ROOT_IMAGE`] would run as root begins (what follows may name
    /// things of the moment, such as a pod's uid).
    pub root_refused: String,
}

/// One `#[tokio::test]` per conformance check. `$harness` is an async fn answering a new [`Harness`]; it lives to
/// the end of the test, then disposes of the test's sessions, whether the test passed or failed. The isolation of
/// sessions from each other is a group of its own, [`runtime_isolation_tests!`](crate::runtime_isolation_tests),
/// for a platform whose test double cannot enforce it.
#[macro_export]
macro_rules! runtime_conformance_tests {
    ($harness:path) => {
        $crate::runtime_conformance_tests!(@each $harness;
            capacity_is_reported,
            start_runs_the_session_and_its_endpoint_answers,
            starting_a_running_session_returns_its_endpoint_without_a_second_workload,
            hibernate_keeps_the_session_and_wake_brings_it_back,
            stop_removes_everything_and_stopping_again_is_fine,
            inventory_lists_every_managed_session,
            a_killed_workload_is_reported_failed,
            a_streamer_that_crashes_while_starting_fails_fast,
            a_missing_image_fails_with_a_clear_reason,
            sessions_run_hardened_as_the_images_non_root_user,
            an_image_that_would_run_as_root_is_refused,
        );
    };
    (@each $harness:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let harness = $harness().await;
                $crate::conformance::$check(&harness).await;
            }
        )+
    };
}

/// The spec of a session on the fixture image, with an environment variable and limits of its own.
pub fn fixture_spec(session_id: Uuid) -> SessionSpec {
    SessionSpec {
        session_id,
        org_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        image: FIXTURE.into(),
        env: BTreeMap::from([("FIXTURE_GREETING".to_string(), "hello there".to_string())]),
        cpu_millis: 500,
        memory_mb: 256,
        shm_mb: 128,
        port: 8080,
        egress_allow: Vec::new(),
        home: None,
    }
}

/// The `#[tokio::test]`s of session isolation, as [`runtime_conformance_tests!`](crate::runtime_conformance_tests)
/// makes the others.
#[macro_export]
macro_rules! runtime_isolation_tests {
    ($harness:path) => {
        $crate::runtime_conformance_tests!(@each $harness; sessions_cannot_reach_each_other);
    };
}

// Checks.

pub async fn capacity_is_reported(harness: &impl Harness) {
    let capacity = harness.runtime().capacity().await.unwrap();
    assert_eq!(capacity.max_sessions, harness.max_sessions());
    assert!(capacity.cpu_millis >= 1000 && capacity.memory_mb >= 256, "{capacity:?}");
}

pub async fn start_runs_the_session_and_its_endpoint_answers(harness: &impl Harness) {
    let runtime = harness.runtime();
    let spec = fixture_spec(harness.new_session());
    let recorder = Recorder::default();
    let endpoint = runtime.start(&spec, &recorder.report()).await.unwrap();
    let phases = recorder.phases();
    assert!(!phases.contains(&SessionPhase::Pulling), "the image is present: nothing to pull, {phases:?}");
    assert_eq!(phases.last(), Some(&SessionPhase::Starting), "{phases:?}");
    assert!(endpoint.starts_with("http://") && endpoint.ends_with(":8080"), "{endpoint}");

    let page = get(&format!("{endpoint}/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("StreamSpace fixture"));
    let environment = harness.exec(spec.session_id, &["cat", "/proc/1/environ"]).await;
    assert!(environment.split('\0').any(|var| var == "FIXTURE_GREETING=hello there"), "{environment:?}");
    assert_eq!(harness.running_workloads(spec.session_id).await, 1);
    assert_eq!(inventory_state(runtime, spec.session_id).await, Some(ActualState::Running { endpoint }));
}

pub async fn starting_a_running_session_returns_its_endpoint_without_a_second_workload(harness: &impl Harness) {
    let runtime = harness.runtime();
    let spec = fixture_spec(harness.new_session());
    let endpoint = start(runtime, &spec).await;

    let again = Recorder::default();
    assert_eq!(runtime.start(&spec, &again.report()).await.unwrap(), endpoint);
    assert_eq!(again.phases(), [], "nothing was created");
    assert_eq!(harness.running_workloads(spec.session_id).await, 1);
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(inventory_state(runtime, spec.session_id).await, Some(ActualState::Running { endpoint }));
}

pub async fn hibernate_keeps_the_session_and_wake_brings_it_back(harness: &impl Harness) {
    let runtime = harness.runtime();
    let mut events = runtime.events();
    let spec = fixture_spec(harness.new_session());
    start(runtime, &spec).await;

    runtime.hibernate(spec.session_id).await.unwrap();
    eventually("nothing of the hibernated session runs", || async {
        harness.running_workloads(spec.session_id).await == 0
    })
    .await;
    assert!(!harness.remains(spec.session_id).await.is_empty(), "something of it is kept");
    assert_eq!(inventory_state(runtime, spec.session_id).await, Some(ActualState::Hibernated));
    runtime.hibernate(spec.session_id).await.expect("hibernating twice is fine");

    let recorder = Recorder::default();
    let endpoint = runtime.wake(&spec, &recorder.report()).await.unwrap();
    assert_eq!(recorder.phases().last(), Some(&SessionPhase::Starting));
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
    assert_eq!(harness.running_workloads(spec.session_id).await, 1);
    assert_eq!(inventory_state(runtime, spec.session_id).await, Some(ActualState::Running { endpoint }));

    // The requested stop was not reported as a failure: the death of another session, later, comes first.
    let later = fixture_spec(harness.new_session());
    start(runtime, &later).await;
    harness.kill(later.session_id).await;
    let seen = events_until(&mut events, later.session_id, Duration::from_secs(30))
        .await
        .expect("the later death is reported");
    assert!(seen.iter().all(|(id, _)| *id != spec.session_id), "{seen:?}");
}

pub async fn stop_removes_everything_and_stopping_again_is_fine(harness: &impl Harness) {
    let runtime = harness.runtime();
    let spec = fixture_spec(harness.new_session());
    start(runtime, &spec).await;
    assert!(!harness.remains(spec.session_id).await.is_empty());

    runtime.stop(spec.session_id).await.unwrap();
    eventually("everything of the stopped session is removed", || async {
        harness.remains(spec.session_id).await.is_empty()
    })
    .await;
    assert_eq!(inventory_state(runtime, spec.session_id).await, None);
    runtime.stop(spec.session_id).await.expect("stopping what is gone is fine");
    runtime.remove(spec.session_id).await.expect("removing what is gone is fine");
    runtime.hibernate(spec.session_id).await.expect_err("there is nothing to hibernate");

    // Waking a session that is gone recreates it from the spec.
    let endpoint = runtime.wake(&spec, &|_| {}).await.unwrap();
    assert_eq!(get(&format!("{endpoint}/api/health")).await.status(), 200);
}

pub async fn inventory_lists_every_managed_session(harness: &impl Harness) {
    let runtime = harness.runtime();
    let (running, hibernated) = (fixture_spec(harness.new_session()), fixture_spec(harness.new_session()));
    let endpoint = start(runtime, &running).await;
    start(runtime, &hibernated).await;
    runtime.hibernate(hibernated.session_id).await.unwrap();
    let stranger = harness.new_session();
    harness.create_stranger(stranger).await;

    let inventory = runtime.inventory().await.unwrap();
    let of = |id| inventory.iter().find(|item| item.session_id == id).map(|item| item.state.clone());
    assert_eq!(of(running.session_id), Some(ActualState::Running { endpoint }));
    assert_eq!(of(hibernated.session_id), Some(ActualState::Hibernated));
    assert_eq!(of(stranger), None, "an unmanaged workload is none of the runtime's business");
}

pub async fn a_killed_workload_is_reported_failed(harness: &impl Harness) {
    let runtime = harness.runtime();
    let mut events = runtime.events();
    let spec = fixture_spec(harness.new_session());
    start(runtime, &spec).await;

    harness.kill(spec.session_id).await;
    let state = event_for(&mut events, spec.session_id, Duration::from_secs(10)).await.expect("an event within 10 s");
    let failed = ActualState::Failed { reason: harness.reasons().killed };
    assert_eq!(state, failed);
    assert_eq!(inventory_state(runtime, spec.session_id).await, Some(failed));
}

pub async fn a_streamer_that_crashes_while_starting_fails_fast(harness: &impl Harness) {
    let spec = SessionSpec {
        env: BTreeMap::from([("PORT".to_string(), "not-a-port".to_string())]),
        ..fixture_spec(harness.new_session())
    };
    let began = Instant::now();
    let error = harness.runtime().start(&spec, &|_| {}).await.unwrap_err();
    assert_eq!(error.to_string(), harness.reasons().crashed_while_starting);
    assert!(began.elapsed() < Duration::from_secs(15), "did not wait for the start timeout");
}

pub async fn a_missing_image_fails_with_a_clear_reason(harness: &impl Harness) {
    let image = "streamspace.invalid/no-such-image:1";
    let spec = SessionSpec { image: image.into(), ..fixture_spec(harness.new_session()) };
    let recorder = Recorder::default();
    let error = format!("{:#}", harness.runtime().start(&spec, &recorder.report()).await.unwrap_err());
    assert!(error.contains(image), "{error}");
    assert!(error.contains(&harness.reasons().missing_image), "{error}");
    assert!(recorder.phases().contains(&SessionPhase::Pulling), "{:?}", recorder.phases());
    assert_eq!(harness.running_workloads(spec.session_id).await, 0);
}

pub async fn sessions_run_hardened_as_the_images_non_root_user(harness: &impl Harness) {
    let spec = fixture_spec(harness.new_session());
    start(harness.runtime(), &spec).await;

    // What the kernel says of the session's main process: no capability, no way to gain privileges, seccomp on.
    let status = harness.exec(spec.session_id, &["cat", "/proc/1/status"]).await;
    let field = |name: &str| {
        let line =
            status.lines().find(|line| line.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("{name}"));
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!((field("CapEff"), field("CapPrm"), field("CapBnd")), ("0".repeat(16), "0".repeat(16), "0".repeat(16)));
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "the runtime's default seccomp filter");
    assert_eq!(field("Uid"), "1000", "the image's own user");

    let writes = "import errno\nfor path in ('/srv/fixture/x', '/etc/x', '/tmp/x'):\n    try:\n        \
                  open(path, 'w').close(); print(path, 'ok')\n    except OSError as e:\n        \
                  print(path, errno.errorcode[e.errno])";
    let written = harness.exec(spec.session_id, &["python3", "-c", writes]).await;
    assert_eq!(written.trim(), "/srv/fixture/x EROFS\n/etc/x EROFS\n/tmp/x ok", "only the tmpfs is writable");
}

pub async fn an_image_that_would_run_as_root_is_refused(harness: &impl Harness) {
    let spec = SessionSpec { image: ROOT_IMAGE.into(), ..fixture_spec(harness.new_session()) };
    let error = format!("{:#}", harness.runtime().start(&spec, &|_| {}).await.unwrap_err());
    assert!(error.starts_with(&harness.reasons().root_refused), "{error}");
    assert_eq!(harness.running_workloads(spec.session_id).await, 0, "nothing runs");
}

pub async fn sessions_cannot_reach_each_other(harness: &impl Harness) {
    let runtime = harness.runtime();
    let (a, b) = (fixture_spec(harness.new_session()), fixture_spec(harness.new_session()));
    let (endpoint_a, endpoint_b) = (start(runtime, &a).await, start(runtime, &b).await);
    let connect = |from: Uuid, endpoint: String| async move {
        let address = endpoint.trim_start_matches("http://").rsplit_once(':').unwrap().0.to_string();
        let script = format!(
            "import errno, socket\ntry:\n    socket.create_connection(('{address}', 8080), timeout=3).close()\n    \
             print('connected')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, str(e)))"
        );
        harness.exec(from, &["python3", "-c", &script]).await.trim().to_string()
    };
    assert_eq!(connect(a.session_id, endpoint_a.clone()).await, "connected", "control: a reaches its own streamer");
    assert_ne!(connect(a.session_id, endpoint_b).await, "connected", "a must not reach b");
    assert_ne!(connect(b.session_id, endpoint_a).await, "connected", "b must not reach a");
}

// Helpers.

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

/// Waits until `holds` does, for what a platform completes after it answered (a deleted pod's container stops
/// later); panics naming `what` after 30 s.
async fn eventually<F, Fut>(what: &str, holds: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds().await {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(runtime: &dyn Runtime, spec: &SessionSpec) -> String {
    runtime.start(spec, &|_| {}).await.unwrap_or_else(|error| panic!("start failed: {error:#}"))
}

async fn inventory_state(runtime: &dyn Runtime, session_id: Uuid) -> Option<ActualState> {
    let inventory = runtime.inventory().await.unwrap();
    inventory.into_iter().find(|item| item.session_id == session_id).map(|item| item.state)
}

type Events = BoxStream<'static, (Uuid, ActualState)>;

/// The next event about `session_id` within `wait`. Tests run in parallel, each with its own runtime, so a
/// runtime may also see the other tests' sessions stop.
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

/// GET `url`, directly (no proxy from the environment); panics if nothing answers.
pub async fn get(url: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(url).send().await.unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

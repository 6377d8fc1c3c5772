//! The conformance suite on PostgreSQL, reached through the URL in `STREAMSPACE_TEST_DATABASE_URL`.
//! Each test gets a schema of its own in that database (its connections' search path), created
//! before and dropped after, so tests run in parallel; a schema costs far less than a database.
//!
//! Without that variable the tests fail (so that a missing database is never mistaken for a pass)
//! unless `STREAMSPACE_SKIP_POSTGRES=1` says to skip them; on CI (`CI` set) and under `make test`
//! (`STREAMSPACE_REQUIRE_SERVICES=1`) they cannot be skipped.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};
use streamspace_store::PostgresStore;
use streamspace_store::conformance::TestStore;
use uuid::Uuid;

const URL_VAR: &str = "STREAMSPACE_TEST_DATABASE_URL";
const SKIP_VAR: &str = "STREAMSPACE_SKIP_POSTGRES";
const REQUIRED_VAR: &str = "STREAMSPACE_REQUIRE_SERVICES";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The server the tests use, or `None` when they are to be skipped.
fn server() -> Option<(String, PgConnectOptions)> {
    let Ok(url) = std::env::var(URL_VAR) else {
        let setup = format!(
            "{URL_VAR} is not set, so the PostgreSQL tests cannot run. Start PostgreSQL with `eval \"$(scripts/dev/postgres-up.sh)\"` (as root)"
        );
        if let Some(name) = skipping_forbidden_by() {
            panic!("{setup}; {name} is set, so they may not be skipped.");
        }
        if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
            eprintln!("skipped: {SKIP_VAR}=1");
            return None;
        }
        panic!("{setup}, or set {SKIP_VAR}=1 to skip them.");
    };
    let options = PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("{URL_VAR} is not a PostgreSQL URL: {e}"));
    Some((url, options))
}

/// The variable that forbids skipping, if one is set: `CI` on a CI run, or `make test`'s.
fn skipping_forbidden_by() -> Option<&'static str> {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"));
    ["CI", REQUIRED_VAR].into_iter().find(|name| set(name))
}

/// Runs one statement naming an object (which cannot be a bind parameter; the names are ours).
async fn execute(server: &PgConnectOptions, statement: String) -> Result<(), BoxError> {
    let mut connection = PgConnection::connect_with(server).await?;
    sqlx::query(AssertSqlSafe(statement)).execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

/// Runs `statement` to completion even where no runtime may block: from a `Drop` on a runtime
/// thread, perhaps while a failed test unwinds.
fn execute_blocking(server: &PgConnectOptions, statement: String) {
    let server = server.clone();
    let done = std::thread::spawn(move || -> Result<(), BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(execute(&server, statement))
    })
    .join();
    if !matches!(done, Ok(Ok(()))) {
        eprintln!("test clean-up failed: {done:?}");
    }
}

/// A schema created for one test, dropped with this guard.
struct TestSchema {
    server: PgConnectOptions,
    name: String,
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        execute_blocking(&self.server, format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

async fn fresh() -> Option<(Arc<dyn TestStore>, TestSchema)> {
    let (_, server) = server()?;
    let schema = TestSchema { name: format!("ss_test_{}", Uuid::new_v4().simple()), server };
    execute(&schema.server, format!("CREATE SCHEMA {}", schema.name)).await.expect("creating the test schema");
    let options = schema.server.clone().options([("search_path", &schema.name)]);
    let store = PostgresStore::connect_with(options).await.expect("connecting to the test schema");
    Some((Arc::new(store), schema))
}

streamspace_store::conformance_tests!(fresh);

/// A database created for one test, dropped with this guard.
struct TestDatabase {
    server: PgConnectOptions,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        execute_blocking(&self.server, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[tokio::test]
async fn connect_takes_a_url_and_migrates_a_new_database_once() {
    let Some((url, server)) = server() else { return };
    let database = TestDatabase { name: format!("ss_test_{}", Uuid::new_v4().simple()), server };
    execute(&database.server, format!("CREATE DATABASE {}", database.name)).await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL naming a database");
    let url = format!("{base}/{}", database.name);
    let store = streamspace_store::connect(&url).await.unwrap();
    let acme = store.create_org("acme", Default::default()).await.unwrap();
    let again = streamspace_store::connect(&url).await.unwrap();
    assert_eq!(again.get_org_by_name("acme").await.unwrap(), Some(acme));
}

/// Replicas on one database (ADR 0030): each hears the others' messages but not its own, and a
/// duty has one holder at a time, taken over once its holder stops renewing.
#[tokio::test]
async fn replicas_hear_each_other_and_hold_a_duty_one_at_a_time() {
    use std::time::{Duration, Instant};
    use streamspace_store::cluster::{Cluster, Replicas};

    let Some((url, server)) = server() else { return };
    let database = TestDatabase { name: format!("ss_test_{}", Uuid::new_v4().simple()), server };
    execute(&database.server, format!("CREATE DATABASE {}", database.name)).await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL naming a database");
    let url = format!("{base}/{}", database.name);
    streamspace_store::connect(&url).await.unwrap();
    let (one, two) = (Replicas::join(&url).await.unwrap(), Replicas::join(&url).await.unwrap());
    assert_ne!(one.replica(), two.replica());

    let (mut heard_by_one, mut heard_by_two) = (one.messages(), two.messages());
    let next = async |heard: &mut tokio::sync::broadcast::Receiver<String>| {
        tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.expect("a message in time").unwrap()
    };
    one.announce("session 1").await.unwrap();
    assert_eq!(next(&mut heard_by_two).await, "session 1");
    two.announce("commands 2").await.unwrap();
    assert_eq!(next(&mut heard_by_one).await, "commands 2", "the first it hears is not its own");

    let lease = Duration::from_millis(1500);
    assert!(one.hold("timers", lease).await.unwrap());
    assert!(!two.hold("timers", lease).await.unwrap(), "held by the other");
    assert!(one.hold("timers", lease).await.unwrap(), "the holder renews");
    assert!(two.hold("reports", lease).await.unwrap(), "each duty has its own holder");

    // The holder stops renewing, as if it had died: the other takes over once the lease runs out.
    let since = Instant::now();
    while !two.hold("timers", lease).await.unwrap() {
        assert!(since.elapsed() < Duration::from_secs(10), "the duty was never taken over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(since.elapsed() >= Duration::from_millis(1000), "not before the lease ran out: {:?}", since.elapsed());
    assert!(!one.hold("timers", lease).await.unwrap(), "the old holder does not take it back");
}

/// A database created for one test, reached through a store.
async fn store_on_own_database() -> Option<(Arc<dyn streamspace_store::Store>, TestDatabase)> {
    let (url, server) = server()?;
    let database = TestDatabase { name: format!("ss_test_{}", Uuid::new_v4().simple()), server };
    execute(&database.server, format!("CREATE DATABASE {}", database.name)).await.unwrap();
    let (base, _) = url.rsplit_once('/').expect("a URL naming a database");
    let store = streamspace_store::connect(&format!("{base}/{}", database.name)).await.unwrap();
    Some((store, database))
}

/// Ends every connection to the test's database but the one that asks.
async fn end_connections(database: &TestDatabase) {
    let ended = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        database.name
    );
    execute(&database.server, ended).await.unwrap();
}

/// Connections are tested before they are lent only once they have idled for a while (ADR 0035): one
/// the server ended meanwhile (a restart, an idle timeout) is replaced, not handed to a query.
#[tokio::test]
async fn a_connection_the_server_ended_while_it_idled_is_replaced() {
    let Some((store, database)) = store_on_own_database().await else { return };
    let acme = store.create_org("acme", Default::default()).await.unwrap();
    assert_eq!(store.get_org_by_name("acme").await.unwrap().as_ref(), Some(&acme));

    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    end_connections(&database).await;
    assert_eq!(store.get_org_by_name("acme").await.unwrap(), Some(acme));
}

/// A read connection that fails under a statement is not lent again. Within a second of its last use a
/// connection is not tested first, so the one read that finds it ended fails.
#[tokio::test]
async fn a_read_connection_that_failed_is_not_lent_again() {
    let Some((store, database)) = store_on_own_database().await else { return };
    let acme = store.create_org("acme", Default::default()).await.unwrap();
    assert_eq!(store.get_org_by_name("acme").await.unwrap().as_ref(), Some(&acme));

    end_connections(&database).await;
    assert!(store.get_org_by_name("acme").await.is_err(), "the read on the ended connection fails");
    assert_eq!(store.get_org_by_name("acme").await.unwrap(), Some(acme));
}

/// However many reads run at once, a replica holds at most 10 connections to the database.
#[tokio::test]
async fn reads_at_once_share_a_bounded_set_of_connections() {
    let Some((store, database)) = store_on_own_database().await else { return };
    store.create_org("acme", Default::default()).await.unwrap();
    let reads = (0..64).map(|_| store.get_org_by_name("acme"));
    for read in futures::future::join_all(reads).await {
        assert!(read.unwrap().is_some());
    }
    let mut connection = PgConnection::connect_with(&database.server).await.unwrap();
    let count = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'", database.name);
    let (open,): (i64,) = sqlx::query_as(AssertSqlSafe(count)).fetch_one(&mut connection).await.unwrap();
    assert!((2..=10).contains(&open), "{open} connections open");
}

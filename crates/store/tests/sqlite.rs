//! The conformance suite on SQLite, each test on a new database file in a temporary directory,
//! and what only SQLite does: creating the file, reopening it, in-memory databases.

use std::sync::Arc;

use streamspace_store::conformance::TestStore;
use streamspace_store::{Scope, SqliteStore, Store};
use tempfile::TempDir;

fn url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("streamspace.db").display())
}

/// A store on a new database, and the directory holding it (removed when dropped).
async fn fresh() -> Option<(Arc<dyn TestStore>, TempDir)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::connect(&url(&dir)).await.expect("a new SQLite database");
    Some((Arc::new(store), dir))
}

streamspace_store::conformance_tests!(fresh);

#[tokio::test]
async fn reopening_keeps_the_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let acme = store.create_org("acme", Default::default()).await.unwrap();
    store.close().await;
    assert!(dir.path().join("streamspace.db").exists());
    let reopened = streamspace_store::connect(&url(&dir)).await.unwrap();
    assert_eq!(reopened.get_org(Scope::Platform, acme.id).await.unwrap(), Some(acme));
}

#[tokio::test]
async fn in_memory_databases_work() {
    let store = streamspace_store::connect("sqlite::memory:").await.unwrap();
    let acme = store.create_org("acme", Default::default()).await.unwrap();
    assert_eq!(store.get_org_by_name("acme").await.unwrap(), Some(acme));
}

#[tokio::test]
async fn the_database_is_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let foreign_keys: bool = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(store.pool()).await.unwrap();
    assert!(foreign_keys);
}

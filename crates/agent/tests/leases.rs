//! The lease backends of agent HA against the real thing: a file on disk, and a real `redis-server`.

use std::sync::Arc;
use std::time::Duration;

use streamspace_agent::ha::conformance::{self, RedisServer};
use streamspace_agent::ha::file::FileLease;
use streamspace_agent::ha::redis::RedisLease;
use streamspace_agent::ha::{Lease, LeaseTimings};

#[tokio::test]
async fn the_file_lease_keeps_the_lease_contract() {
    let dir = tempfile::tempdir().unwrap();
    let lease = FileLease::new(dir.path().join("agents.lease"));
    conformance::terms_are_exclusive_numbered_and_end_on_expiry_or_release(&lease).await;
    let racing = FileLease::new(dir.path().join("racing.lease"));
    conformance::racing_acquisitions_have_one_winner(Arc::new(racing)).await;
}

#[tokio::test]
async fn a_damaged_lease_file_is_an_error_not_a_free_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.lease");
    std::fs::write(&path, "epoch=not-a-number\n").unwrap();
    let error = FileLease::new(&path).acquire("a", Duration::from_secs(1)).await.unwrap_err();
    assert!(format!("{error:#}").contains("malformed epoch"), "{error:#}");
}

#[tokio::test]
async fn the_redis_lease_keeps_the_lease_contract() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let lease = RedisLease::new(&redis.url, "pair-1").unwrap();
    conformance::terms_are_exclusive_numbered_and_end_on_expiry_or_release(&lease).await;
    let racing = RedisLease::new(&redis.url, "pair-2").unwrap();
    conformance::racing_acquisitions_have_one_winner(Arc::new(racing)).await;
    let other_group = RedisLease::new(&redis.url, "pair-3").unwrap();
    assert_eq!(other_group.latest_epoch().await.unwrap(), 0, "groups sharing a Redis do not meet");
}

#[tokio::test]
async fn a_redis_that_is_down_is_an_error_and_the_lease_works_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("redis.sock").display());
    let lease = RedisLease::new(&url, "late").unwrap();
    let timings = LeaseTimings::default();
    assert!(lease.acquire("a", timings.ttl).await.is_err(), "no Redis yet");
    let _redis = RedisServer::start(dir.path());
    assert_eq!(lease.acquire("a", timings.ttl).await.unwrap(), Some(1));
}

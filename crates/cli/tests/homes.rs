//! Persistent homes' used space for real (issue 13): the built binary as control plane and Docker
//! agent, the base session image keeping its user's home, Docker's own accounting of the volume.

mod common;

use common::*;
use serde_json::{Value, json};

const STREAMER_IMAGE: &str = "streamspace/base:latest";

/// The sizes Docker adds up for a volume: everything in it that is not a directory.
fn files_size(volume: &str) -> i64 {
    let mount = format!("{volume}:/home/streamspace:ro");
    let total = "find /home/streamspace ! -type d -printf '%s\\n' | awk '{ s += $1 } END { print s }'";
    let args = ["run", "--rm", "--network", "none", "--entrypoint", "sh", "-v", &mount, STREAMER_IMAGE, "-c", total];
    docker(&args).parse().unwrap_or_else(|_| panic!("cannot count the files in {volume}"))
}

#[tokio::test]
async fn a_file_written_into_a_home_shows_as_its_used_space() {
    require_docker();
    assert!(!docker(&["image", "inspect", "--format", "{{.Id}}", STREAMER_IMAGE]).is_empty(), "needs {STREAMER_IMAGE}");
    let dir = tempfile::tempdir().unwrap();
    let (plane, _agent, admin) = Agent::docker_online(dir.path()).await;
    let template = json!({"name": "desk", "display_name": "Desk", "image": STREAMER_IMAGE, "cpu_millis": 500,
        "memory_mb": 512, "shm_mb": 64, "home": {"scope": "user"}});
    admin.post("/api/v1/templates", template).await;
    admin.post("/api/v1/users", json!({"username": "member", "password": "password-123", "role": "member"})).await;
    let member = Api::login(&plane.api, "member", "password-123").await;

    let id = member.post("/api/v1/sessions", json!({"template": "desk"})).await["id"].as_str().unwrap().to_owned();
    member.wait_for_state(&id, "running", START).await;
    let home = member.get("/api/v1/me/homes").await["items"][0].clone();
    let home_id = home["id"].as_str().unwrap().to_owned();
    let write = "head -c 3145728 /dev/urandom > big.bin && printf 1234 > small.txt";
    assert_eq!(docker(&["exec", &format!("ss-{id}"), "sh", "-c", &format!("{write} && echo written")]), "written");
    let (status, _) = member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    member.wait_for_state(&id, "stopped", START).await;
    let expected = files_size(&format!("ss-home-{home_id}"));
    assert!(expected >= 3_145_728 + 4, "{expected}");

    // The agent measures at its first heartbeat after the session stopped.
    let measured = eventually("the home's usage after the session stopped", START, || async {
        let home = member.get("/api/v1/me/homes").await["items"][0].clone();
        (home["used_bytes"] == expected).then_some(home)
    })
    .await;
    assert!(measured["usage_measured_at"].is_string(), "{measured}");
    let listed: Value = admin.get("/api/v1/homes").await;
    assert_eq!(listed["items"][0]["used_bytes"], expected, "administrators see it too: {listed}");

    let (status, _) = admin.call(reqwest::Method::DELETE, &format!("/api/v1/homes/{home_id}"), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    eventually("the home's volume to go", START, || async {
        docker(&["volume", "ls", "-q", "--filter", &format!("name=ss-home-{home_id}")]).is_empty().then_some(())
    })
    .await;
}

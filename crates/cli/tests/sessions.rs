//! Sessions for real: the built binary as control plane and Docker agent, the real Docker
//! engine, the fixture image, and the session proxy.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A control plane with one online agent, a fixture template and a member.
struct Setup {
    plane: ControlPlane,
    agent: Agent,
    agent_name: String,
    admin: Api,
    member: Api,
    _dir: tempfile::TempDir,
}

async fn setup(args: &[&str]) -> Setup {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let mut all_args = vec!["--heartbeat-interval", "2"];
    all_args.extend_from_slice(args);
    let plane = ControlPlane::start(dir.path(), &all_args).await;
    let admin = plane.admin().await;
    let name = format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let token = admin.register_agent(&name).await;
    let agent = Agent::start(&plane.api, &token, dir.path().join("agent.log"));
    admin.wait_for_agent_online(&name).await;
    let template = json!({"name": "fixture", "display_name": "Fixture", "image": FIXTURE_IMAGE, "cpu_millis": 250, "memory_mb": 128, "shm_mb": 16});
    admin.post("/api/v1/templates", template).await;
    let user = json!({"username": "member", "password": "password-123", "role": "member"});
    admin.post("/api/v1/users", user).await;
    let member = Api::login(&plane.api, "member", "password-123").await;
    Setup { plane, agent, agent_name: name, admin, member, _dir: dir }
}

async fn connect_url(api: &Api, id: &str) -> String {
    api.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await["url"].as_str().unwrap().to_owned()
}

/// Opens the session through its connect URL; returns the session cookie (`name=value`).
async fn open(api: &Api, id: &str) -> String {
    let url = connect_url(api, id).await;
    assert!(url.starts_with(&format!("http://{id}.localhost:")), "each session on its own origin: {url}");
    let response = session_client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!response.headers()["location"].to_str().unwrap().contains("ticket"), "the ticket leaves the URL");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-ss_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "Secure", "Path=/;", "SameSite=None", "Partitioned"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing: {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "host-only: {set_cookie}");
    set_cookie.split(';').next().unwrap().to_owned()
}

/// `GET <path>` under session `id`'s prefix, on session `host`'s origin.
async fn proxied_on(plane: &ControlPlane, host: &str, id: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = session_client().get(format!("{}/api/v1/http/{id}{path}", plane.session_origin(host)));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn proxied(plane: &ControlPlane, id: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    proxied_on(plane, id, id, path, cookie).await
}

#[tokio::test]
async fn a_session_runs_and_is_reachable_only_through_the_authenticated_proxy() {
    let s = setup(&[]).await;
    let id = running_session(&s.member).await;

    // Without a ticket or cookie: 401. Another user cannot even ask for a ticket.
    assert_eq!(proxied(&s.plane, &id, "/", None).await.status(), StatusCode::UNAUTHORIZED);
    s.admin.post("/api/v1/users", json!({"username": "other", "password": "password-123", "role": "member"})).await;
    let other = Api::login(&s.plane.api, "other", "password-123").await;
    let (status, _) =
        other.call(reqwest::Method::POST, &format!("/api/v1/sessions/{id}/connect"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only the owner opens a session: an administrator may stop it, not see it.
    let (status, body) =
        s.admin.call(reqwest::Method::POST, &format!("/api/v1/sessions/{id}/connect"), Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_owner")));

    // The org decides what sessions may exchange with the viewer's browser; the UI frames them
    // accordingly (the streamer's side is in policies.rs).
    let connect = s.member.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await;
    assert_eq!(connect["policy"]["clipboard"], "both", "{connect}");
    let org_id = s.member.get("/api/v1/me").await["org_id"].as_str().unwrap().to_owned();
    let closed = json!({"session_policy": {"clipboard": "off"}});
    s.admin.call(reqwest::Method::PATCH, &format!("/api/v1/orgs/{org_id}"), Some(closed)).await;
    let connect = s.member.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await;
    assert_eq!(connect["policy"]["clipboard"], "off", "{connect}");

    // A ticket works once.
    let url = connect_url(&s.member, &id).await;
    assert_eq!(session_client().get(&url).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let reused = session_client().get(&url).send().await.unwrap();
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reused.json::<Value>().await.unwrap()["error"]["code"], "invalid_ticket");

    let cookie = open(&s.member, &id).await;
    let page = proxied(&s.plane, &id, "/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(proxied(&s.plane, &id, "", Some(&cookie)).await.status(), StatusCode::PERMANENT_REDIRECT);

    // Platform credentials never reach the container.
    let echo: Value = session_client()
        .post(format!("{}/api/v1/http/{id}/echo/x?a=1", s.plane.session_origin(&id)))
        .header("cookie", format!("{cookie}; ss_refresh=secret; __Host-ss_refresh=secret; app=kept"))
        .bearer_auth(&s.member.token)
        .body("hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo["method"].as_str(), echo["path"].as_str(), echo["query"].as_str()),
        (Some("POST"), Some("/echo/x"), Some("a=1"))
    );
    let headers = echo["headers"].to_string().to_lowercase();
    assert!(!headers.contains("authorization") && !headers.contains("ss_") && !headers.contains("secret"), "{headers}");
    assert!(headers.contains("app=kept"), "{headers}");
    assert_eq!(echo["body_len"], 5);

    // Bodies stream both ways.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let upload: Value = session_client()
        .post(format!("{}/api/v1/http/{id}/upload", s.plane.session_origin(&id)))
        .header("cookie", &cookie)
        .body(big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upload["bytes"], 3 * 1024 * 1024, "{upload}");
    let download = proxied(&s.plane, &id, "/stream?bytes=5000000", Some(&cookie)).await.bytes().await.unwrap();
    assert_eq!(download.len(), 5_000_000);

    // WebSocket echo through the tunnel, small and large messages.
    let ws_url = format!("{}/api/v1/http/{id}/ws", s.plane.session_origin(&id).replace("http://", "ws://"));
    let mut socket = session_websocket(&ws_url, &[("cookie", &cookie)]).await.unwrap();
    socket.send(Message::text("ping through the proxy")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("ping through the proxy"));
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    socket.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap().into_data().as_ref(), payload.as_slice());
    // The org's compliance report shows who is in the session while the tunnel is open, and for
    // how long once it has closed.
    let visit = |closed: bool| {
        let (admin, id) = (&s.admin, id.clone());
        eventually("the tunnel's visit in the compliance report", Duration::from_secs(5), move || {
            let id = id.clone();
            async move {
                let visits = session_visits(admin).await;
                visits.into_iter().find(|v| v["session_id"] == id.as_str() && v["closed_at"].is_null() != closed)
            }
        })
    };
    let open_visit = visit(false).await;
    assert_eq!((&open_visit["user"], &open_visit["duration_secs"]), (&json!("member"), &Value::Null), "{open_visit}");
    socket.close(None).await.unwrap();
    drop(socket);
    let closed_visit = visit(true).await;
    assert_eq!(closed_visit["opened_at"], open_visit["opened_at"], "{closed_visit}");
    assert!(closed_visit["duration_secs"].as_i64().is_some_and(|secs| secs >= 0), "for how long: {closed_visit}");

    // The proxy and the lifecycle are measured, and every metric is in the catalogue (docs/metrics.md).
    let metrics = reqwest::get(format!("{}/metrics", s.plane.api)).await.unwrap().text().await.unwrap();
    for series in [
        "streamspace_session_start_duration_seconds_count",
        "streamspace_session_phase_duration_seconds_bucket",
        "streamspace_proxy_bytes_total",
        "streamspace_agents{state=\"online\"} 1",
        "streamspace_session_starts_total{outcome=\"running\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    common::catalogue::assert_catalogued(&metrics);

    // A cookie for one session opens no other, and each origin serves its own session only.
    let second = running_session(&s.member).await;
    assert_eq!(proxied(&s.plane, &second, "/", Some(&cookie)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(proxied_on(&s.plane, &second, &id, "/", Some(&cookie)).await.status(), StatusCode::NOT_FOUND);
    let shared_origin = session_client().get(format!("{}/api/v1/http/{id}/", s.plane.sessions));
    assert_eq!(shared_origin.header("cookie", &cookie).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let root = session_client().get(format!("{}/", s.plane.session_origin(&id))).send().await.unwrap();
    assert_eq!(root.headers()["location"], format!("/api/v1/http/{id}/"));

    // Another site's page may navigate to the session, never fetch from it or open its WebSocket.
    let from_another_site = |mode: &'static str| {
        session_client()
            .get(format!("{}/api/v1/http/{id}/", s.plane.session_origin(&id)))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", mode)
            .send()
    };
    let fetched = from_another_site("cors").await.unwrap();
    assert_eq!(fetched.status(), StatusCode::FORBIDDEN);
    assert_eq!(fetched.json::<Value>().await.unwrap()["error"]["code"], "cross_site_refused");
    assert_eq!(from_another_site("navigate").await.unwrap().status(), StatusCode::OK);
    let framing = proxied(&s.plane, &id, "/", Some(&cookie)).await;
    let policies: Vec<_> = framing.headers().get_all("content-security-policy").iter().collect();
    assert!(
        policies.iter().any(|p| p.to_str().unwrap().starts_with("frame-ancestors http://localhost:")),
        "{policies:?}"
    );
    let sibling_origin = s.plane.session_origin(&second);
    let refused = session_websocket(&ws_url, &[("cookie", &cookie), ("origin", &sibling_origin)]).await;
    assert!(refused.is_err(), "a WebSocket opened by another session's page is refused");

    // Stopping removes the container.
    let (status, _) = s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    s.member.wait_for_state(&id, "stopped", START).await;
    assert!(session_containers(&id).is_empty());
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::NOT_FOUND);
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{second}"), None).await;
    s.member.wait_for_state(&second, "stopped", START).await;
}

#[tokio::test]
async fn a_killed_agent_leaves_sessions_running_and_catches_up_when_it_returns() {
    let mut s = setup(&[]).await;
    let kept = running_session(&s.member).await;
    let stopped_while_away = running_session(&s.member).await;
    let cookie = open(&s.member, &kept).await;

    s.agent.kill();
    // The control plane has seen the agent go, and left its sessions as they were.
    s.admin.wait_for_agent_status(&s.agent_name, "offline").await;
    assert_eq!(s.member.session(&kept).await["state"], "running");
    assert_eq!(proxied(&s.plane, &kept, "/", Some(&cookie)).await.status(), StatusCode::OK, "still reachable");
    let (status, _) =
        s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{stopped_while_away}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s.member.session(&stopped_while_away).await["state"], "stopping");

    s.agent.restart();
    s.member.wait_for_state(&stopped_while_away, "stopped", START).await;
    assert!(session_containers(&stopped_while_away).is_empty(), "the stop took effect");
    assert_eq!(session_containers(&kept).len(), 1, "nothing duplicated");
    assert_eq!(s.member.session(&kept).await["state"], "running");
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{kept}"), None).await;
    s.member.wait_for_state(&kept, "stopped", START).await;
}

#[tokio::test]
async fn a_sigkilled_control_plane_comes_back_with_its_sessions_reachable() {
    let mut s = setup(&[]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;

    s.plane.restart_after_kill().await;
    let member = Api::login(&s.plane.api, "member", "password-123").await;
    assert_eq!(member.session(&id).await["state"], "running");
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::OK);
    // The agent reconnects by itself and commands flow again.
    s.admin = s.plane.admin().await;
    let name = s.admin.get("/api/v1/agents").await["items"][0]["name"].as_str().unwrap().to_owned();
    s.admin.wait_for_agent_online(&name).await;
    member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    member.wait_for_state(&id, "stopped", START).await;
    assert!(session_containers(&id).is_empty());
}

#[tokio::test]
async fn a_crashed_container_fails_its_session_with_a_reason_in_the_audit_log() {
    let s = setup(&[]).await;
    let id = running_session(&s.member).await;
    let container = format!("ss-{id}");
    docker(&["kill", &container]);
    let failed = s.member.wait_for_state(&id, "failed", Duration::from_secs(2 * 2 + 2)).await;
    assert!(!failed["failure_reason"].as_str().unwrap_or("").is_empty(), "{failed}");
    // The transition's audit record is written once the state it records is stored.
    let failures = format!("/api/v1/audit?target=session:{id}&result=failure");
    eventually("the failure's audit record", START, || async {
        let audit = s.admin.get(&failures).await;
        (!audit["items"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    s.member.wait_for_state(&id, "stopped", START).await;
}

#[tokio::test]
async fn twenty_sessions_created_at_once_all_run() {
    let s = setup(&[]).await;
    // Beyond the default quota of sessions per user.
    let org = s.admin.get("/api/v1/me").await["org_id"].as_str().unwrap().to_owned();
    let quotas = json!({"max_sessions": 20, "max_sessions_per_user": 20});
    let (status, body) = s.admin.call(reqwest::Method::PATCH, &format!("/api/v1/orgs/{org}"), Some(quotas)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let creates = (0..20).map(|_| {
        let member = s.member.clone();
        async move { member.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"template": "fixture"}))).await }
    });
    let created = futures::future::join_all(creates).await;
    let ids: Vec<String> = created
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    for id in &ids {
        s.member.wait_for_state(id, "running", START).await;
        assert_eq!(session_containers(id).len(), 1);
    }
    for id in &ids {
        s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    }
    for id in &ids {
        s.member.wait_for_state(id, "stopped", START).await;
    }
}

#[tokio::test]
async fn an_idle_session_hibernates_and_wakes() {
    let s = setup(&["--idle-timeout", "3"]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;
    s.member.wait_for_state(&id, "hibernated", Duration::from_secs(30)).await;
    let state = docker(&["inspect", "--format", "{{.State.Status}}", &format!("ss-{id}")]);
    assert_eq!(state, "exited", "hibernation keeps the container, stopped");
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::SERVICE_UNAVAILABLE);

    // A woken session gets a fresh idle window (its last activity predates the hibernation): left
    // alone, it hibernates again a whole idle timeout after it runs again, not at once.
    s.member.post(&format!("/api/v1/sessions/{id}/wake"), json!({})).await;
    let woken = s.member.wait_for_state(&id, "running", START).await;
    let hibernated = s.member.wait_for_state(&id, "hibernated", Duration::from_secs(30)).await;
    let quiet = timestamp(&hibernated["updated_at"]) - timestamp(&woken["updated_at"]);
    assert!(quiet >= chrono::Duration::seconds(3), "hibernated again {quiet} after waking");

    s.member.post(&format!("/api/v1/sessions/{id}/wake"), json!({})).await;
    s.member.wait_for_state(&id, "running", START).await;
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::OK);
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    s.member.wait_for_state(&id, "stopped", START).await;
}

fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

#[tokio::test]
async fn live_updates_follow_a_session_to_running_and_show_nothing_of_other_users() {
    let s = setup(&[]).await;
    s.admin.post("/api/v1/users", json!({"username": "other", "password": "password-123", "role": "member"})).await;
    let other = Api::login(&s.plane.api, "other", "password-123").await;
    // Both streams are open, so subscribed, before anything happens.
    let (mine, theirs) = tokio::join!(event_stream(&s.plane, &s.member.token), event_stream(&s.plane, &other.token));
    let id = running_session(&s.member).await;
    let reached_running =
        |seen: &[(String, Value)]| seen.iter().any(|(e, d)| e == "session" && d["state"] == "running");
    let mine = watch_events(mine, reached_running).await;
    let states: Vec<&str> =
        mine.iter().filter(|(e, _)| e == "session").filter_map(|(_, d)| d["state"].as_str()).collect();
    assert!(states.starts_with(&["scheduled"]), "{states:?}");
    assert_eq!(states.last(), Some(&"running"), "{states:?}");
    assert_eq!(mine[0].1["id"], id.as_str());

    // The other member's own session comes after all of the first one's on the bus: had any of
    // those reached their stream, it would come first.
    let (status, their_session) =
        other.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"template": "fixture"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{their_session}");
    let their_id = their_session["id"].clone();
    let theirs = watch_events(theirs, |seen| seen.iter().any(|(_, d)| d["id"] == their_id)).await;
    assert!(theirs.iter().all(|(_, d)| d["id"] == their_id), "another member saw events: {theirs:?}");

    // Theirs is still starting: the stop must not be refused because the agent moves it on meanwhile.
    let their_id = their_id.as_str().unwrap();
    for (api, id) in [(&s.member, id.as_str()), (&other, their_id)] {
        let (status, body) = api.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    s.member.wait_for_state(&id, "stopped", START).await;
    other.wait_for_state(their_id, "stopped", START).await;
}

#[tokio::test]
async fn rotating_an_agents_token_disconnects_it_at_once() {
    let s = setup(&[]).await;
    let agents = s.admin.get("/api/v1/agents").await;
    let agent = &agents["items"][0];
    assert_eq!(agent["status"], "online");
    assert!(agent["capacity"]["cpu_millis"].as_i64().unwrap() > 0, "{agent}");
    let id = agent["id"].as_str().unwrap();
    s.admin.post(&format!("/api/v1/agents/{id}/token"), json!({})).await;
    let agent = s.admin.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(agent["status"], "offline", "{agent}");
    // The old token no longer connects: the agent has tried it again, and stays offline.
    s.agent.wait_for_log("rejected the agent token", Duration::from_secs(30)).await;
    assert_eq!(s.admin.get(&format!("/api/v1/agents/{id}")).await["status"], "offline");
    let (status, _) =
        s.member.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"template": "fixture"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sessions = s.member.get("/api/v1/sessions?state=failed").await;
    assert_eq!(sessions["items"][0]["failure_reason"], "cannot schedule: no agent is online");
}

/// The session visits in the compliance report of the administrator's org, for the hour around now.
async fn session_visits(admin: &Api) -> Vec<Value> {
    let org_id = admin.get("/api/v1/me").await["org_id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now();
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (from, to) = (at(now - chrono::Duration::hours(1)), at(now + chrono::Duration::hours(1)));
    let report = admin.get(&format!("/api/v1/orgs/{org_id}/reports/compliance?from={from}&to={to}")).await;
    report["session_access"].as_array().cloned().unwrap_or_default()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens the fixture's WebSocket echo through the proxy and checks one round trip.
async fn echo_socket(plane: &ControlPlane, id: &str, cookie: &str) -> Result<Socket, (StatusCode, Value)> {
    let url = format!("{}/api/v1/http/{id}/ws", plane.session_origin(id).replace("http://", "ws://"));
    let mut socket = match session_websocket(&url, &[("cookie", cookie)]).await {
        Ok(socket) => socket,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
            return Err((response.status(), body["error"]["code"].clone()));
        }
        Err(err) => panic!("WebSocket to {id}: {err}"),
    };
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hello"));
    Ok(socket)
}

/// Waits until the proxy closes the socket, at most [`REVOKED_WITHIN`] after `since`; returns
/// how long after `since` it closed.
async fn socket_closed(mut socket: Socket, since: Instant, what: &str) -> Duration {
    let closed = tokio::time::timeout_at(since + REVOKED_WITHIN, async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: the tunnel is still open {REVOKED_WITHIN:?} later");
    since.elapsed()
}

async fn event_stream(plane: &ControlPlane, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(format!("{}/api/v1/events", plane.api)).bearer_auth(token).send().await.unwrap()
}

/// Waits until the server ends the event stream, at most [`REVOKED_WITHIN`] after `since`; returns
/// how long after `since` it ended.
async fn stream_ended(mut stream: reqwest::Response, since: Instant, what: &str) -> Duration {
    assert_eq!(stream.status(), StatusCode::OK, "{what}: the stream was open");
    let ended =
        tokio::time::timeout_at(since + REVOKED_WITHIN, async { while let Ok(Some(_)) = stream.chunk().await {} })
            .await;
    assert!(ended.is_ok(), "{what}: the event stream is still open {REVOKED_WITHIN:?} later");
    since.elapsed()
}

async fn user_id(api: &Api) -> String {
    api.get("/api/v1/me").await["id"].as_str().unwrap().to_owned()
}

/// The bound: a revoked user's connections close within this.
const REVOKED_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn disabling_a_user_closes_their_tunnel_and_event_stream_and_refuses_them_after() {
    let s = setup(&[]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;
    let socket = echo_socket(&s.plane, &id, &cookie).await.unwrap();
    let stream = event_stream(&s.plane, &s.member.token).await;

    let member_id = user_id(&s.member).await;
    let since = Instant::now();
    let reply = s
        .admin
        .call(reqwest::Method::PATCH, &format!("/api/v1/users/{member_id}"), Some(json!({"disabled": true})))
        .await;
    assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
    let (tunnel, events) =
        tokio::join!(socket_closed(socket, since, "disabled"), stream_ended(stream, since, "disabled"),);
    eprintln!("disabled: tunnel closed after {tunnel:?}, event stream after {events:?}");

    let page = proxied(&s.plane, &id, "/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert_eq!(page.json::<Value>().await.unwrap()["error"]["code"], "access_revoked");
    assert_eq!(echo_socket(&s.plane, &id, &cookie).await.err(), Some((StatusCode::FORBIDDEN, json!("access_revoked"))));
    assert_eq!(event_stream(&s.plane, &s.member.token).await.status(), StatusCode::UNAUTHORIZED);

    // Enabled again, the user signs in anew: the cookie from before stays retired.
    let enable = json!({"disabled": false});
    s.admin.call(reqwest::Method::PATCH, &format!("/api/v1/users/{member_id}"), Some(enable)).await;
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::FORBIDDEN);
    s.admin.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    s.admin.wait_for_state(&id, "stopped", START).await;
}

#[tokio::test]
async fn stopping_a_session_closes_its_tunnels_and_deleting_the_user_closes_their_event_stream() {
    let s = setup(&[]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;
    let socket = echo_socket(&s.plane, &id, &cookie).await.unwrap();
    let stream = event_stream(&s.plane, &s.member.token).await;

    let since = Instant::now();
    let (status, _) = s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let tunnel = socket_closed(socket, since, "session stopped").await;
    eprintln!("session stopped: tunnel closed after {tunnel:?}");
    s.member.wait_for_state(&id, "stopped", START).await;
    assert_eq!(echo_socket(&s.plane, &id, &cookie).await.err().map(|e| e.0), Some(StatusCode::NOT_FOUND));

    let member_id = user_id(&s.member).await;
    let since = Instant::now();
    let (status, body) = s.admin.call(reqwest::Method::DELETE, &format!("/api/v1/users/{member_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let events = stream_ended(stream, since, "user deleted").await;
    eprintln!("user deleted: event stream ended after {events:?}");
    assert_eq!(event_stream(&s.plane, &s.member.token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.member.call(reqwest::Method::GET, "/api/v1/sessions", None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn demoting_an_org_admin_cuts_the_event_stream_that_showed_everyone_s_sessions() {
    let s = setup(&[]).await;
    s.admin.post("/api/v1/users", json!({"username": "boss", "password": "password-123", "role": "org_admin"})).await;
    let boss = Api::login(&s.plane.api, "boss", "password-123").await;
    let stream = event_stream(&s.plane, &boss.token).await;
    let boss_id = user_id(&boss).await;
    let since = Instant::now();
    s.admin.call(reqwest::Method::PATCH, &format!("/api/v1/users/{boss_id}"), Some(json!({"role": "member"}))).await;
    let ended = stream_ended(stream, since, "demoted").await;
    eprintln!("demoted: event stream ended after {ended:?}");

    // Reconnected, the stream shows only the boss's own sessions now. Changes arrive in order: had
    // the member's session been visible, its events would come before those of the boss's session.
    let stream = event_stream(&s.plane, &boss.token).await;
    let theirs = running_session(&s.member).await;
    let seen = tokio::join!(
        watch_events(stream, |seen| seen.iter().any(|(e, d)| e == "session" && d["state"] == "running")),
        running_session(&boss),
    );
    let (seen, mine) = seen;
    let ids: Vec<&str> = seen.iter().filter_map(|(_, d)| d["id"].as_str()).collect();
    assert!(ids.iter().all(|id| *id == mine), "the demoted user saw {ids:?}; theirs is {theirs}");
    for (api, id) in [(&s.member, &theirs), (&boss, &mine)] {
        api.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
        api.wait_for_state(id, "stopped", START).await;
    }
}

#[tokio::test]
async fn tunnels_and_event_streams_are_capped_per_user() {
    let s = setup(&["--max-tunnels-per-user", "2", "--max-event-streams-per-user", "2"]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;
    let first = echo_socket(&s.plane, &id, &cookie).await.unwrap();
    let _second = echo_socket(&s.plane, &id, &cookie).await.unwrap();
    let refused = echo_socket(&s.plane, &id, &cookie).await.err();
    assert_eq!(refused, Some((StatusCode::TOO_MANY_REQUESTS, json!("too_many_tunnels"))));
    // Plain requests are not tunnels.
    assert_eq!(proxied(&s.plane, &id, "/", Some(&cookie)).await.status(), StatusCode::OK);
    drop(first);
    let reopened = eventually("a closed tunnel to free its place", Duration::from_secs(5), || async {
        echo_socket(&s.plane, &id, &cookie).await.ok()
    })
    .await;

    let _streams = [event_stream(&s.plane, &s.member.token).await, event_stream(&s.plane, &s.member.token).await];
    let third = event_stream(&s.plane, &s.member.token).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json::<Value>().await.unwrap()["error"]["code"], "too_many_event_streams");
    assert_eq!(event_stream(&s.plane, &s.admin.token).await.status(), StatusCode::OK, "the cap is per user");
    drop(reopened);
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    s.member.wait_for_state(&id, "stopped", START).await;
}

/// Opens the session through `replica`'s proxy with a ticket issued by `plane`; returns the cookie.
async fn open_on(api: &Api, plane: &ControlPlane, replica: &ControlPlane, id: &str) -> String {
    let url = api.post(&format!("/api/v1/sessions/{id}/connect"), json!({})).await["url"].as_str().unwrap().to_owned();
    let on_replica =
        url.replace(plane.sessions.trim_start_matches("http://"), replica.sessions.trim_start_matches("http://"));
    let redeemed = session_client().get(on_replica).send().await.unwrap();
    assert_eq!(redeemed.status(), StatusCode::SEE_OTHER, "the replica redeems the ticket");
    redeemed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn changes_made_through_another_replica_close_tunnels_and_streams_here_within_seconds() {
    let (postgres, url, database) = fresh_postgres_database().await;
    let mut s = setup(&["--database-url", &url]).await;
    // A second replica: the same store and keys, its own listeners and connections.
    let replica = ControlPlane::start(&s.plane.data_dir, &["--database-url", &url]).await;

    // A session stopped through the first replica loses its tunnel on this one. With the agent
    // away, the container (and the streamer's end of the tunnel) keeps running: only the proxy
    // can close the tunnel.
    let stopped = running_session(&s.member).await;
    let cookie = open_on(&s.member, &s.plane, &replica, &stopped).await;
    let socket = echo_socket(&replica, &stopped, &cookie).await.unwrap();
    s.agent.kill();
    let since = Instant::now();
    s.member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{stopped}"), None).await;
    let tunnel = socket_closed(socket, since, "session stopped through the other replica").await;
    eprintln!("session stopped through the other replica: tunnel closed after {tunnel:?}");
    let containers = session_containers(&stopped);
    assert!(containers.iter().any(|c| c.ends_with(" running")), "the container still runs: {containers:?}");
    s.agent.restart();
    let agent = s.admin.get("/api/v1/agents").await["items"][0]["name"].as_str().unwrap().to_owned();
    s.admin.wait_for_agent_online(&agent).await;

    let id = running_session(&s.member).await;
    let cookie = open_on(&s.member, &s.plane, &replica, &id).await;
    let socket = echo_socket(&replica, &id, &cookie).await.unwrap();
    let stream = event_stream(&replica, &s.member.token).await;

    let member_id = user_id(&s.member).await;
    let since = Instant::now();
    s.admin.call(reqwest::Method::PATCH, &format!("/api/v1/users/{member_id}"), Some(json!({"disabled": true}))).await;
    let (tunnel, events) = tokio::join!(
        socket_closed(socket, since, "disabled on the other replica"),
        stream_ended(stream, since, "disabled on the other replica"),
    );
    eprintln!("disabled on the other replica: tunnel closed after {tunnel:?}, event stream after {events:?}");
    let refused = eventually("the replica to refuse the cookie", REVOKED_WITHIN, || async {
        (proxied(&replica, &id, "/", Some(&cookie)).await.status() == StatusCode::FORBIDDEN).then_some(since.elapsed())
    })
    .await;
    eprintln!("disabled on the other replica: new requests refused after {refused:?}");

    for id in [&stopped, &id] {
        s.admin.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
        s.admin.wait_for_state(id, "stopped", START).await;
    }
    drop(replica);
    drop(s);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {database} WITH (FORCE)")))
        .execute(&postgres)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_change_closes_the_users_tunnels_and_retires_their_session_cookies() {
    let s = setup(&[]).await;
    let id = running_session(&s.member).await;
    let cookie = open(&s.member, &id).await;
    let socket = echo_socket(&s.plane, &id, &cookie).await.unwrap();

    let since = Instant::now();
    let change = json!({"current_password": "password-123", "new_password": "password-456"});
    let (status, body) = s.member.call(reqwest::Method::POST, "/api/v1/me/password", Some(change)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let tunnel = socket_closed(socket, since, "password changed").await;
    eprintln!("password changed: tunnel closed after {tunnel:?}");
    let old = proxied(&s.plane, &id, "/", Some(&cookie)).await;
    assert_eq!(old.status(), StatusCode::FORBIDDEN, "the old cookie is retired");
    assert_eq!(echo_socket(&s.plane, &id, &cookie).await.err(), Some((StatusCode::FORBIDDEN, json!("access_revoked"))));

    // Signed in again, the owner opens the session anew (cookies of the change's second are
    // refused too, so the first try may come too early).
    let member = Api::login(&s.plane.api, "member", "password-456").await;
    eventually("a new cookie to open the session", Duration::from_secs(5), || async {
        let cookie = open(&member, &id).await;
        echo_socket(&s.plane, &id, &cookie).await.ok()
    })
    .await;
    member.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    member.wait_for_state(&id, "stopped", START).await;
}

//! The listeners against slow and numerous clients: a header deadline and a connection cap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use streamspace_proto::hub::{ActualState, Capacity, CommandKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::TestApp;
use crate::hostile_agents::{Peer, eventually};

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);

/// Everything the server sends until it closes the connection, and how long that took.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    (received, started.elapsed())
}

/// An HTTP/1.1 connection that stays open between requests.
async fn keep_alive(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn healthz(sender: &mut SendRequest<Empty<Bytes>>) -> Option<u16> {
    let request = hyper::Request::get("/healthz").header("host", "localhost").body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off_but_websockets_stay_open() {
    let t = TestApp::with_config(|config| config.http_limits.header_read_timeout = HEADER_TIMEOUT).await;
    let served = t.listen().await;
    let admin = t.admin().await;
    let reply = t.post("/api/v1/agents", &admin, serde_json::json!({"name": "steady", "platform": "docker"})).await;
    let mut peer =
        Peer::hello(served.api, reply.body["token"].as_str().unwrap(), Capacity::default(), BTreeMap::new()).await;

    for addr in [served.api, served.sessions] {
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
        let (received, after) = read_until_closed(&mut slow).await;
        assert!(after >= HEADER_TIMEOUT.saturating_sub(Duration::from_millis(50)), "closed after {after:?}");
        let text = String::from_utf8_lossy(&received);
        assert!(received.is_empty() || text.starts_with("HTTP/1.1 408"), "{addr}: {text}");
        // A client that does send its headers in time is served.
        assert!(healthz(&mut keep_alive(addr).await).await.is_some(), "{addr} answers a prompt client");
    }

    // The agent's WebSocket outlived the header deadline several times over and still works: a
    // report about a session the control plane does not know is answered with a stop.
    let unknown = Uuid::now_v7();
    peer.report(unknown, ActualState::Hibernated).await;
    peer.command(CommandKind::Stop, unknown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_and_the_others_keep_working() {
    let t = TestApp::with_config(|config| config.http_limits.max_connections = 3).await;
    let served = t.listen().await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut sender = keep_alive(served.api).await;
        assert_eq!(healthz(&mut sender).await, Some(200));
        open.push(sender);
    }

    let mut refused = TcpStream::connect(served.api).await.unwrap();
    let _ = refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    let (received, _) = read_until_closed(&mut refused).await;
    assert!(received.is_empty(), "{}", String::from_utf8_lossy(&received));
    // The other listener has its own cap.
    let mut sessions = keep_alive(served.sessions).await;
    assert!(healthz(&mut sessions).await.is_some());

    for sender in &mut open {
        assert_eq!(healthz(sender).await, Some(200), "an open connection keeps working");
    }
    // Closing one makes room for another.
    drop(open.pop());
    let metrics = eventually("a free place under the cap", || async {
        let mut sender = keep_alive(served.api).await;
        let request = hyper::Request::get("/metrics").header("host", "localhost").body(Empty::new()).unwrap();
        let response = sender.send_request(request).await.ok()?;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    })
    .await;
    assert!(metrics.contains("http_connections_refused_total{listener=\"api\"}"), "{metrics}");
}

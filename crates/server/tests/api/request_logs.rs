//! Request log levels: the API origin logs each request at INFO; the session origin, which carries
//! every request of every streamer, at DEBUG only.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use tracing::Level;

use crate::harness::TestApp;

/// The log lines a test subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// How many "request finished" lines one request to `router` writes at `level`.
async fn finished_lines<S>(service: S, uri: &str, level: Level) -> usize
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible>,
{
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_writer(move || writer.clone()).finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    service.oneshot(request).await.unwrap();
    drop(guard);
    captured.text().matches("request finished").count()
}

#[tokio::test]
async fn the_session_origin_logs_requests_at_debug_and_the_api_at_info() {
    let t = TestApp::new().await;
    let sessions = || streamspace_server::proxy::service(t.app.clone());
    // A host that names no session: answered by the proxy without a store round trip.
    let session_uri = "http://nosession.localhost:8001/api/v1/http/x/";
    assert_eq!(finished_lines(sessions(), session_uri, Level::INFO).await, 0);
    assert_eq!(finished_lines(sessions(), session_uri, Level::DEBUG).await, 1);
    assert_eq!(finished_lines(t.router.clone(), "/healthz", Level::INFO).await, 1);
}

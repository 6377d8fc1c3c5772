//! The streamer connections of one client connection.
//!
//! A client connection's requests nearly always go to one session, one after another, so each client
//! connection keeps its own streamer connections rather than checking one out of a shared pool per
//! request, and those connections are driven by the client connection's own task: a request, its
//! response and the next request pass between the two connections without waking another task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per client connection: more than one only when an HTTP/2 client sends
/// requests side by side.
const MAX_IDLE: usize = 8;

type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a request did not reach the streamer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("endpoint {0:?} is not an http:// address")]
    Endpoint(Arc<str>),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("connecting failed: {0}")]
    Connect(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// The streamer connections of one client connection, shared by its requests.
#[derive(Clone)]
pub struct Upstreams(Arc<Shared>);

struct Shared {
    idle: Mutex<Vec<Idle>>,
    /// Where new connections go to be driven; `None` spawns a task per connection.
    driver: Option<Arc<Inbox>>,
}

struct Idle {
    endpoint: Arc<str>,
    sender: SendRequest<Body>,
}

impl Upstreams {
    /// Connections driven by the task that polls the returned [`Driver`].
    pub fn driven() -> (Upstreams, Driver) {
        let inbox = Arc::new(Inbox::default());
        let driver = Driver { inbox: Arc::downgrade(&inbox), running: FuturesUnordered::new() };
        (Upstreams(Arc::new(Shared { idle: Mutex::default(), driver: Some(inbox) })), driver)
    }

    /// Connections driven by tasks of their own, for a caller that has no task to lend.
    pub fn spawned() -> Upstreams {
        Upstreams(Arc::new(Shared { idle: Mutex::default(), driver: None }))
    }

    /// Sends `request` (its URI in origin form) to the streamer at `endpoint` (`http://host:port`), on an
    /// idle connection when there is one. A request that a kept-alive connection refused before writing
    /// it (the streamer closed the connection meanwhile) is sent once more on a new connection.
    pub async fn send(
        &self,
        endpoint: &Arc<str>,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if !request.headers().contains_key(header::HOST) {
            let authority = authority(endpoint)?;
            if let Ok(host) = HeaderValue::from_str(authority) {
                request.headers_mut().insert(header::HOST, host);
            }
        }
        let mut reused = true;
        loop {
            let mut sender = match self.take_idle(endpoint) {
                Some(sender) => sender,
                None => {
                    reused = false;
                    // Boxed: connecting is rare, and its future would make every request's larger.
                    Box::pin(self.connect(endpoint)).await?
                }
            };
            let response = sender.try_send_request(request);
            self.keep(endpoint, sender);
            match response.await {
                Ok(response) => return Ok(response),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => {
                        request = unsent;
                        reused = false;
                    }
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }

    fn take_idle(&self, endpoint: &str) -> Option<SendRequest<Body>> {
        let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|connection| !connection.sender.is_closed());
        let at =
            idle.iter().position(|connection| &*connection.endpoint == endpoint && connection.sender.is_ready())?;
        Some(idle.swap_remove(at).sender)
    }

    fn keep(&self, endpoint: &Arc<str>, sender: SendRequest<Body>) {
        let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle { endpoint: endpoint.clone(), sender });
        }
    }

    async fn connect(&self, endpoint: &Arc<str>) -> Result<SendRequest<Body>, UpstreamError> {
        let address = authority(endpoint)?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)??;
        tcp.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(tcp)).await?;
        self.drive(Box::pin(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "streamer connection ended with an error");
            }
        }));
        sender.ready().await?;
        Ok(sender)
    }

    fn drive(&self, connection: ConnectionTask) {
        match &self.0.driver {
            Some(inbox) => inbox.push(connection),
            None => {
                tokio::spawn(connection);
            }
        }
    }
}

/// The driver ends once the last sender is gone; with no connection left to wake it, it is woken here.
impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(inbox) = &self.driver {
            inbox.waker.wake();
        }
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn authority(endpoint: &Arc<str>) -> Result<&str, UpstreamError> {
    endpoint
        .strip_prefix("http://")
        .filter(|authority| !authority.is_empty() && !authority.contains('/'))
        .ok_or_else(|| UpstreamError::Endpoint(endpoint.clone()))
}

#[derive(Default)]
struct Inbox {
    arrived: Mutex<Vec<ConnectionTask>>,
    /// Set after a push: the driver, polled several times per request, locks `arrived` only then.
    any: AtomicBool,
    waker: AtomicWaker,
}

impl Inbox {
    fn push(&self, connection: ConnectionTask) {
        self.arrived.lock().unwrap_or_else(|p| p.into_inner()).push(connection);
        self.any.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn take(&self) -> Vec<ConnectionTask> {
        if !self.any.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.arrived.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Drives the streamer connections of one client connection. It ends once the [`Upstreams`] are gone
/// and every connection has ended: a connection whose last sender is dropped ends when its exchange
/// does, and an upgraded one once it has handed its socket to the tunnel.
pub struct Driver {
    inbox: Weak<Inbox>,
    running: FuturesUnordered<ConnectionTask>,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let open = match self.inbox.upgrade() {
            Some(inbox) => {
                inbox.waker.register(cx.waker());
                self.running.extend(inbox.take());
                true
            }
            None => false,
        };
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
        if open || !self.running.is_empty() { Poll::Pending } else { Poll::Ready(()) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A streamer that answers every request with `ok`, counting its connections; with `close`, it
    /// closes each connection after one answer, as it says in that answer.
    async fn streamer(close: bool) -> (Arc<str>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap()).into();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while let Ok(read @ 1..) = tcp.read(&mut buffer).await {
                        request.extend_from_slice(&buffer[..read]);
                        while let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
                            request.drain(..end + 4);
                            let answer: &[u8] = if close {
                                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                            } else {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                            };
                            if tcp.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (endpoint, accepted)
    }

    async fn get(upstreams: &Upstreams, endpoint: &Arc<str>) -> String {
        let request = Request::get("/x").body(Body::empty()).unwrap();
        let response = upstreams.send(endpoint, request).await.unwrap();
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn requests_of_one_client_connection_share_one_streamer_connection() {
        let (endpoint, accepted) = streamer(false).await;
        let (upstreams, driver) = Upstreams::driven();
        let driving = tokio::spawn(driver);
        for _ in 0..5 {
            assert_eq!(get(&upstreams, &endpoint).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        drop(upstreams);
        tokio::time::timeout(Duration::from_secs(5), driving).await.expect("the driver ends").unwrap();
    }

    #[tokio::test]
    async fn a_connection_the_streamer_closed_is_replaced() {
        let (endpoint, accepted) = streamer(true).await;
        let upstreams = Upstreams::spawned();
        for _ in 0..3 {
            assert_eq!(get(&upstreams, &endpoint).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn each_endpoint_gets_its_own_connection() {
        let (first, first_accepted) = streamer(false).await;
        let (second, second_accepted) = streamer(false).await;
        let upstreams = Upstreams::spawned();
        for endpoint in [&first, &second, &first, &second] {
            assert_eq!(get(&upstreams, endpoint).await, "ok");
        }
        assert_eq!((first_accepted.load(Ordering::SeqCst), second_accepted.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn a_streamer_that_does_not_listen_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint: Arc<str> = format!("http://{}", listener.local_addr().unwrap()).into();
        drop(listener);
        let request = Request::get("/x").body(Body::empty()).unwrap();
        let error = Upstreams::spawned().send(&endpoint, request).await.unwrap_err();
        assert!(matches!(error, UpstreamError::Connect(_)), "{error}");
    }

    #[test]
    fn only_plain_http_endpoints_have_an_address() {
        let ok: Arc<str> = "http://10.0.0.7:8080".into();
        assert_eq!(authority(&ok).unwrap(), "10.0.0.7:8080");
        for bad in ["https://10.0.0.7:8080", "http://", "http://10.0.0.7:8080/x", "10.0.0.7:8080"] {
            assert!(authority(&bad.into()).is_err(), "{bad}");
        }
    }
}

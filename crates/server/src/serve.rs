//! Serving one listener: HTTP/1 and HTTP/2 with upgrades (WebSockets), a deadline for request
//! headers and a cap on open connections, so that slow or numerous clients cannot exhaust the
//! control plane's memory or file descriptors.

mod head_deadline;
mod together;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// After a failed accept (e.g. out of file descriptors), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A client must send a request's complete header within this time; it also bounds how long an
    /// idle kept-alive connection waits for its next request. Upgraded connections have no deadline.
    pub header_read_timeout: Duration,
    /// Open connections on this listener (upgraded ones included); more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_read_timeout: Duration::from_secs(10), max_connections: 10_000 }
    }
}

/// Serves every connection on `listener` with what `open` makes of its peer's address (the API's
/// router, or the session proxy) until `shutdown` resolves, then waits for requests in flight. `name`
/// labels the metrics.
///
/// With `tls`, connections that begin with a TLS handshake are served over TLS and the others (plain
/// HTTP to the same port) get only a redirect to `https://`.
pub async fn serve<S>(
    listener: TcpListener,
    open: impl Fn(SocketAddr) -> S,
    limits: Limits,
    name: &'static str,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    // Each connection brings its own timer for it (see `Connection::serve`). A request is answered even
    // if its client shuts its side down meanwhile (half-close): hyper would otherwise read the socket
    // while every request is in flight to notice that, setting aside a fresh read buffer each time
    // (the last is still shared with the request's fields): 2.5% of a proxied request's instructions.
    // A client that left is noticed when its answer is written (an event stream's keep-alive writes
    // one at least every 15 s), and a handler is not cut off halfway through its work.
    builder.http1().header_read_timeout(limits.header_read_timeout).half_close(true);
    // HTTP/2 (over TLS) announces no extended CONNECT (RFC 8441), so browsers open WebSockets on an
    // HTTP/1.1 connection, the upgrade both the session proxy and the hub speak.
    // Each connection holds a receiver until it ends; the sender then learns when the last has.
    let (shutting_down, watching) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(listener = name, error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Dropping the stream closes it before anything is read.
            metrics::counter!("streamspace_http_connections_refused_total", "listener" => name).increment(1);
            continue;
        };
        record_open(&permits, limits.max_connections, name);
        // No Nagle delay: a small message (an input event, a frame acknowledgement) must not wait
        // behind unacknowledged data.
        let _ = tcp.set_nodelay(true);
        let io = Counted { tcp, permit: Some(permit), permits: permits.clone(), limits, name };
        let service = open(peer);
        let connection = Connection {
            builder: builder.clone(),
            header_read_timeout: limits.header_read_timeout,
            shutdown: watching.clone(),
            name,
            peer,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.serve(io, service).await,
                Some(tls) => connection.serve_tls(&tls, io, service, limits.header_read_timeout).await,
            }
        });
    }
    drop((listener, watching));
    shutting_down.send_replace(());
    shutting_down.closed().await;
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// One accepted connection, served in a task of its own.
struct Connection {
    builder: Builder<TokioExecutor>,
    header_read_timeout: Duration,
    /// Changes when the listener shuts down: the connection then finishes its request in flight.
    shutdown: tokio::sync::watch::Receiver<()>,
    name: &'static str,
    peer: SocketAddr,
}

impl Connection {
    /// Serves `service` on `io` to the end.
    async fn serve<I, S>(self, io: I, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let mut builder = self.builder;
        builder.http1().timer(head_deadline::HeadDeadline::new(self.header_read_timeout));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        // Held until the connection ends, so that shutting down waits for it.
        let open = self.shutdown.clone();
        let mut shutdown = self.shutdown;
        let shutdown = async move {
            let _ = shutdown.changed().await;
        };
        let served = together::Together::new(connection, shutdown).await;
        drop(open);
        if let Err(err) = served {
            tracing::debug!(listener = self.name, peer = %self.peer, error = %err, "connection ended with an error");
        }
    }

    /// A TLS handshake (within the header deadline) then `service`; plain HTTP gets the redirect.
    async fn serve_tls<S>(self, tls: &crate::tls::Tls, io: Counted, service: S, deadline: Duration)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let mut first = [0u8; 1];
        match tokio::time::timeout(deadline, io.tcp.peek(&mut first)).await {
            Ok(Ok(1..)) if first[0] == TLS_HANDSHAKE => {}
            Ok(Ok(1..)) => {
                return self.serve(io, hyper::service::service_fn(redirect_to_https)).await;
            }
            _ => return,
        }
        match tokio::time::timeout(deadline, tls.acceptor.accept(io)).await {
            Ok(Ok(stream)) => self.serve(stream, service).await,
            Ok(Err(err)) => {
                tracing::debug!(listener = self.name, peer = %self.peer, error = %err, "TLS handshake failed")
            }
            Err(_) => tracing::debug!(listener = self.name, peer = %self.peer, "TLS handshake timed out"),
        }
    }
}

/// Plain HTTP on a TLS port: the same URL over HTTPS (the port is the same). Only the client that
/// sent the `Host` is sent there.
async fn redirect_to_https(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    use axum::http::{StatusCode, header};
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok());
    let path = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let location = host.and_then(|host| header::HeaderValue::from_str(&format!("https://{host}{path}")).ok());
    let mut response = Response::new(Body::empty());
    match location {
        Some(location) => {
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(header::LOCATION, location);
        }
        None => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    Ok(response)
}

/// Serves every connection with a clone of the tower `service` (a router), each request carrying its
/// peer's address as `ConnectInfo<SocketAddr>`.
pub fn with_connect_info<S: Clone>(service: S) -> impl Fn(SocketAddr) -> TowerToHyperService<WithConnectInfo<S>> {
    move |peer| TowerToHyperService::new(WithConnectInfo { service: service.clone(), peer })
}

#[derive(Clone)]
pub struct WithConnectInfo<S> {
    service: S,
    peer: SocketAddr,
}

impl<S> tower::Service<Request<Incoming>> for WithConnectInfo<S>
where
    S: tower::Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> S::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.service.call(request)
    }
}

fn record_open(permits: &Semaphore, max_connections: usize, name: &'static str) {
    let open = max_connections.saturating_sub(permits.available_permits());
    metrics::gauge!("streamspace_http_connections_open", "listener" => name).set(open as f64);
}

/// A connection holding its place under the cap for as long as it is open: an upgraded
/// connection (a WebSocket) outlives the HTTP exchange but keeps this stream, so it still counts.
struct Counted {
    tcp: TcpStream,
    permit: Option<OwnedSemaphorePermit>,
    permits: Arc<Semaphore>,
    limits: Limits,
    name: &'static str,
}

impl Drop for Counted {
    fn drop(&mut self) {
        drop(self.permit.take());
        record_open(&self.permits, self.limits.max_connections, self.name);
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::{Notify, oneshot};

    use super::*;

    /// A listener serving until `shutdown` with a service that answers "done" once it is told to: each
    /// request notifies the first `Notify`, then waits for the second.
    fn serve_slowly(
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (tokio::task::JoinHandle<()>, Arc<Notify>, Arc<Notify>) {
        let (entered, answer) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (arrived, answering) = (entered.clone(), answer.clone());
        let slow = hyper::service::service_fn(move |_: Request<Incoming>| {
            let (arrived, answering) = (arrived.clone(), answering.clone());
            async move {
                arrived.notify_one();
                answering.notified().await;
                Ok::<_, Infallible>(Response::new(Body::from("done")))
            }
        });
        let open = move |_| slow.clone();
        let serving = tokio::spawn(serve(listener, open, Limits::default(), "test", None, shutdown));
        (serving, entered, answer)
    }

    #[tokio::test]
    async fn shutting_down_finishes_the_request_in_flight_and_closes_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (serving, entered, answer) = serve_slowly(listener, shutdown);

        let mut idle = TcpStream::connect(address).await.unwrap();
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        entered.notified().await;
        stop.send(()).unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
        assert_eq!(closed.expect("the idle connection is closed").unwrap(), 0);
        assert!(!serving.is_finished(), "shut down, but a request is still in flight");

        answer.notify_one();
        let mut answered = String::new();
        busy.read_to_string(&mut answered).await.unwrap();
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.ends_with("done"), "the whole answer, then the connection closes: {answered}");
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("serving ends").unwrap();
    }

    #[tokio::test]
    async fn a_client_that_shuts_its_side_down_after_its_request_still_gets_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (_serving, entered, answer) = serve_slowly(listener, std::future::pending());

        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        entered.notified().await;
        client.shutdown().await.unwrap();
        // The end of the client's side is there to be read before the answer is ready.
        tokio::task::yield_now().await;
        answer.notify_one();
        let mut answered = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answered)).await.unwrap().unwrap();
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.ends_with("done"), "{answered}");
    }
}

//! The streamer connections of one client connection, and the HTTP/1.1 exchanges on them.
//!
//! A client connection's requests nearly always go to one session, one after another, so each client
//! connection keeps its own streamer connections rather than checking one out of a shared pool per
//! request. A request is written and its answer's head read in the request's own future, and the
//! answer's body is read as the client connection writes it out: nothing else is woken in between.
//! The wire format is [`super::wire`]'s. hyper's client, which this replaces, handed every request
//! and response between the request's future and a connection task of its own; that handover was
//! about a third of the proxy's instructions per request (ADR 0039).

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::wire::{
    self, Chunked, Decoded, Framing, Parsed, Replacements, RequestBody, RequestHead, ResponseHead, WireError,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per client connection: more than one only when an HTTP/2 client sends
/// requests side by side.
const MAX_IDLE: usize = 8;
/// How long a connection may have been idle before it is looked at (one read that should find nothing)
/// before its next request. Streamers close idle connections after tens of seconds, and some say why
/// first (a 408), which must not be taken for the next request's answer.
const LOOK_AFTER_IDLE: Duration = Duration::from_secs(1);
/// Room made in a connection's read buffer before each read: a media file or a script arrives in
/// pieces this large.
const READ_SIZE: usize = 32 * 1024;
/// A body up to this long that has not all arrived with its head is waited for before the answer goes
/// on, so that head and body reach the client in one write and one packet rather than two: streamers
/// often write the two separately (asyncio's, for one), and the client can do nothing with the head of
/// so small an answer before its body anyway. nginx's `postpone_output` holds small answers back the
/// same way.
const WHOLE_BODY: u64 = 16 * 1024;

/// Why a request did not reach the streamer, or its answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("endpoint {0:?} is not an http:// address")]
    Endpoint(Arc<str>),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("connecting failed: {0}")]
    Connect(std::io::Error),
    #[error("the exchange failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the streamer closed the connection before it answered")]
    Closed,
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the client's request body failed: {0}")]
    Body(axum::Error),
    #[error("the client's request body did not match its stated length")]
    BodyLength,
}

/// The streamer connections of one client connection, shared by its requests.
#[derive(Clone, Default)]
pub struct Upstreams(Arc<Shared>);

#[derive(Default)]
struct Shared {
    idle: Mutex<Vec<StreamerConnection>>,
}

/// One connection to a streamer: its socket, what was read off it past the last answer, and the
/// buffer each request head is written into.
struct StreamerConnection {
    endpoint: Arc<str>,
    tcp: TcpStream,
    read: BytesMut,
    head: Vec<u8>,
    /// When it last went back to its client connection's idle ones.
    idle_since: Instant,
}

/// A streamer's answer. After a 101 to an upgrade, `switched` is the connection, now carrying the
/// protocol it switched to.
pub struct Answer {
    pub response: Response<StreamerBody>,
    pub switched: Option<Switched>,
}

impl Answer {
    fn new(status: StatusCode, headers: HeaderMap, body: StreamerBody, switched: Option<Switched>) -> Answer {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Answer { response, switched }
    }
}

impl Upstreams {
    /// Sends `request` for `target` (in origin form), with the fields `replacements` gives in place of
    /// its own, to the streamer at `endpoint` (`http://host:port`), on an
    /// idle connection when there is one. An idempotent request with no body that a kept-alive
    /// connection failed before any answer came (the streamer closed the connection meanwhile) is sent
    /// once more on a new connection. `upgrade` says the request asks to switch protocols. The request
    /// is borrowed, its body taken: a request moved from future to future is copied each time.
    pub async fn send(
        &self,
        endpoint: &Arc<str>,
        target: &str,
        request: &mut Request<Body>,
        replacements: &Replacements,
        upgrade: bool,
    ) -> Result<Answer, UpstreamError> {
        let headers = request.headers_mut();
        if !headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority(endpoint)?)
        {
            headers.insert(header::HOST, host);
        }
        // The head states the body's framing itself.
        headers.remove(header::CONTENT_LENGTH);
        let body = std::mem::take(request.body_mut());
        let ended = body.is_end_stream();
        let framing = RequestBody::of(request.method(), if ended { Some(0) } else { body.size_hint().exact() });
        let mut body = (!ended).then_some(body);
        let request =
            Outgoing { method: request.method(), fields: request.headers(), target, replacements, framing, upgrade };
        let (mut connection, mut reused) = match self.take_idle(endpoint, request.replayable()) {
            Some(idle) => (idle, true),
            // Boxed: connecting is rare, and its future would make every request's larger.
            None => (Box::pin(connect(endpoint)).await?, false),
        };
        loop {
            match connection.exchange(&request, body.take()).await {
                Ok(head) => return Ok(self.answer(connection, head)),
                Err(_) if reused && request.replayable() && connection.read.is_empty() => {
                    connection = Box::pin(connect(endpoint)).await?;
                    reused = false;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// An idle connection to `endpoint`. One idle for a while, or taken for a request that could not be
    /// sent again, must be open still: a read of it must find nothing there yet. Any
    /// other request that a connection the streamer closed refuses is sent again on a new one.
    fn take_idle(&self, endpoint: &str, replayable: bool) -> Option<StreamerConnection> {
        let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let at = idle.iter().position(|connection| &*connection.endpoint == endpoint)?;
            let connection = idle.swap_remove(at);
            let fresh = replayable && connection.idle_since.elapsed() < LOOK_AFTER_IDLE;
            if fresh || connection.is_open() {
                return Some(connection);
            }
        }
    }

    fn answer(&self, connection: StreamerConnection, head: ResponseHead) -> Answer {
        let ResponseHead { status, headers, framing, keep_alive } = head;
        let left = match framing {
            Framing::Switched => {
                let switched = Some(Switched::from(connection));
                return Answer::new(status, headers, StreamerBody::ended(), switched);
            }
            Framing::Empty => Left::Length(0),
            Framing::Length(length) => Left::Length(length),
            Framing::Chunked => Left::Chunked(Chunked::Size),
            Framing::UntilClose => Left::UntilClose,
        };
        Answer::new(status, headers, StreamerBody::reading(connection, left, keep_alive, &self.0), None)
    }
}

/// Keeps `connection` for the next request of its client connection, if that connection is still
/// there, and the streamer sent nothing past its answer (which would be answering a request not made).
fn give_back(home: &Weak<Shared>, connection: StreamerConnection) {
    let Some(shared) = home.upgrade() else { return };
    if !connection.read.is_empty() {
        return;
    }
    let mut idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner());
    if idle.len() < MAX_IDLE {
        idle.push(StreamerConnection { idle_since: Instant::now(), ..connection });
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn authority(endpoint: &Arc<str>) -> Result<&str, UpstreamError> {
    endpoint
        .strip_prefix("http://")
        .filter(|authority| !authority.is_empty() && !authority.contains('/'))
        .ok_or_else(|| UpstreamError::Endpoint(endpoint.clone()))
}

async fn connect(endpoint: &Arc<str>) -> Result<StreamerConnection, UpstreamError> {
    let address = authority(endpoint)?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    tcp.set_nodelay(true).map_err(UpstreamError::Connect)?;
    Ok(StreamerConnection {
        endpoint: endpoint.clone(),
        tcp,
        read: BytesMut::new(),
        head: Vec::new(),
        idle_since: Instant::now(),
    })
}

/// What [`StreamerConnection::exchange`] sends.
struct Outgoing<'a> {
    method: &'a Method,
    fields: &'a HeaderMap,
    target: &'a str,
    replacements: &'a Replacements,
    framing: RequestBody,
    upgrade: bool,
}

impl Outgoing<'_> {
    /// Whether the request can be sent again: it has no body to have been used up, and sending it twice
    /// means what sending it once does (RFC 9110 9.2.2), as the streamer may have acted on it before the
    /// connection failed.
    fn replayable(&self) -> bool {
        let idempotent = self.method.is_idempotent();
        idempotent && matches!(self.framing, RequestBody::None | RequestBody::Length(0))
    }
}

impl StreamerConnection {
    /// Whether the connection is open and the streamer has sent nothing on it since its last answer.
    fn is_open(&self) -> bool {
        matches!(self.tcp.try_read(&mut [0; 1]), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Writes the request, then reads until its answer's head is whole; the body is left in `read`.
    async fn exchange(&mut self, request: &Outgoing<'_>, body: Option<Body>) -> Result<ResponseHead, UpstreamError> {
        let Outgoing { method, fields, target, replacements, framing, upgrade } = request;
        let head = RequestHead { method, target, fields, replacements, body: *framing };
        self.head.clear();
        wire::write_request_head(&mut self.head, &head);
        self.tcp.write_all(&self.head).await?;
        if let Some(body) = body {
            write_body(&mut self.tcp, body, *framing).await?;
        }
        let mut scanned = 0;
        loop {
            match wire::read_response_head(&mut self.read, &mut scanned, method, *upgrade)? {
                Parsed::Complete(head) => {
                    if let Framing::Length(length @ ..=WHOLE_BODY) = head.framing {
                        self.read_body_of(length).await;
                    }
                    return Ok(head);
                }
                Parsed::Interim => {}
                Parsed::Partial => {
                    if std::future::poll_fn(|cx| poll_read_more(&mut self.tcp, &mut self.read, cx)).await? == 0 {
                        return Err(UpstreamError::Closed);
                    }
                }
            }
        }
    }

    /// Reads until `read` holds a body of `length`. An error or the end of the stream before that is left
    /// for the body to find and report, as it would have without the wait.
    async fn read_body_of(&mut self, length: u64) {
        while (self.read.len() as u64) < length {
            let Ok(1..) = std::future::poll_fn(|cx| poll_read_more(&mut self.tcp, &mut self.read, cx)).await else {
                break;
            };
        }
    }
}

/// Streams a request body to the streamer as `framing` says (a stated length is held to).
async fn write_body(tcp: &mut TcpStream, mut body: Body, framing: RequestBody) -> Result<(), UpstreamError> {
    let mut left = match framing {
        RequestBody::Length(length) => Some(length),
        RequestBody::None | RequestBody::Chunked => None,
    };
    while let Some(frame) = body.frame().await {
        // Trailers are not passed on.
        let Ok(data) = frame.map_err(UpstreamError::Body)?.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        match &mut left {
            Some(left) => {
                *left = left.checked_sub(data.len() as u64).ok_or(UpstreamError::BodyLength)?;
                tcp.write_all(&data).await?;
            }
            None => {
                tcp.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await?;
                tcp.write_all(&data).await?;
                tcp.write_all(b"\r\n").await?;
            }
        }
    }
    match left {
        Some(0) => Ok(()),
        Some(_) => Err(UpstreamError::BodyLength),
        None => Ok(tcp.write_all(b"0\r\n\r\n").await?),
    }
}

/// Reads what the socket has into `read`; 0 is the end of the stream. Through `AsyncRead`, which
/// takes a short read to mean the socket is drained (`try_read_buf` would leave it marked readable,
/// and the next exchange would pay a read that finds nothing).
fn poll_read_more(tcp: &mut TcpStream, read: &mut BytesMut, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    if read.capacity() - read.len() < READ_SIZE / 4 {
        read.reserve(READ_SIZE);
    }
    tokio_util::io::poll_read_buf(Pin::new(tcp), cx, read)
}

/// What is left of an answer's body to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// A streamer's answer body, read off its connection as the client takes it. Once read to its end the
/// connection goes back to its client connection's idle ones; a body dropped before its end closes it.
pub struct StreamerBody {
    connection: Option<StreamerConnection>,
    left: Left,
    keep_alive: bool,
    home: Weak<Shared>,
}

impl StreamerBody {
    fn ended() -> StreamerBody {
        StreamerBody { connection: None, left: Left::Done, keep_alive: false, home: Weak::new() }
    }

    /// A body still on `connection`; one with nothing left gives the connection back at once.
    fn reading(connection: StreamerConnection, left: Left, keep_alive: bool, home: &Arc<Shared>) -> StreamerBody {
        let mut body = StreamerBody { connection: Some(connection), left, keep_alive, home: Arc::downgrade(home) };
        if left == Left::Length(0) {
            body.finish();
        }
        body
    }

    /// The body has been read to its end: its connection goes back if it may carry another request.
    /// hyper's server does not poll a body again once its stated length has been handed over.
    fn finish(&mut self) {
        self.left = Left::Done;
        if let Some(connection) = self.connection.take().filter(|_| self.keep_alive) {
            give_back(&self.home, connection);
        }
    }
}

/// The next piece of a body of which `left` is left, in what was `read`, if there is one yet.
fn next(left: &mut Left, read: &mut BytesMut) -> Result<Next, WireError> {
    Ok(match left {
        Left::Done | Left::Length(0) => Next::End,
        Left::Length(_) | Left::UntilClose if read.is_empty() => Next::Read,
        Left::Length(left) => {
            let take = (*left).min(read.len() as u64);
            *left -= take;
            Next::Data(read.split_to(take as usize).freeze())
        }
        Left::UntilClose => Next::Data(read.split().freeze()),
        Left::Chunked(state) => match state.decode(read)? {
            Decoded::Data(data) => Next::Data(data),
            Decoded::More => Next::Read,
            Decoded::End => Next::End,
        },
    })
}

enum Next {
    Data(Bytes),
    Read,
    End,
}

fn invalid(err: WireError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, err)
}

impl HttpBody for StreamerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(connection) = this.connection.as_mut() else { return Poll::Ready(None) };
            match next(&mut this.left, &mut connection.read).map_err(invalid)? {
                Next::Data(data) => {
                    if this.left == Left::Length(0) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Next::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Next::Read => {
                    if ready!(poll_read_more(&mut connection.tcp, &mut connection.read, cx))? > 0 {
                        continue;
                    }
                    if this.left == Left::UntilClose {
                        this.keep_alive = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    this.connection = None;
                    let cut =
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the streamer's answer was cut short");
                    return Poll::Ready(Some(Err(cut)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.left, Left::Done | Left::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Left::Done => SizeHint::with_exact(0),
            Left::Length(left) => SizeHint::with_exact(left),
            Left::Chunked(_) | Left::UntilClose => SizeHint::default(),
        }
    }
}

/// A streamer connection after a 101: what was read past the answer's head comes first, then the socket.
pub struct Switched {
    tcp: TcpStream,
    early: Bytes,
}

impl From<StreamerConnection> for Switched {
    fn from(connection: StreamerConnection) -> Switched {
        Switched { tcp: connection.tcp, early: connection.read.freeze() }
    }
}

impl AsyncRead for Switched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.early.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let take = self.early.len().min(buf.remaining());
        buf.put_slice(&self.early[..take]);
        self.early.advance(take);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Switched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// A streamer that answers every request head with `answer`, counting its connections; with `close`,
    /// it closes each connection after one answer.
    async fn streamer(answer: &'static [u8], close: bool) -> (Arc<str>, Arc<AtomicUsize>) {
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

    async fn answer(upstreams: &Upstreams, endpoint: &Arc<str>) -> Answer {
        let mut request = Request::get("/x").body(Body::empty()).unwrap();
        upstreams.send(endpoint, "/x", &mut request, &Replacements::default(), false).await.unwrap()
    }

    async fn send(upstreams: &Upstreams, endpoint: &Arc<str>) -> Result<String, std::io::Error> {
        let answer = answer(upstreams, endpoint).await;
        let body = answer.response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(upstreams: &Upstreams, endpoint: &Arc<str>) -> String {
        send(upstreams, endpoint).await.unwrap()
    }

    #[tokio::test]
    async fn requests_of_one_client_connection_share_one_streamer_connection() {
        let (endpoint, accepted) = streamer(OK, false).await;
        let upstreams = Upstreams::default();
        for _ in 0..5 {
            assert_eq!(get(&upstreams, &endpoint).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_read_to_its_stated_length_gives_its_connection_back_at_once() {
        let (endpoint, accepted) = streamer(OK, false).await;
        let upstreams = Upstreams::default();
        for _ in 0..3 {
            let mut request = Request::get("/x").body(Body::empty()).unwrap();
            let mut body = upstreams
                .send(&endpoint, "/x", &mut request, &Replacements::default(), false)
                .await
                .unwrap()
                .response
                .into_body();
            let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&data[..], b"ok");
            assert!(body.is_end_stream(), "as hyper's server sees it, which then drops the body");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_streamer_closed_is_replaced() {
        let (endpoint, accepted) =
            streamer(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", true).await;
        let upstreams = Upstreams::default();
        for _ in 0..3 {
            assert_eq!(get(&upstreams, &endpoint).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn each_endpoint_gets_its_own_connection() {
        let (first, first_accepted) = streamer(OK, false).await;
        let (second, second_accepted) = streamer(OK, false).await;
        let upstreams = Upstreams::default();
        for endpoint in [&first, &second, &first, &second] {
            assert_eq!(get(&upstreams, endpoint).await, "ok");
        }
        assert_eq!((first_accepted.load(Ordering::SeqCst), second_accepted.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn a_connection_the_streamer_closed_while_idle_is_replaced_for_a_request_without_body() {
        let (endpoint, accepted) = streamer(OK, true).await;
        let upstreams = Upstreams::default();
        for _ in 0..3 {
            assert_eq!(get(&upstreams, &endpoint).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_with_a_body_does_not_go_on_a_connection_the_streamer_wrote_to_while_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint: Arc<str> = format!("http://{}", listener.local_addr().unwrap()).into();
        let (go, went) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let (tell, told) = (go.clone(), went.clone());
        let streamer = tokio::spawn(async move {
            let mut heads = 0;
            for idle_answer in [Some(&b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\r\n"[..]), None] {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 4096];
                let read = tcp.read(&mut buffer).await.unwrap();
                assert!(buffer[..read].ends_with(b"\r\n\r\n") || buffer[..read].ends_with(b"hello"));
                heads += 1;
                tcp.write_all(OK).await.unwrap();
                if let Some(idle_answer) = idle_answer {
                    tell.notified().await;
                    tcp.write_all(idle_answer).await.unwrap();
                    drop(tcp);
                    told.notify_one();
                }
            }
            heads
        });
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "ok");
        go.notify_one();
        went.notified().await;
        let mut request = Request::post("/upload").body(Body::from("hello")).unwrap();
        let answer = upstreams.send(&endpoint, "/upload", &mut request, &Replacements::default(), false).await.unwrap();
        assert_eq!(answer.response.status(), axum::http::StatusCode::OK, "not the 408 sent while idle");
        assert_eq!(streamer.await.unwrap(), 2, "the request went on a new connection");
    }

    /// A streamer that answers the first request on each connection and closes the connection on the
    /// second without answering it, as one that acted on a request and then failed would; counting the
    /// requests it read.
    async fn answering_once_per_connection() -> (Arc<str>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap()).into();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    for answer in [Some(OK), None] {
                        if !matches!(tcp.read(&mut buffer).await, Ok(1..)) {
                            return;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        match answer {
                            Some(answer) => tcp.write_all(answer).await.unwrap(),
                            None => return,
                        }
                    }
                });
            }
        });
        (endpoint, requests)
    }

    #[tokio::test]
    async fn only_an_idempotent_request_is_sent_again_after_its_connection_failed_unanswered() {
        let (endpoint, requests) = answering_once_per_connection().await;
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "ok");
        assert_eq!(get(&upstreams, &endpoint).await, "ok", "sent again on a new connection");
        assert_eq!(requests.load(Ordering::SeqCst), 3);

        let (endpoint, requests) = answering_once_per_connection().await;
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "ok");
        let mut post = Request::post("/x").body(Body::empty()).unwrap();
        let sent = upstreams.send(&endpoint, "/x", &mut post, &Replacements::default(), false).await;
        assert!(matches!(sent, Err(UpstreamError::Closed)), "a POST the streamer may have acted on is not repeated");
        assert_eq!(requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn chunked_answers_are_read_to_their_end_and_keep_their_connection() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n";
        let (endpoint, accepted) = streamer(chunked, false).await;
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "ok!!!");
        assert_eq!(get(&upstreams, &endpoint).await, "ok!!!");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_delimited_by_its_close_ends_with_its_connection() {
        let (endpoint, accepted) = streamer(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true).await;
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "until the end");
        assert_eq!(get(&upstreams, &endpoint).await, "until the end");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error() {
        let (endpoint, _) = streamer(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", true).await;
        let error = send(&Upstreams::default(), &endpoint).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// A streamer that writes an answer's `head` at once and its `body` once `go` resolves, for one request.
    async fn streamer_in_two_writes(
        head: Vec<u8>,
        body: Vec<u8>,
        go: impl Future<Output = ()> + Send + 'static,
    ) -> Arc<str> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap()).into();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0u8; 1024]).await.unwrap();
            tcp.write_all(&head).await.unwrap();
            go.await;
            tcp.write_all(&body).await.unwrap();
            let _ = tcp.read(&mut [0u8; 1]).await;
        });
        endpoint
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_written_after_its_head_is_waited_for_to_leave_with_it() {
        let later = Duration::from_secs(1);
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n".to_vec();
        let endpoint = streamer_in_two_writes(head, b"ok".to_vec(), tokio::time::sleep(later)).await;
        let started = tokio::time::Instant::now();
        let answer = answer(&Upstreams::default(), &endpoint).await;
        assert!(started.elapsed() >= later, "the answer went on before its body came");
        let body = answer.response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn a_large_or_open_ended_body_does_not_hold_its_head_back() {
        let large = vec![b'x'; WHOLE_BODY as usize + 1];
        let answers = [
            (format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", large.len()), large.clone(), large),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                b"2\r\nok\r\n0\r\n\r\n".to_vec(),
                b"ok".to_vec(),
            ),
        ];
        for (head, body, content) in answers {
            let (go, gate) = tokio::sync::oneshot::channel::<()>();
            let endpoint = streamer_in_two_writes(head.into_bytes(), body, async { gate.await.unwrap() }).await;
            let upstreams = Upstreams::default();
            let answer = tokio::time::timeout(Duration::from_secs(10), answer(&upstreams, &endpoint))
                .await
                .expect("the head did not go on before its body");
            go.send(()).unwrap();
            assert_eq!(answer.response.into_body().collect().await.unwrap().to_bytes(), content);
        }
    }

    #[tokio::test]
    async fn a_connection_that_sent_more_than_its_answer_is_not_used_again() {
        let (endpoint, accepted) =
            streamer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", false).await;
        let upstreams = Upstreams::default();
        assert_eq!(get(&upstreams, &endpoint).await, "ok");
        assert_eq!(get(&upstreams, &endpoint).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "the bytes past the first answer answer nothing");
    }

    #[tokio::test]
    async fn an_upgrade_hands_over_its_connection_with_what_came_after_the_head() {
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nearly";
        let (endpoint, _) = streamer(switch, false).await;
        let mut request = Request::get("/ws").body(Body::empty()).unwrap();
        let answer =
            Upstreams::default().send(&endpoint, "/ws", &mut request, &Replacements::default(), true).await.unwrap();
        assert_eq!(answer.response.status(), axum::http::StatusCode::SWITCHING_PROTOCOLS);
        let mut switched = answer.switched.expect("the connection is handed over");
        let mut early = [0u8; 5];
        switched.read_exact(&mut early).await.unwrap();
        assert_eq!(&early, b"early");
    }

    /// A streamer on hyper's server that answers with the body it got and how it was framed.
    async fn echo() -> Arc<str> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap()).into();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let framing = match request.headers().get(header::CONTENT_LENGTH) {
                        Some(length) => format!("length {}", length.to_str().unwrap()),
                        None => format!("{:?}", request.headers().get(header::TRANSFER_ENCODING)),
                    };
                    let body = request.into_body().collect().await?.to_bytes();
                    let mut answer = Response::new(http_body_util::Full::new(body));
                    answer.headers_mut().insert("x-framing", HeaderValue::from_str(&framing).unwrap());
                    Ok::<_, hyper::Error>(answer)
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        endpoint
    }

    #[tokio::test]
    async fn request_bodies_reach_the_streamer_whole_with_a_length_or_chunked() {
        let endpoint = echo().await;
        let upstreams = Upstreams::default();
        let streamed = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from("he")), Ok(Bytes::from("llo"))]);
        let bodies = [
            (Body::from("hello"), "length 5"),
            (Body::from_stream(streamed), "Some(\"chunked\")"),
            (Body::empty(), "length 0"),
        ];
        for (body, framing) in bodies {
            let mut request = Request::post("/upload").header(header::CONTENT_LENGTH, "999").body(body).unwrap();
            let answer = upstreams.send(&endpoint, "/x", &mut request, &Replacements::default(), false).await.unwrap();
            assert_eq!(answer.response.headers()["x-framing"], framing);
            let echoed = answer.response.into_body().collect().await.unwrap().to_bytes();
            let expected: &[u8] = if framing == "length 0" { b"" } else { b"hello" };
            assert_eq!(&echoed[..], expected);
        }
    }

    #[tokio::test]
    async fn a_streamer_that_does_not_listen_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint: Arc<str> = format!("http://{}", listener.local_addr().unwrap()).into();
        drop(listener);
        let mut request = Request::get("/x").body(Body::empty()).unwrap();
        let Err(error) =
            Upstreams::default().send(&endpoint, "/x", &mut request, &Replacements::default(), false).await
        else {
            panic!("sent")
        };
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

//! Forwarding one request to a session's streamer: headers per RFC 9110, bodies streamed both
//! ways, upgrades tunnelled byte for byte.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode};
use hyper::body::{Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::fields::{RequestFields, X_FORWARDED_FOR, names_upgrade};
use super::session_cache::Traffic;
use super::upstream::{Answer, Switched, Upstreams};
use super::wire::Replacements;
use crate::connections::Registration;
use crate::error::ApiError;

pub type HttpClient = Client<HttpConnector, Body>;

/// The client for the control plane's own calls to streamers (not the proxy's, see [`super::upstream`]).
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).pool_idle_timeout(std::time::Duration::from_secs(60)).build(connector)
}

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The fields that never pass a hop as they came: the hop-by-hop ones (RFC 9110 7.6.1), which describe
/// one connection rather than the message, with `Upgrade` and `Transfer-Encoding`, which the next hop
/// gets only as its own connection needs them.
const CONNECTION_SCOPED: [HeaderName; 9] = [
    // First: `strip_hop_by_hop` finds its presence in bit 0.
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
];

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && headers.get_all(header::CONNECTION).iter().any(names_upgrade)
}

/// Removes the connection-scoped fields and those the `Connection` header names. An `upgrade` (see
/// [`is_upgrade`]) keeps its `Upgrade` and `Connection: upgrade`, which the next hop needs to switch
/// protocols. Whether there were any to look at (the fields may have changed).
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) -> bool {
    // One pass over the names finds those present: each removal is a lookup, and most messages carry
    // none of them or only `Connection: keep-alive`.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(at) = CONNECTION_SCOPED.iter().position(|scoped| scoped == name) {
            present |= 1 << at;
        }
    }
    if present == 0 {
        return false;
    }
    if present & 1 != 0 {
        // What `Connection` names beyond the scoped fields, which go anyway.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| !CONNECTION_SCOPED.iter().any(|scoped| scoped.as_str().eq_ignore_ascii_case(token)))
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (at, name) in CONNECTION_SCOPED.iter().enumerate() {
        if present & 1 << at != 0 && !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    true
}

/// The fields of a streamer's answer as the client gets them. Only a switch of protocols keeps its
/// `Upgrade`: in any other answer it offers the streamer's connection something, not the client's.
fn strip_answer(status: StatusCode, headers: &mut HeaderMap) {
    let switched = status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(headers, switched && is_upgrade(headers));
    if switched {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What the streamer gets of a request's `Cookie` headers: none of ours, whatever else the page set.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamerCookies {
    /// None of ours among them: they pass as they are.
    Unchanged,
    /// Only ours: the streamer gets no `Cookie` header.
    Removed,
    /// The others, in one header.
    Replaced(HeaderValue),
}

/// Platform credentials never reach the session: none of our cookies. The answer depends on the
/// `Cookie` headers alone, so the proxy works it out once per header a connection repeats. A browser
/// on a session's origin sends our cookie with every request and usually no other.
pub fn streamer_cookies(headers: &HeaderMap) -> StreamerCookies {
    let (mut ours, mut theirs) = (false, false);
    for value in headers.get_all(header::COOKIE) {
        match cookie_pairs(value) {
            Ok(pairs) => pairs.for_each(|pair| match is_platform_cookie(pair) {
                true => ours = true,
                false => theirs = true,
            }),
            // Unreadable headers are dropped, like ours.
            Err(_) => ours = true,
        }
    }
    if !ours {
        return StreamerCookies::Unchanged;
    }
    let kept = theirs.then(|| {
        let values = headers.get_all(header::COOKIE).iter().filter_map(|value| cookie_pairs(value).ok());
        values.flatten().filter(|pair| !is_platform_cookie(pair)).collect::<Vec<_>>().join("; ")
    });
    match kept.and_then(|kept| HeaderValue::from_str(&kept).ok()) {
        Some(value) => StreamerCookies::Replaced(value),
        None => StreamerCookies::Removed,
    }
}

/// What the streamer gets in place of the client's credentials.
pub struct StreamerCredentials {
    /// What [`streamer_cookies`] made of the request's `Cookie` headers.
    pub cookies: StreamerCookies,
    /// The `Authorization` the streamer gets in place of whatever the client sent, if any.
    pub authorization: Option<HeaderValue>,
}

/// The `name=value` pairs of one `Cookie` header.
fn cookie_pairs(value: &HeaderValue) -> Result<impl Iterator<Item = &str>, header::ToStrError> {
    value.to_str().map(|text| text.split(';').map(str::trim).filter(|pair| !pair.is_empty()))
}

/// Ours, with or without a cookie prefix: `ss_session`, `__Host-ss_refresh`, ...
fn is_platform_cookie(pair: &str) -> bool {
    let name = pair.strip_prefix("__Host-").or_else(|| pair.strip_prefix("__Secure-")).unwrap_or(pair);
    name.starts_with("ss_")
}

/// Who a request is forwarded for: the fields the proxy read of it, the credentials the streamer gets
/// in place of the client's, and the client's address (already a header value).
pub struct Forwarding<'a> {
    pub fields: &'a RequestFields,
    pub credentials: StreamerCredentials,
    pub client: &'a HeaderValue,
}

/// What the streamer gets in place of the request's own fields (`headers`, its hop-by-hop ones
/// removed): `credentials` rather than the platform's (`Authorization` always; our cookies as
/// `credentials.cookies` says), the client's address after any `X-Forwarded-For` the request carried,
/// and in `X-Forwarded-Host` the host it asked for. Written as the head goes out, so the request's own
/// map is neither searched nor grown for them. The fields were read before the hop-by-hop ones went:
/// where any did (`stripped`), the `Connection` header may have named these too, so the map is asked.
fn replacements(headers: &HeaderMap, forwarding: Forwarding<'_>, stripped: bool) -> Replacements {
    let Forwarding { fields, credentials, client } = forwarding;
    let (host, earlier_hops) = match stripped {
        false => (fields.host.clone(), fields.forwarded_for),
        true => (headers.get(header::HOST).cloned(), headers.contains_key(X_FORWARDED_FOR)),
    };
    let mut replacements = Replacements::with_capacity(4);
    replacements.set(header::AUTHORIZATION, credentials.authorization);
    match credentials.cookies {
        StreamerCookies::Unchanged => {}
        StreamerCookies::Removed => replacements.set(header::COOKIE, None),
        StreamerCookies::Replaced(value) => replacements.set(header::COOKIE, Some(value)),
    }
    let forwarded_for = if earlier_hops { forwarded_for(headers, client) } else { client.clone() };
    replacements.set(X_FORWARDED_FOR, Some(forwarded_for));
    replacements.set(X_FORWARDED_HOST, host);
    replacements
}

/// The `X-Forwarded-For` values the request carried, then `client`.
fn forwarded_for(headers: &HeaderMap, client: &HeaderValue) -> HeaderValue {
    let mut value = Vec::new();
    for hop in headers.get_all(X_FORWARDED_FOR) {
        value.extend_from_slice(hop.as_bytes());
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(client.as_bytes());
    HeaderValue::from_bytes(&value).unwrap_or_else(|_| client.clone())
}

/// `proxy_bytes_total` by direction, looked up once rather than on every request.
fn byte_counters() -> &'static (Counter, Counter) {
    static COUNTERS: OnceLock<(Counter, Counter)> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        (
            metrics::counter!("streamspace_proxy_bytes_total", "direction" => "in"),
            metrics::counter!("streamspace_proxy_bytes_total", "direction" => "out"),
        )
    })
}

/// Which way a body's bytes go through the proxy: from the client to the streamer, or back.
#[derive(Clone, Copy)]
enum Direction {
    In,
    Out,
}

impl Direction {
    /// Counts `bytes` into the session's traffic and the process's total.
    fn count(self, traffic: &Traffic, bytes: u64) {
        let (in_total, out_total) = byte_counters();
        let (session, total) = match self {
            Direction::In => (&traffic.bytes_in, in_total),
            Direction::Out => (&traffic.bytes_out, out_total),
        };
        session.fetch_add(bytes, Ordering::Relaxed);
        total.increment(bytes);
    }
}

/// `body` as a [`Body`] that counts the size of each data frame as it passes.
fn counted<B>(body: B, traffic: &Arc<Traffic>, direction: Direction) -> Body
where
    B: HttpBody<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if body.is_end_stream() {
        return Body::new(body);
    }
    Body::new(Counted { body, traffic: traffic.clone(), direction })
}

/// A body whose data frames are counted as they pass: one wrapper, so a response body is boxed once.
struct Counted<B> {
    body: B,
    traffic: Arc<Traffic>,
    direction: Direction,
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.direction.count(&self.traffic, data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A WebSocket tunnel about to open: its registration, and whether its user only watches (their
/// frames then pass through [`super::view_only`]).
pub struct Tunnel {
    pub registration: Registration,
    pub view_only: bool,
}

/// Where a request goes: the streamer at `endpoint` (`http://host:port`), for `target` (in origin form).
pub struct Destination<'a> {
    pub endpoint: &'a Arc<str>,
    pub target: &'a str,
}

/// Sends `request` (its body taken) to its `destination` and returns the streamer's response, or an
/// error response. Upgrades are tunnelled in the background once both sides switch. The streamer gets
/// what [`replacements`] makes of `forwarding` in place of the request's own credentials and forwarding
/// fields. An upgrade comes with its `tunnel`.
pub async fn forward(
    upstreams: &Upstreams,
    Destination { endpoint, target }: Destination<'_>,
    request: &mut Request<Body>,
    forwarding: Forwarding<'_>,
    traffic: Arc<Traffic>,
    tunnel: Option<Tunnel>,
) -> Response<Body> {
    let upgrade = tunnel.is_some();
    let incoming_upgrade = upgrade.then(|| hyper::upgrade::on(&mut *request));
    let stripped = strip_hop_by_hop(request.headers_mut(), upgrade);
    let replacements = replacements(request.headers(), forwarding, stripped);

    *request.body_mut() = counted(std::mem::take(request.body_mut()), &traffic, Direction::In);
    let Answer { mut response, switched } =
        match upstreams.send(endpoint, target, request, &replacements, upgrade).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::info!(error = %err, "session upstream unreachable");
                metrics::counter!("streamspace_proxy_upstream_errors_total").increment(1);
                let error = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "the session's streamer does not answer",
                );
                return axum::response::IntoResponse::into_response(error);
            }
        };
    if let (Some(incoming), Some(tunnel), Some(outgoing)) = (incoming_upgrade, tunnel, switched) {
        tokio::spawn(relay(incoming, outgoing, traffic.clone(), tunnel));
    }
    strip_answer(response.status(), response.headers_mut());
    response.map(|body| counted(body, &traffic, Direction::Out))
}

/// Relays bytes both ways until either side closes or the tunnel is cut (its user's access
/// ended); no timeout while traffic flows or not.
async fn relay(
    incoming: hyper::upgrade::OnUpgrade,
    upstream: Switched,
    traffic: Arc<Traffic>,
    Tunnel { registration, view_only }: Tunnel,
) {
    let client = match incoming.await {
        Ok(client) => client,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade did not complete");
            return;
        }
    };
    let open = metrics::gauge!("streamspace_proxy_open_tunnels");
    open.increment(1.0);
    let (client_reads, client_writes) = tokio::io::split(Metered::new(TokioIo::new(client), &traffic, Direction::In));
    let (upstream_reads, upstream_writes) = tokio::io::split(Metered::new(upstream, &traffic, Direction::Out));
    let copy = async {
        tokio::try_join!(
            async {
                if view_only {
                    super::view_only::pipe(client_reads, upstream_writes).await
                } else {
                    pipe(client_reads, upstream_writes, relay_buffers()).await
                }
            },
            pipe(upstream_reads, client_writes, relay_buffers())
        )
    };
    tokio::select! {
        copied = copy => {
            if let Err(err) = copied {
                tracing::debug!(error = %err, "tunnel closed with an error");
            }
        }
        // Dropping both sides closes both sockets.
        () = registration => tracing::info!("tunnel cut: its user's access to the session ended"),
    }
    open.decrement(1.0);
}

/// A relay buffer: the media stream's frames are large, and fewer reads mean less CPU per MB.
const RELAY_BUFFER: usize = 64 * 1024;
/// Buffers kept for reuse once no tunnel holds them (4 MiB).
const POOLED_BUFFERS: usize = 64;

/// Relay buffers shared by every tunnel: a tunnel holds one only while bytes are on their way through it,
/// so an idle tunnel holds none, and a buffer's pages are touched once rather than once per tunnel.
#[derive(Default)]
struct BufferPool(std::sync::Mutex<Vec<Box<[u8]>>>);

impl BufferPool {
    fn take(&self) -> Box<[u8]> {
        let pooled = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.unwrap_or_else(|| vec![0; RELAY_BUFFER].into_boxed_slice())
    }

    fn give(&self, buffer: Box<[u8]>) {
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOLED_BUFFERS {
            pool.push(buffer);
        }
    }
}

fn relay_buffers() -> &'static BufferPool {
    static POOL: OnceLock<BufferPool> = OnceLock::new();
    POOL.get_or_init(BufferPool::default)
}

/// Reads what `reader` has into a pooled buffer, as much as is there without waiting (fewer, larger
/// writes on the other side); while nothing is there, no buffer is held. A read of 0 bytes is the end.
/// Buffers pass between tunnels of different sessions, so only the bytes this read filled are ever
/// used: `ReadBuf` starts empty on whatever an earlier tunnel left in the buffer.
async fn read_pooled<R: AsyncRead + Unpin>(reader: &mut R, pool: &BufferPool) -> std::io::Result<(Box<[u8]>, usize)> {
    std::future::poll_fn(|cx| {
        let mut buffer = pool.take();
        let mut filled = ReadBuf::new(&mut buffer);
        let polled = loop {
            let before = filled.filled().len();
            match Pin::new(&mut *reader).poll_read(cx, &mut filled) {
                Poll::Ready(Ok(())) if filled.filled().len() > before && filled.remaining() > 0 => continue,
                Poll::Pending if before > 0 => break Poll::Ready(Ok(())),
                polled => break polled,
            }
        };
        let read = filled.filled().len();
        match polled {
            Poll::Pending => {
                pool.give(buffer);
                Poll::Pending
            }
            Poll::Ready(result) => Poll::Ready(result.map(|()| (buffer, read))),
        }
    })
    .await
}

/// Copies one way until `reader` ends, then shuts `writer` down (a half close, as the other way may
/// still carry data).
async fn pipe<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    mut writer: W,
    pool: &BufferPool,
) -> std::io::Result<()> {
    loop {
        let (buffer, read) = read_pooled(&mut reader, pool).await?;
        if read == 0 {
            pool.give(buffer);
            return writer.shutdown().await;
        }
        let written = writer.write_all(&buffer[..read]).await;
        pool.give(buffer);
        written?;
        writer.flush().await?;
    }
}

/// Counts the bytes read from one side of a tunnel as they flow (for the session and for
/// Prometheus), and marks the session active.
struct Metered<'a, T> {
    io: T,
    traffic: &'a Traffic,
    direction: Direction,
}

impl<'a, T> Metered<'a, T> {
    fn new(io: T, traffic: &'a Traffic, direction: Direction) -> Self {
        Metered { io, traffic, direction }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<'_, T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.direction.count(self.traffic, read as u64);
            self.traffic.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<'_, T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::wire::{RequestBody, RequestHead, write_request_head};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        assert!(!is_upgrade(&map), "an Upgrade without `Connection: upgrade` asks for nothing");
        strip_hop_by_hop(&mut map, false);
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn connection_names_in_any_case_go_whether_or_not_they_are_scoped_or_present() {
        let mut map = headers(&[
            ("connection", "Keep-Alive, X-Custom , TE, close"),
            ("x-custom", "1"),
            ("trailer", "x-sum"),
            ("accept", "*/*"),
        ]);
        assert!(strip_hop_by_hop(&mut map, false));
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept"]);

        let mut plain = headers(&[("accept", "*/*"), ("content-length", "2")]);
        assert!(!strip_hop_by_hop(&mut plain, false), "nothing to look at");
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn upgrades_keep_what_the_next_hop_needs() {
        let mut map =
            headers(&[("connection", "Upgrade, keep-alive"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        assert!(is_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["sec-websocket-key"], "k");
    }

    #[test]
    fn only_a_switch_of_protocols_passes_its_upgrade_to_the_client() {
        let offer = [
            ("upgrade", "h2c"),
            ("connection", "Upgrade, keep-alive"),
            ("keep-alive", "timeout=5"),
            ("content-type", "text/plain"),
        ];
        let mut answer = headers(&offer);
        strip_answer(StatusCode::OK, &mut answer);
        let names: Vec<&str> = answer.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);

        let mut switch = headers(&[("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", "a")]);
        strip_answer(StatusCode::SWITCHING_PROTOCOLS, &mut switch);
        assert_eq!(switch["upgrade"], "websocket");
        assert_eq!(switch["connection"], "upgrade");
        assert_eq!(switch["sec-websocket-accept"], "a");
    }

    /// The fields of the head the streamer gets for a request with `map` from `client`, with
    /// `authorization`, made as [`forward`] makes it.
    fn streamer_fields(map: &HeaderMap, authorization: Option<&'static str>, client: &'static str) -> Vec<String> {
        let credentials = StreamerCredentials {
            cookies: streamer_cookies(map),
            authorization: authorization.map(HeaderValue::from_static),
        };
        let fields = RequestFields::read(map);
        let client = HeaderValue::from_static(client);
        let mut map = map.clone();
        let stripped = strip_hop_by_hop(&mut map, false);
        let replacements = replacements(&map, Forwarding { fields: &fields, credentials, client: &client }, stripped);
        let mut out = Vec::new();
        let head = RequestHead {
            method: &axum::http::Method::GET,
            target: "/",
            fields: &map,
            replacements: &replacements,
            body: RequestBody::None,
        };
        write_request_head(&mut out, &head);
        let text = String::from_utf8(out).unwrap();
        text.lines().skip(1).filter(|line| !line.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn platform_credentials_are_removed_and_app_cookies_kept() {
        let map = headers(&[
            ("authorization", "Bearer secret"),
            ("cookie", "ss_session=abc; app=1; __Host-ss_session=x"),
            ("cookie", "ss_refresh=def; theme=dark; __Secure-ss_refresh=y"),
        ]);
        assert_eq!(streamer_fields(&map, None, "10.0.0.1"), ["cookie: app=1; theme=dark", "x-forwarded-for: 10.0.0.1"]);
        let only_ours = headers(&[("cookie", "ss_session=abc"), ("authorization", "Bearer secret")]);
        assert_eq!(
            streamer_fields(&only_ours, Some("Bearer streamer"), "10.0.0.1"),
            ["authorization: Bearer streamer", "x-forwarded-for: 10.0.0.1"]
        );
        let theirs = headers(&[("cookie", "app=1"), ("cookie", "theme=dark")]);
        assert_eq!(streamer_cookies(&theirs), StreamerCookies::Unchanged);
        assert_eq!(
            streamer_fields(&theirs, None, "10.0.0.1"),
            ["cookie: app=1", "cookie: theme=dark", "x-forwarded-for: 10.0.0.1"],
            "as they came"
        );
    }

    #[test]
    fn the_client_address_follows_the_hops_the_request_named_and_the_host_is_the_one_asked_for() {
        let map = headers(&[
            ("host", "s.example"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
            ("x-forwarded-host", "forged.example"),
        ]);
        assert_eq!(
            streamer_fields(&map, None, "10.0.0.1"),
            ["host: s.example", "x-forwarded-for: 192.0.2.1, 192.0.2.2, 10.0.0.1", "x-forwarded-host: s.example"]
        );
        let no_host = headers(&[("x-forwarded-host", "forged.example")]);
        assert_eq!(streamer_fields(&no_host, None, "10.0.0.1"), ["x-forwarded-for: 10.0.0.1"]);
        let hop_by_hop =
            headers(&[("host", "s.example"), ("connection", "x-forwarded-for"), ("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(
            streamer_fields(&hop_by_hop, None, "10.0.0.1"),
            ["host: s.example", "x-forwarded-for: 10.0.0.1", "x-forwarded-host: s.example"],
            "hops named in `Connection` end at this one"
        );
    }

    #[tokio::test]
    async fn a_pipe_copies_until_its_reader_ends_and_holds_no_buffer_while_it_waits() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pool = BufferPool::default();
        // Left by another session's tunnel: none of it may come out of this one.
        pool.give(vec![b'X'; RELAY_BUFFER].into_boxed_slice());
        let (mut source, reads) = tokio::io::duplex(1024);
        let (writes, mut sink) = tokio::io::duplex(1024);
        let mut piping = Box::pin(pipe(reads, writes, &pool));
        assert!(futures::poll!(piping.as_mut()).is_pending());
        assert_eq!(pool.0.lock().unwrap().len(), 1, "waiting for bytes, the pipe gave its buffer back");

        source.write_all(b"frame").await.unwrap();
        drop(source);
        piping.await.unwrap();
        let mut copied = Vec::new();
        sink.read_to_end(&mut copied).await.unwrap();
        assert_eq!(copied, b"frame", "only what was read is copied, then the writer is shut down");
        assert_eq!(pool.0.lock().unwrap().len(), 1, "one buffer served the whole copy");
    }
}

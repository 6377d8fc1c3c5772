//! The session proxy. Every session has an origin of its own, `<session id>.<session domain>`, and
//! is served there under `/api/v1/http/<session id>/`, for its owner and nobody else.
//!
//! A connect ticket (from `POST /api/v1/sessions/<id>/connect`) is traded once for a signed,
//! host-only, HttpOnly cookie; the proxy then checks that cookie on every request without touching
//! the store, and looks the session's endpoint up in a short-lived cache. Since session content is
//! hostile, a request must name its session in the host and the path alike, pages of other sites
//! (other sessions included) may navigate to a session but not fetch from it, and nothing a
//! streamer answers may set cookies or let another page frame it.

mod fields;
pub mod forward;
pub mod session_cache;
pub mod streamer;
mod tunnel_audit;
pub mod upstream;
mod view_only;
mod wire;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use streamspace_proto::SessionState;
use streamspace_store::Scope;
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::auth::cookies::{self, CookieSpec};
use crate::auth::policy::SessionRole;
use crate::auth::secrets::sha256_hex;
use crate::auth::session_grant::Grant;
use crate::config::Urls;
use crate::error::ApiError;
use crate::recent::Ticket;
use fields::RequestFields;
use session_cache::CachedSession;
use upstream::Upstreams;

const PREFIX: &str = "/api/v1/http/";
/// How long the session cookie lasts; opening the session again renews it.
const GRANT_TTL_SECS: i64 = 12 * 3600;

/// The path a session is served under on its origin.
pub fn session_path(id: Uuid) -> String {
    format!("{PREFIX}{id}/")
}

/// The URL that opens a session: its own origin and path.
pub fn session_url(urls: &Urls, id: Uuid) -> String {
    format!("{}{}", urls.session_origin(id), session_path(id))
}

/// What the proxy needs of the settings on every request, worked out once.
pub struct Origins {
    /// `host[:port]` that every session's host ends in.
    domain: String,
    cookie: CookieSpec,
    /// `frame-ancestors <UI origin>`: only the UI may frame a session.
    frame_ancestors: HeaderValue,
    /// `Strict-Transport-Security` when sessions are served over HTTPS.
    hsts: Option<HeaderValue>,
}

impl Origins {
    pub fn new(urls: &Urls) -> Origins {
        let policy = HeaderValue::from_str(&format!("frame-ancestors {}", urls.public_url));
        Origins {
            domain: urls.session_domain.clone(),
            cookie: cookies::session_cookie(urls),
            // A public URL that is no valid header value frames nothing rather than anything.
            frame_ancestors: policy.unwrap_or(HeaderValue::from_static("frame-ancestors 'none'")),
            hsts: urls.hsts(),
        }
    }
}

/// The service of the session listener: every request goes to the proxy. A plain service rather
/// than a router, since there is nothing to route and this path carries every streamer request.
#[derive(Clone)]
pub struct SessionProxy {
    app: AppState,
    connection: Arc<ClientConnection>,
}

/// What the proxy keeps for one client connection, whose requests nearly always come from one
/// browser for one session with the same host and cookie.
struct ClientConnection {
    peer: IpAddr,
    /// The peer's address as a header value (`X-Forwarded-For`), formatted once.
    peer_header: HeaderValue,
    upstreams: Upstreams,
    /// The session the last host named.
    last_host: Memo<Addressed>,
    /// What the last `Cookie` header that verified grants, and what the streamer gets of it.
    last_cookie: Memo<Admitted>,
    /// What let the last request in.
    last_pass: Mutex<Option<Pass>>,
}

/// What a request was let in on: its session, the part its grant gives there, and the allow-lists'
/// leave for its address. The connection's next requests with the same grant from the same address
/// reuse it while every answer it rests on would still be reused from its cache, and no cache it was
/// read from has forgotten anything since: until then, asking again would give the same answers.
struct Pass {
    grant: Grant,
    client_ip: IpAddr,
    session: CachedSession,
    role: SessionRole,
    until: Instant,
    tickets: Tickets,
}

/// How far the caches behind a pass have forgotten (see [`crate::recent::Ticket`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tickets {
    sessions: Ticket,
    access: Ticket,
    lists: Ticket,
}

impl Tickets {
    fn of(app: &App) -> Tickets {
        Tickets {
            sessions: app.session_cache.ticket(),
            access: app.session_access.ticket(),
            lists: app.allow_lists.ticket(),
        }
    }
}

/// The session a host names, with its id spelled as the session's paths must spell it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Addressed {
    id: Uuid,
    canonical: [u8; uuid::fmt::Hyphenated::LENGTH],
}

impl Addressed {
    fn new(id: Uuid) -> Addressed {
        let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
        id.hyphenated().encode_lower(&mut canonical);
        Addressed { id, canonical }
    }
}

/// A session cookie's grant, and what the streamer gets of the `Cookie` headers that carried it.
#[derive(Clone, Debug, PartialEq)]
struct Admitted {
    grant: Grant,
    cookies: forward::StreamerCookies,
}

impl ClientConnection {
    fn new(peer: IpAddr) -> Arc<ClientConnection> {
        let peer_header = address_header(peer);
        Arc::new(ClientConnection {
            peer,
            peer_header,
            upstreams: Upstreams::default(),
            last_host: Memo::default(),
            last_cookie: Memo::default(),
            last_pass: Mutex::default(),
        })
    }

    /// The session and the part in it that the last pass gives, if it holds for `grant` from
    /// `client_ip` still.
    fn pass(&self, app: &App, grant: Grant, client_ip: IpAddr) -> Option<(CachedSession, SessionRole)> {
        let last = self.last_pass.lock().unwrap_or_else(|p| p.into_inner());
        let pass = last.as_ref()?;
        let holds = pass.grant == grant
            && pass.client_ip == client_ip
            && Instant::now() < pass.until
            && pass.tickets == Tickets::of(app);
        holds.then(|| (pass.session.clone(), pass.role))
    }

    fn keep_pass(&self, pass: Pass) {
        *self.last_pass.lock().unwrap_or_else(|p| p.into_inner()) = Some(pass);
    }

    /// `client` as a header value: the peer's, formatted once, unless trusted proxies named another.
    fn address_header(&self, client: IpAddr) -> HeaderValue {
        if client == self.peer { self.peer_header.clone() } else { address_header(client) }
    }

    /// The grant of the session cookie in `headers`, if it is `session_id`'s and unexpired at `now`.
    /// The cookie is checked on every request: a `Cookie` header equal to one whose signature
    /// verified needs no second HMAC, while its session and expiry are checked again each time, as
    /// `Grant::decode` does. `only_cookie` is the `Cookie` header if there is one only; several (HTTP/2
    /// splits them) are read afresh each time.
    fn admit(
        &self,
        headers: &HeaderMap,
        only_cookie: Option<&HeaderValue>,
        spec: &CookieSpec,
        key: &[u8],
        session_id: Uuid,
        now: i64,
    ) -> Option<Admitted> {
        let verify = || {
            let grant = Grant::decode(spec.read(headers).value()?, key, session_id, now)?;
            Some(Admitted { grant, cookies: forward::streamer_cookies(headers) })
        };
        let admitted = match only_cookie {
            Some(only) => self.last_cookie.get_or(only.as_bytes(), verify),
            None => verify(),
        }?;
        let grant = admitted.grant;
        (grant.session_id == session_id && grant.expires_at > now).then_some(admitted)
    }
}

fn address_header(address: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&address.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// What was last worked out on a connection from a header's bytes, with those bytes. The
/// comparison need not be constant-time: it can only tell a client about what it sent itself on
/// this connection.
struct Memo<V>(Mutex<Option<(Box<[u8]>, V)>>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo(Mutex::new(None))
    }
}

impl<V: Clone> Memo<V> {
    /// The value for `bytes`: the last one if `bytes` are the same, else what `work_out` makes of
    /// them (kept if there is one).
    fn get_or(&self, bytes: &[u8], work_out: impl FnOnce() -> Option<V>) -> Option<V> {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, value)) = last.as_ref()
            && **seen == *bytes
        {
            return Some(value.clone());
        }
        let value = work_out()?;
        *last = Some((bytes.into(), value.clone()));
        Some(value)
    }
}

/// The proxy for each connection of the session listener, with that connection's streamer connections.
pub fn per_connection(app: AppState) -> impl Fn(SocketAddr) -> SessionProxy {
    move |peer| SessionProxy { app: app.clone(), connection: ClientConnection::new(peer.ip()) }
}

/// The proxy as one service, for callers that serve it themselves: requests count as coming from the
/// loopback address.
pub fn service(app: AppState) -> SessionProxy {
    SessionProxy { app, connection: ClientConnection::new(Ipv4Addr::LOCALHOST.into()) }
}

type Responding = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl SessionProxy {
    fn respond<B>(&self, request: Request<B>) -> Responding
    where
        B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let proxy = self.clone();
        Box::pin(async move {
            let started = Instant::now();
            let method = request.method().clone();
            // Most requests have no body: an empty one is not boxed.
            let mut request = request.map(|body| if body.is_end_stream() { Body::empty() } else { Body::new(body) });
            let mut response = self::proxy(&proxy.app, &proxy.connection, &mut request).await;
            if let Some(hsts) = &proxy.app.origins.hsts {
                response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            proxy.app.session_requests.record(&method, response.status(), started);
            Ok(response)
        })
    }
}

/// How the session listener calls the proxy: hyper's service, called by reference.
impl hyper::service::Service<Request<hyper::body::Incoming>> for SessionProxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Responding {
        self.respond(request)
    }
}

/// How callers that serve the proxy themselves call it.
impl<B> tower::Service<Request<B>> for SessionProxy
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Responding;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Responding {
        self.respond(request)
    }
}

/// The session a request's host names: `<canonical session id>.<session domain>`, any case.
/// `last` is the connection's: its requests nearly always name the same host.
fn addressed_session(
    uri: &axum::http::Uri,
    host: Option<&HeaderValue>,
    domain: &str,
    last: &Memo<Addressed>,
) -> Option<Addressed> {
    let host = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => host?.to_str().ok()?,
    };
    last.get_or(host.as_bytes(), || session_of_host(host, domain).map(Addressed::new))
}

fn session_of_host(host: &str, domain: &str) -> Option<Uuid> {
    let label = strip_suffix_ignoring_case(host, domain)?.strip_suffix('.')?;
    let id = Uuid::try_parse(label).ok()?;
    let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut canonical).eq_ignore_ascii_case(label).then_some(id)
}

fn strip_suffix_ignoring_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let at = text.len().checked_sub(suffix.len())?;
    (text.is_char_boundary(at) && text[at..].eq_ignore_ascii_case(suffix)).then(|| &text[..at])
}

/// The rest of the path under the session's prefix. The id must be in canonical form and the
/// session's own, so no encoding trick names another session.
fn tail<'a>(path: &'a str, session: &Addressed) -> Option<&'a str> {
    let tail = path.strip_prefix(PREFIX)?.strip_prefix(std::str::from_utf8(&session.canonical).ok()?)?;
    (tail.is_empty() || tail.starts_with('/')).then_some(tail)
}

/// Fetch Metadata: a request that another site's page made (a fetch, a WebSocket, a form post),
/// as opposed to a plain navigation such as the UI framing the session or a link. Browsers that
/// send no metadata, and other clients, are judged by the cookie alone.
fn refused_cross_site(method: &Method, fields: &RequestFields) -> bool {
    let navigation = fields.navigation() && (method == Method::GET || method == Method::HEAD);
    fields.sent_by_another_site() && !navigation
}

/// The query without `ticket=...` (and without empty pairs).
fn without_ticket(query: &str) -> (Option<&str>, Cow<'_, str>) {
    let clean = !query.contains("ticket=") && !query.starts_with('&') && !query.ends_with('&') && !query.contains("&&");
    if clean {
        return (None, Cow::Borrowed(query));
    }
    let mut ticket = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("ticket=") {
            Some(value) => {
                ticket = Some(value);
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    (ticket, Cow::Owned(kept.join("&")))
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    ApiError::new(status, code, message).into_response()
}

// What runs rarely (a ticket, a cache miss, a refusal) is awaited boxed: the future of every
// request is then only as large as the common path needs, and moved and zeroed that much less. For
// the same reason the request is borrowed on its way to the streamer, not moved from future to future.
async fn proxy(app: &AppState, connection: &ClientConnection, request: &mut Request<Body>) -> Response<Body> {
    let client_ip = crate::auth::client_ip::of_request(connection.peer, request.headers(), &app.config.trusted_proxies);
    if let Err(limited) = app.session_limits.check_address(client_ip) {
        return limited.into_response();
    }
    let fields = RequestFields::read(request.headers());
    let Some(addressed) =
        addressed_session(request.uri(), fields.host.as_ref(), &app.origins.domain, &connection.last_host)
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such session");
    };
    let session_id = addressed.id;
    let path = request.uri().path();
    let Some(tail) = tail(path, &addressed) else {
        if path == "/" {
            return redirect(StatusCode::PERMANENT_REDIRECT, &session_path(session_id));
        }
        return error(StatusCode::NOT_FOUND, "not_found", "this origin serves one session only");
    };
    if refused_cross_site(request.method(), &fields) {
        return error(StatusCode::FORBIDDEN, "cross_site_refused", "another site's page cannot use this session");
    }
    if tail.is_empty() {
        // The streamer's client builds URLs relative to a page URL that ends in '/'.
        let location = match request.uri().query() {
            Some(query) => format!("{}?{query}", session_path(session_id)),
            None => session_path(session_id),
        };
        return redirect(StatusCode::PERMANENT_REDIRECT, &location);
    }
    let (ticket, query) = without_ticket(request.uri().query().unwrap_or(""));
    if let Some(ticket) = ticket {
        let location = format!("{path}{}", if query.is_empty() { String::new() } else { format!("?{query}") });
        return Box::pin(redeem(app, session_id, ticket, &location, client_ip)).await;
    }
    let now = app.clock.now();
    let cookie = fields.only_cookie();
    let admitted =
        connection.admit(request.headers(), cookie, &app.origins.cookie, &app.session_key, session_id, now.timestamp());
    let Some(Admitted { grant, cookies }) = admitted else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "open this session from StreamSpace");
    };
    let (cached, role) = match connection.pass(app, grant, client_ip) {
        Some(pass) => pass,
        None => match Box::pin(admit(app, connection, grant, client_ip, now)).await {
            Ok(admitted) => admitted,
            Err(response) => return *response,
        },
    };
    if !role.has_input() && !watching(request.method()) {
        return error(StatusCode::FORBIDDEN, "view_only", "you are watching this session; you cannot change it");
    }
    if let Err(limited) = app.session_limits.check_principal(grant.user_id, cached.org_id) {
        return limited.into_response();
    }
    let Some(endpoint) = cached.endpoint.filter(|_| cached.state == SessionState::Running) else {
        return not_ready(cached.state);
    };
    let upgrade = fields.upgrade();
    if upgrade && !same_origin(request.headers(), &app.urls.session_origin(session_id)) {
        return error(StatusCode::FORBIDDEN, "forbidden", "cross-origin WebSocket refused");
    }
    let tokens =
        cached.credentials.get_or_init(|| streamer::Credentials::new(|role| app.streamer_token(session_id, role)));
    let viewer = tokens.of(role);
    let query = streamer::query_with_token(upgrade, tail, query, &viewer.token);
    let Some(target) = origin_form(tail, &query) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "invalid path");
    };
    let credentials = forward::StreamerCredentials { cookies, authorization: viewer.credential(tail) };
    let (tunnel, audit) = match tunnel_slot(app, request, upgrade, grant, role) {
        Ok(Some(registration)) => {
            let (registration, audit) =
                tunnel_audit::TunnelAudit::new(app, grant, client_ip, request).watch(registration);
            (Some(forward::Tunnel { registration, view_only: !role.has_input() }), Some(audit))
        }
        Ok(None) => (None, None),
        Err(response) => return *response,
    };
    let client = connection.address_header(client_ip);
    let forwarding = forward::Forwarding { fields: &fields, credentials, client: &client };
    cached.traffic.touch_at(now);
    let destination = forward::Destination { endpoint: &endpoint, target: &target };
    let mut response =
        forward::forward(&connection.upstreams, destination, request, forwarding, cached.traffic, tunnel).await;
    if let Some(audit) = audit.filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS) {
        audit.opened();
    }
    confine(response.headers_mut(), &app.origins.frame_ancestors);
    response
}

/// `tail?query` as the request target the streamer gets, written into its request line as it is. Both
/// come from the URI hyper parsed (the query perhaps with the streamer's token), so this holds anyway;
/// it is checked all the same, as a space or a line break there would split the request.
fn origin_form(tail: &str, query: &str) -> Option<String> {
    let mut target = String::with_capacity(tail.len() + 1 + query.len());
    target.push_str(tail);
    if !query.is_empty() {
        target.push('?');
        target.push_str(query);
    }
    let one_token = target.starts_with('/') && target.bytes().all(|byte| byte > b' ' && byte != 0x7f);
    one_token.then_some(target)
}

/// When the session cookie was issued (Unix seconds).
fn granted_at(grant: Grant) -> i64 {
    grant.expires_at - GRANT_TTL_SECS
}

/// Lets `grant` in from `client_ip`: its session must be there and not ended, its user may still
/// use it, and the allow-lists must let the address in. What let it in becomes the connection's pass.
async fn admit(
    app: &App,
    connection: &ClientConnection,
    grant: Grant,
    client_ip: IpAddr,
    now: DateTime<Utc>,
) -> Result<(CachedSession, SessionRole), Box<Response<Body>>> {
    // Before anything is read: whatever a cache forgets from here on makes the pass stale.
    let tickets = Tickets::of(app);
    let session = cached_session(app, grant.session_id).await?;
    let (role, access_until) = check_access(app, grant, now).await?;
    let network_until = check_network(app, grant, session.org_id, client_ip)
        .await
        .map_err(|refused| Box::new(refused.into_response()))?;
    let until = session.fresh_until.min(access_until).min(network_until);
    connection.keep_pass(Pass { grant, client_ip, session: session.clone(), role, until, tickets });
    Ok((session, role))
}

/// The cookie is valid for hours; whether its user may still use the session, and as what, is
/// asked on every request (answered from a cache that lives two seconds, or the connection's pass);
/// with until when the answer is reused.
async fn check_access(
    app: &App,
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<(SessionRole, Instant), Box<Response<Body>>> {
    let (store, granted_at) = (app.store.as_ref(), granted_at(grant));
    match app.session_access.allows(store, grant.user_id, grant.session_id, granted_at, now).await {
        Ok((Some(role), until)) => Ok((role, until)),
        Ok((None, _)) => {
            Err(Box::new(error(StatusCode::FORBIDDEN, "access_revoked", "your access to this session has ended")))
        }
        Err(err) => Err(Box::new(ApiError::from(err).into_response())),
    }
}

/// What a viewer may ask of the streamer: reading, and opening the media WebSocket (whose frames
/// [`view_only`] then judges). Uploads and every other change are refused before they reach it.
fn watching(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The IP allow-lists of the platform and of the session's org hold for every request into it,
/// the tunnel's first included. An allowed address is let through without building what a refusal
/// records; with until when the lists are reused.
async fn check_network(app: &App, grant: Grant, org_id: Uuid, client_ip: IpAddr) -> Result<Instant, ApiError> {
    match crate::auth::network::verdict(app, Some(org_id), client_ip).await {
        Ok((None, until)) => Ok(until),
        Ok((Some(_), until)) => Box::pin(refuse_network(app, grant, org_id, client_ip)).await.map(|()| until),
        Err(err) => Err(err.into()),
    }
}

/// Counts, audits and answers a request from an address an allow-list refuses.
async fn refuse_network(app: &App, grant: Grant, org_id: Uuid, client_ip: IpAddr) -> Result<(), ApiError> {
    let actor =
        crate::audit::Actor { id: Some(grant.user_id), name: format!("user:{}", grant.user_id), org_id: Some(org_id) };
    let meta = crate::context::RequestMeta { client_ip, ..crate::context::RequestMeta::internal() };
    crate::auth::network::enforce(app, &meta, &actor, crate::auth::network::Via::Session).await
}

/// Registers an upgrade as a tunnel before it reaches the streamer, so the per-user cap holds and
/// the tunnel can be cut when access ends. Plain requests need no slot.
/// A viewer's upgrade negotiates no extension: compressed frames could not be judged.
fn tunnel_slot(
    app: &App,
    request: &mut Request<Body>,
    upgrade: bool,
    grant: Grant,
    role: SessionRole,
) -> Result<Option<crate::connections::Registration>, Box<Response<Body>>> {
    if !upgrade {
        return Ok(None);
    }
    if !role.has_input() {
        request.headers_mut().remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let cap = app.config.max_tunnels_per_user;
    let kind = crate::connections::Kind::Tunnel { session_id: grant.session_id, granted_at: granted_at(grant), role };
    app.connections.open(grant.user_id, kind, cap).map(Some).map_err(|_| {
        let message = format!("at most {cap} open connections into sessions per user; close one first");
        Box::new(error(StatusCode::TOO_MANY_REQUESTS, "too_many_tunnels", &message))
    })
}

/// What a streamer answers may not set cookies (on the session's host or, through `Domain`, its
/// parents), and only the UI may frame it: a CSP of our own is enforced on top of the streamer's.
fn confine(headers: &mut HeaderMap, frame_ancestors: &HeaderValue) {
    headers.remove(header::SET_COOKIE);
    headers.append(header::CONTENT_SECURITY_POLICY, frame_ancestors.clone());
}

/// Whether the request comes from a page on the session's own origin, or from no browser page at
/// all (no `Origin`): a WebSocket's cookie alone does not prove which page opened it.
fn same_origin(headers: &HeaderMap, session_origin: &str) -> bool {
    headers.get(header::ORIGIN).is_none_or(|origin| origin.as_bytes() == session_origin.as_bytes())
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn not_ready(state: SessionState) -> Response<Body> {
    let message = match state {
        SessionState::Pending | SessionState::Scheduled | SessionState::Starting => {
            "the session is starting; try again in a moment"
        }
        SessionState::Hibernating | SessionState::Hibernated => "the session is hibernated; wake it from StreamSpace",
        SessionState::Stopping | SessionState::Stopped | SessionState::Failed => "the session has ended",
        SessionState::Running => "the session has no endpoint yet",
    };
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "session_not_ready", message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// What the proxy needs of the session, from the cache or the store. Ended or vanished sessions
/// answer 404.
async fn cached_session(app: &App, session_id: Uuid) -> Result<CachedSession, Box<Response<Body>>> {
    if let Some(cached) = app.session_cache.fresh(session_id) {
        return Ok(cached);
    }
    let session = app
        .store
        .get_session(Scope::Platform, session_id)
        .await
        .map_err(|err| Box::new(ApiError::from(err).into_response()))?;
    match session {
        Some(session) if !session.state.is_terminal() => {
            Ok(app.session_cache.store(session_id, session.org_id, session.state, session.endpoint))
        }
        _ => {
            app.session_cache.forget(session_id);
            Err(Box::new(error(StatusCode::NOT_FOUND, "not_found", "no such session")))
        }
    }
}

/// Trades a ticket for the session cookie and redirects to the same URL without the ticket. The
/// allow-lists hold here too: a link opened outside the allowed networks yields no cookie.
async fn redeem(app: &App, session_id: Uuid, ticket: &str, location: &str, client_ip: IpAddr) -> Response<Body> {
    let now = app.clock.now();
    let redeemed = match app.store.redeem_ticket(&sha256_hex(ticket), now).await {
        Ok(redeemed) => redeemed,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let Some(ticket) = redeemed.filter(|t| t.session_id == session_id) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_ticket",
            "this link was already used or has expired; open the session again",
        );
    };
    let grant = Grant { session_id, user_id: ticket.user_id, expires_at: now.timestamp() + GRANT_TTL_SECS };
    let cached = match cached_session(app, session_id).await {
        Ok(cached) => cached,
        Err(response) => return *response,
    };
    if let Err(refused) = check_network(app, grant, cached.org_id, client_ip).await {
        return refused.into_response();
    }
    let cookie = app.origins.cookie.set(&grant.encode(&app.session_key), GRANT_TTL_SECS);
    let mut response = redirect(StatusCode::SEE_OTHER, location);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const DOMAIN: &str = "localhost:8001";

    fn session_named(request: &Request<Body>, domain: &str, last: &Memo<Addressed>) -> Option<Uuid> {
        let fields = RequestFields::read(request.headers());
        addressed_session(request.uri(), fields.host.as_ref(), domain, last).map(|addressed| addressed.id)
    }

    fn request(host: &str) -> Request<Body> {
        Request::builder().uri("/api/v1/http/x/").header("host", host).body(Body::empty()).unwrap()
    }

    #[test]
    fn the_host_must_name_one_session_in_canonical_form() {
        let id = Uuid::now_v7();
        assert_eq!(session_named(&request(&format!("{id}.localhost:8001")), DOMAIN, &Memo::default()), Some(id));
        let upper = id.hyphenated().to_string().to_uppercase();
        assert_eq!(
            session_named(&request(&format!("{upper}.LOCALHOST:8001")), DOMAIN, &Memo::default()),
            Some(id),
            "any case"
        );
        for host in [
            "localhost:8001".to_owned(),
            format!("{id}.localhost:9999"),
            format!("{id}.localhost"),
            format!("{}.localhost:8001", id.simple()),
            format!("x.{id}.localhost:8001"),
            format!("{id}.evil.localhost:8001"),
            format!("{id}localhost:8001"),
        ] {
            assert_eq!(session_named(&request(&host), DOMAIN, &Memo::default()), None, "{host}");
        }
        let absolute = Request::builder()
            .uri(format!("http://{id}.localhost:8001/api/v1/http/{id}/"))
            .header("host", "other.localhost:8001")
            .body(Body::empty())
            .unwrap();
        assert_eq!(session_named(&absolute, DOMAIN, &Memo::default()), Some(id), "the request target's authority wins");
    }

    #[test]
    fn only_the_sessions_own_canonical_path_is_served() {
        let id = Uuid::now_v7();
        assert_eq!(tail(&format!("/api/v1/http/{id}/a/b"), &Addressed::new(id)), Some("/a/b"));
        assert_eq!(tail(&format!("/api/v1/http/{id}"), &Addressed::new(id)), Some(""));
        assert_eq!(tail(&format!("/api/v1/http/{}/", Uuid::now_v7()), &Addressed::new(id)), None, "another session");
        assert_eq!(tail(&format!("/api/v1/http/{}/", id.simple()), &Addressed::new(id)), None);
        assert_eq!(
            tail(&format!("/api/v1/http/{}/", id.hyphenated().to_string().to_uppercase()), &Addressed::new(id)),
            None
        );
        assert_eq!(tail(&format!("/api/v1/http/{id}%2F..%2F/"), &Addressed::new(id)), None);
        assert_eq!(tail("/api/v1/sessions", &Addressed::new(id)), None);
        assert_eq!(tail("/api/v1/http/../sessions/", &Addressed::new(id)), None);
    }

    fn fetch(site: &str, mode: &str) -> RequestFields {
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_str(site).unwrap());
        headers.insert("sec-fetch-mode", HeaderValue::from_str(mode).unwrap());
        RequestFields::read(&headers)
    }

    #[test]
    fn other_sites_may_navigate_to_a_session_but_not_fetch_from_it() {
        assert!(!refused_cross_site(&Method::GET, &RequestFields::default()), "no metadata: not a browser page");
        assert!(!refused_cross_site(&Method::GET, &fetch("cross-site", "navigate")), "the UI frames the session");
        assert!(!refused_cross_site(&Method::POST, &fetch("same-origin", "cors")));
        assert!(!refused_cross_site(&Method::GET, &fetch("none", "navigate")), "typed into the address bar");
        assert!(refused_cross_site(&Method::GET, &fetch("cross-site", "cors")));
        assert!(refused_cross_site(&Method::GET, &fetch("cross-site", "no-cors")));
        assert!(refused_cross_site(&Method::GET, &fetch("same-site", "websocket")), "a sibling session");
        assert!(refused_cross_site(&Method::POST, &fetch("cross-site", "navigate")), "a cross-site form post");
    }

    #[test]
    fn websockets_from_other_origins_are_refused() {
        let mut headers = HeaderMap::new();
        let own = "http://a.localhost:8001";
        assert!(same_origin(&headers, own), "no Origin: not a browser page");
        headers.insert("origin", HeaderValue::from_static("http://a.localhost:8001"));
        assert!(same_origin(&headers, own));
        headers.insert("origin", HeaderValue::from_static("http://b.localhost:8001"));
        assert!(!same_origin(&headers, own));
    }

    #[test]
    fn streamer_answers_set_no_cookies_and_only_the_ui_frames_them() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_static("ss_refresh=planted; Domain=localhost"));
        headers.append(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors *"));
        confine(&mut headers, &Origins::new(&Urls::new(&Config::default())).frame_ancestors);
        assert!(headers.get(header::SET_COOKIE).is_none());
        let policies: Vec<_> = headers.get_all(header::CONTENT_SECURITY_POLICY).iter().collect();
        assert_eq!(policies, ["frame-ancestors *", "frame-ancestors http://localhost:8000"], "both are enforced");
    }

    fn cookie_header(spec: &CookieSpec, value: &str) -> HeaderMap {
        let set = spec.set(value, 60);
        let pair = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("theirs=1; {pair}")).unwrap());
        headers
    }

    fn granted(
        connection: &ClientConnection,
        headers: &HeaderMap,
        spec: &CookieSpec,
        key: &[u8],
        session_id: Uuid,
        now: i64,
    ) -> Option<Grant> {
        let fields = RequestFields::read(headers);
        connection.admit(headers, fields.only_cookie(), spec, key, session_id, now).map(|admitted| admitted.grant)
    }

    #[test]
    fn a_connection_remembers_the_cookie_that_verified_but_checks_its_session_and_expiry_each_time() {
        let spec = Origins::new(&Urls::new(&Config::default())).cookie;
        let key = b"session key";
        let grant = Grant { session_id: Uuid::now_v7(), user_id: Uuid::now_v7(), expires_at: 1000 };
        let headers = cookie_header(&spec, &grant.encode(key));
        let connection = ClientConnection::new(Ipv4Addr::LOCALHOST.into());
        assert_eq!(granted(&connection, &headers, &spec, b"another key", grant.session_id, 999), None);
        assert_eq!(granted(&connection, &headers, &spec, key, grant.session_id, 999), Some(grant));
        assert_eq!(
            granted(&connection, &headers, &spec, b"another key", grant.session_id, 999),
            Some(grant),
            "remembered: not verified again"
        );
        assert_eq!(granted(&connection, &headers, &spec, key, grant.session_id, 1000), None, "expired since");
        assert_eq!(granted(&connection, &headers, &spec, key, Uuid::now_v7(), 999), None, "another session's origin");
        let forged = cookie_header(&spec, &format!("{}x", grant.encode(key)));
        assert_eq!(
            granted(&connection, &forged, &spec, key, grant.session_id, 999),
            None,
            "any other value is verified"
        );
        let mut split = cookie_header(&spec, &grant.encode(key));
        split.append(header::COOKIE, HeaderValue::from_static("more=1"));
        assert_eq!(granted(&connection, &split, &spec, b"another key", grant.session_id, 999), None, "split: verified");
        assert_eq!(granted(&connection, &split, &spec, key, grant.session_id, 999), Some(grant));
    }

    #[test]
    fn what_the_streamer_gets_of_the_cookies_is_remembered_with_the_grant() {
        let spec = Origins::new(&Urls::new(&Config::default())).cookie;
        let grant = Grant { session_id: Uuid::now_v7(), user_id: Uuid::now_v7(), expires_at: 1000 };
        let headers = cookie_header(&spec, &grant.encode(b"key"));
        let connection = ClientConnection::new(Ipv4Addr::LOCALHOST.into());
        let expected =
            Admitted { grant, cookies: forward::StreamerCookies::Replaced(HeaderValue::from_static("theirs=1")) };
        let only = RequestFields::read(&headers).only_cookie().cloned();
        for _ in 0..2 {
            let admitted = connection.admit(&headers, only.as_ref(), &spec, b"key", grant.session_id, 999);
            assert_eq!(admitted, Some(expected.clone()));
        }
    }

    #[test]
    fn a_connection_remembers_the_session_its_host_named() {
        let (id, last) = (Uuid::now_v7(), Memo::default());
        let named = request(&format!("{id}.localhost:8001"));
        assert_eq!(session_named(&named, DOMAIN, &last), Some(id));
        assert_eq!(session_named(&request("localhost:8001"), DOMAIN, &last), None, "another host is read");
        let other = Uuid::now_v7();
        assert_eq!(session_named(&request(&format!("{other}.localhost:8001")), DOMAIN, &last), Some(other));
        assert_eq!(session_named(&named, DOMAIN, &last), Some(id));
    }

    #[test]
    fn the_ticket_is_taken_out_of_the_query() {
        assert_eq!(without_ticket("ticket=abc"), (Some("abc"), Cow::from("")));
        assert_eq!(without_ticket("a=1&ticket=abc&b=2"), (Some("abc"), Cow::from("a=1&b=2")));
        assert_eq!(without_ticket("a=1"), (None, Cow::from("a=1")));
        assert_eq!(without_ticket("a=1&&b=2&"), (None, Cow::from("a=1&b=2")), "empty pairs go");
    }
}

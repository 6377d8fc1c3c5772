//! The session proxy, served on the session origin: `/api/v1/http/<session id>/...` reaches that
//! session's streamer, for the people allowed to see the session and nobody else.
//!
//! A connect ticket (from `POST /api/v1/sessions/<id>/connect`) is traded once for a signed,
//! HttpOnly cookie scoped to the session's path; the proxy then checks that cookie on every
//! request without touching the store, and looks the session's endpoint up in a short-lived cache.

pub mod cookie;
pub mod forward;
pub mod routes;
pub mod streamer;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use streamspace_proto::SessionState;
use streamspace_store::Scope;
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::auth::secrets::sha256_hex;
use crate::error::ApiError;
use cookie::Grant;
use routes::Route;

const PREFIX: &str = "/api/v1/http/";
/// How long the session cookie lasts; opening the session again renews it.
const GRANT_TTL_SECS: i64 = 12 * 3600;

/// The path a session is served under on the session origin.
pub fn session_path(id: Uuid) -> String {
    format!("{PREFIX}{id}/")
}

/// The router of the session listener: nothing but the proxy.
pub fn router(app: AppState) -> Router {
    Router::new().fallback(proxy).layer(axum::middleware::from_fn(crate::telemetry::observe)).with_state(app)
}

/// The session id and the rest of the path, for paths under the prefix. The id must be in
/// canonical form, so no encoding trick names another session.
fn split_path(path: &str) -> Option<(Uuid, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (id, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let parsed = Uuid::parse_str(id).ok()?;
    (parsed.hyphenated().to_string() == id).then_some((parsed, tail))
}

/// The query without `ticket=...`.
fn without_ticket(query: &str) -> (Option<&str>, String) {
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
    (ticket, kept.join("&"))
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    ApiError::new(status, code, message).into_response()
}

async fn proxy(State(app): State<AppState>, request: Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let Some((session_id, tail)) = split_path(&path) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such session");
    };
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
        return redeem(&app, session_id, ticket, &location).await;
    }
    let now = app.clock.now().timestamp();
    let grant = crate::api::auth::cookie(request.headers(), cookie::NAME)
        .and_then(|value| Grant::decode(value, &app.session_key, session_id, now));
    let Some(grant) = grant else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "open this session from StreamSpace");
    };
    let route = match route(&app, session_id).await {
        Ok(route) => route,
        Err(response) => return *response,
    };
    if let Err(response) = check_access(&app, grant).await {
        return *response;
    }
    let Some(endpoint) = route.endpoint.filter(|_| route.state == SessionState::Running) else {
        return not_ready(route.state);
    };
    if cross_origin_upgrade(request.headers(), &app.config.session_origin()) {
        // The cookie is SameSite=Lax, so a page on another port of the same host would send it.
        return error(StatusCode::FORBIDDEN, "forbidden", "cross-origin WebSocket refused");
    }
    // Only the streamer's own API routes take its token: no HMAC for the rest.
    let token = if streamer::is_streamer_api(tail) { app.viewer_token(session_id) } else { String::new() };
    let query = streamer::query_with_token(request.headers(), tail, query, &token);
    let upstream = format!("{endpoint}{tail}{}", if query.is_empty() { String::new() } else { format!("?{query}") });
    let Ok(upstream) = upstream.parse::<Uri>() else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "invalid path");
    };
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |ConnectInfo(addr)| addr.ip());
    let credential = streamer::credential(tail, &token);
    let tunnel = match tunnel_slot(&app, &request, grant) {
        Ok(tunnel) => tunnel,
        Err(response) => return *response,
    };
    forward::forward(&app.http, request, upstream, credential, client_ip, route.traffic, tunnel).await
}

/// When the session cookie was issued (Unix seconds).
fn granted_at(grant: Grant) -> i64 {
    grant.expires_at - GRANT_TTL_SECS
}

/// The cookie is valid for hours; whether its user may still use the session is asked on every
/// request (answered from a cache that lives two seconds).
async fn check_access(app: &App, grant: Grant) -> Result<(), Box<Response<Body>>> {
    let granted_at = granted_at(grant);
    match app.session_access.allows(app.store.as_ref(), grant.user_id, grant.session_id, granted_at).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(Box::new(error(StatusCode::FORBIDDEN, "access_revoked", "your access to this session has ended")))
        }
        Err(err) => Err(Box::new(ApiError::from(err).into_response())),
    }
}

/// Registers an upgrade as a tunnel before it reaches the streamer, so the per-user cap holds and
/// the tunnel can be cut when access ends. Plain requests need no slot.
fn tunnel_slot(
    app: &App,
    request: &Request<Body>,
    grant: Grant,
) -> Result<Option<crate::connections::Registration>, Box<Response<Body>>> {
    if !forward::is_upgrade(request.headers()) {
        return Ok(None);
    }
    let cap = app.config.max_tunnels_per_user;
    let kind = crate::connections::Kind::Tunnel { session_id: grant.session_id, granted_at: granted_at(grant) };
    app.connections.open(grant.user_id, kind, cap).map(Some).map_err(|_| {
        let message = format!("at most {cap} open connections into sessions per user; close one first");
        Box::new(error(StatusCode::TOO_MANY_REQUESTS, "too_many_tunnels", &message))
    })
}

/// A browser WebSocket opened by a page that is not on the session origin.
fn cross_origin_upgrade(headers: &axum::http::HeaderMap, session_origin: &str) -> bool {
    forward::is_upgrade(headers)
        && headers.get(header::ORIGIN).is_some_and(|origin| origin.as_bytes() != session_origin.as_bytes())
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

/// The session's route, from the cache or the store. Ended or vanished sessions answer 404.
async fn route(app: &App, session_id: Uuid) -> Result<Route, Box<Response<Body>>> {
    if let Some(route) = app.routes.fresh(session_id) {
        return Ok(route);
    }
    let session = app
        .store
        .get_session(Scope::Platform, session_id)
        .await
        .map_err(|err| Box::new(ApiError::from(err).into_response()))?;
    match session {
        Some(session) if !session.state.is_terminal() => {
            Ok(app.routes.store(session_id, session.state, session.endpoint))
        }
        _ => {
            app.routes.forget(session_id);
            Err(Box::new(error(StatusCode::NOT_FOUND, "not_found", "no such session")))
        }
    }
}

/// Trades a ticket for the session cookie and redirects to the same URL without the ticket.
async fn redeem(app: &App, session_id: Uuid, ticket: &str, location: &str) -> Response<Body> {
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
    let secure = if app.config.session_origin().starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{}={}; Path={}; Max-Age={GRANT_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        cookie::NAME,
        grant.encode(&app.session_key),
        session_path(session_id)
    );
    let mut response = redirect(StatusCode::SEE_OTHER, location);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_session_ids_under_the_prefix_are_accepted() {
        let id = Uuid::now_v7();
        assert_eq!(split_path(&format!("/api/v1/http/{id}/a/b")), Some((id, "/a/b")));
        assert_eq!(split_path(&format!("/api/v1/http/{id}")), Some((id, "")));
        assert_eq!(split_path(&format!("/api/v1/http/{}/", id.simple())), None);
        assert_eq!(split_path(&format!("/api/v1/http/{}/", id.hyphenated().to_string().to_uppercase())), None);
        assert_eq!(split_path(&format!("/api/v1/http/{id}%2F..%2F/")), None);
        assert_eq!(split_path("/api/v1/sessions"), None);
        assert_eq!(split_path("/api/v1/http/../sessions/"), None);
    }

    #[test]
    fn websockets_from_other_origins_are_refused() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("upgrade"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(!cross_origin_upgrade(&headers, "http://localhost:8001"), "no Origin: not a browser page");
        headers.insert("origin", HeaderValue::from_static("http://localhost:8001"));
        assert!(!cross_origin_upgrade(&headers, "http://localhost:8001"));
        headers.insert("origin", HeaderValue::from_static("http://localhost:9999"));
        assert!(cross_origin_upgrade(&headers, "http://localhost:8001"));
    }

    #[test]
    fn the_ticket_is_taken_out_of_the_query() {
        assert_eq!(without_ticket("ticket=abc"), (Some("abc"), String::new()));
        assert_eq!(without_ticket("a=1&ticket=abc&b=2"), (Some("abc"), "a=1&b=2".to_owned()));
        assert_eq!(without_ticket("a=1"), (None, "a=1".to_owned()));
    }
}

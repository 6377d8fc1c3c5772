//! Facts about the request that audit events and throttling need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;

use crate::app::{App, AppState};
use crate::telemetry::TraceContext;
use axum::http::{Extensions, HeaderMap};

#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub client_ip: IpAddr,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
    /// The request's W3C trace context, carried into agent commands.
    pub traceparent: Option<String>,
}

/// The client address of an API request (see [`crate::auth::client_ip`]).
pub fn client_ip(extensions: &Extensions, headers: &HeaderMap, app: &App) -> IpAddr {
    // In-process callers (tests driving the router directly) have no socket: count them as local.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip());
    crate::auth::client_ip::of_request(peer, headers, &app.config.trusted_proxies)
}

impl RequestMeta {
    pub fn from_parts(parts: &Parts, state: &AppState) -> RequestMeta {
        RequestMeta {
            client_ip: client_ip(&parts.extensions, &parts.headers, state),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(512).collect()),
            trace_id: parts.extensions.get::<TraceContext>().map(|trace| trace.trace_id.clone()),
            traceparent: parts.extensions.get::<TraceContext>().map(TraceContext::traceparent),
        }
    }

    /// For work the control plane does on its own (timers, agent reports, bootstrap).
    pub fn internal() -> RequestMeta {
        RequestMeta { client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), user_agent: None, trace_id: None, traceparent: None }
    }

    pub fn traceparent(&self) -> Option<String> {
        self.traceparent.clone()
    }
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta::from_parts(parts, state))
    }
}

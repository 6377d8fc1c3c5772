//! Audits each WebSocket tunnel into a session when it opens and when it closes (with how long it
//! lasted), so compliance reports can say who was in which session, when and for how long
//! (ADR 0029). The writes happen in tasks of their own, off the proxy's path.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Utc};
use serde_json::json;
use streamspace_store::Scope;
use uuid::Uuid;

use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::session_grant::Grant;
use crate::connections::Registration;
use crate::context::RequestMeta;

pub struct TunnelAudit(Arc<Tunnel>);

struct Tunnel {
    app: AppState,
    id: Uuid,
    session_id: Uuid,
    user_id: Uuid,
    meta: RequestMeta,
    opened_at: DateTime<Utc>,
    /// Set once the upstream switched protocols: only then was there a tunnel to close.
    open: AtomicBool,
}

impl TunnelAudit {
    pub fn new(app: &AppState, grant: Grant, client_ip: IpAddr, request: &Request<Body>) -> TunnelAudit {
        let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        TunnelAudit(Arc::new(Tunnel {
            app: app.clone(),
            id: Uuid::now_v7(),
            session_id: grant.session_id,
            user_id: grant.user_id,
            meta: RequestMeta { client_ip, user_agent, trace_id: None, traceparent: None },
            opened_at: app.clock.now(),
            open: AtomicBool::new(false),
        }))
    }

    /// The registration, set to audit the close of the tunnel it holds, and this audit.
    pub fn watch(self, registration: Registration) -> (Registration, TunnelAudit) {
        let tunnel = self.0.clone();
        let registration = registration.on_close(move || {
            if tunnel.open.load(Ordering::Acquire) {
                tokio::spawn(async move { tunnel.record("session.tunnel_close").await });
            }
        });
        (registration, self)
    }

    /// The upstream switched protocols: the tunnel is open.
    pub fn opened(self) {
        self.0.open.store(true, Ordering::Release);
        tokio::spawn(async move { self.0.record("session.tunnel_open").await });
    }
}

impl Tunnel {
    async fn record(&self, action: &'static str) {
        if let Err(message) = self.try_record(&self.app, action).await {
            tracing::warn!(session_id = %self.session_id, action, error = message, "cannot audit a session tunnel");
        }
    }

    async fn try_record(&self, app: &App, action: &'static str) -> Result<(), String> {
        let session = app.store.get_session(Scope::Platform, self.session_id).await.map_err(|e| e.to_string())?;
        let user = app.store.get_user(Scope::Platform, self.user_id).await.map_err(|e| e.to_string())?;
        let actor = match &user {
            Some(user) => Actor::from(user),
            None => Actor { id: Some(self.user_id), name: self.user_id.to_string(), org_id: None },
        };
        let mut details = json!({"tunnel": self.id, "opened_at": self.opened_at});
        if action == "session.tunnel_close" {
            details["duration_secs"] = json!((app.clock.now() - self.opened_at).num_seconds());
        }
        let record = Record::new(action, format!("session:{}", self.session_id))
            .org(session.map(|session| session.org_id))
            .details(details);
        app.audit(&self.meta, &actor, record).await.map_err(|err| err.message)
    }
}

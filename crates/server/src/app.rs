//! The application state every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use streamspace_store::Store;

use crate::auth::jwt::JwtKeys;
use crate::auth::policy::SessionRole;
use crate::auth::secrets::Sealer;
use crate::auth::throttle::LoginThrottle;
use crate::clock::Clock;
use crate::config::{Config, Urls};

pub struct App {
    pub config: Config,
    /// The UI's URL and the session origins, resolved from `config` once.
    pub urls: Urls,
    pub store: Arc<dyn Store>,
    /// The other replicas on the same database, if any (ADR 0030).
    pub cluster: Arc<dyn streamspace_store::cluster::Cluster>,
    pub clock: Arc<dyn Clock>,
    pub jwt: JwtKeys,
    pub sealer: Sealer,
    pub throttle: LoginThrottle,
    /// Request budgets of the API and of the session proxy.
    pub api_limits: crate::rate_limit::Limiters,
    pub session_limits: crate::rate_limit::Limiters,
    /// The IP allow-lists as recently read.
    pub allow_lists: crate::auth::network::AllowLists,
    /// Sign-in password verifications, bounded.
    pub login_verifier: crate::auth::password::VerifyQueue,
    pub metrics: PrometheusHandle,
    /// Verified against when a login names an unknown user, so that answer takes as long as a
    /// wrong password.
    pub dummy_password_hash: String,
    /// Agents connected to this replica.
    pub hub: crate::hub::registry::Registry,
    /// Live updates for the UI.
    pub bus: crate::bus::Bus,
    /// Keys session proxy cookies and the streamers' master tokens.
    pub session_key: [u8; 32],
    /// Templates' names as views recently read them.
    pub template_names: crate::views::TemplateNames,
    /// The session proxy's view of sessions and their traffic.
    pub session_cache: crate::proxy::session_cache::SessionCache,
    /// The session proxy's view of the settings: session domain, cookie, framing policy.
    pub origins: crate::proxy::Origins,
    /// The session proxy's request metrics.
    pub session_requests: crate::telemetry::SessionRequests,
    /// The session proxy's connection pool to streamers.
    pub http: crate::proxy::forward::HttpClient,
    /// The addresses `run` listens on (they may differ from the settings, e.g. port 0).
    pub bound: std::sync::OnceLock<Vec<std::net::SocketAddr>>,
    /// Event streams and session tunnels open on this replica, cut when their access ends.
    pub connections: crate::connections::Registry,
    /// The session proxy's recent answers on who may use which session.
    pub session_access: crate::connections::access::SessionAccess,
    /// Who recent API callers are, kept briefly (ADR 0037).
    pub callers: crate::auth::principal::Callers,
    /// Links the audit chain; kept out of the database so that the database alone cannot rewrite it.
    pub audit_key: streamspace_store::audit::AuditKey,
    /// Single sign-on: what was learnt from identity providers.
    pub sso: crate::auth::sso::Clients,
    /// The client for identity providers and report webhooks.
    pub outbound: crate::outbound::OutboundHttp,
}

pub type AppState = Arc<App>;

impl App {
    /// Builds the state from settings, keys and already-opened parts.
    pub fn new(
        config: Config,
        keys: crate::keys::Keys,
        store: Arc<dyn Store>,
        cluster: Arc<dyn streamspace_store::cluster::Cluster>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let urls = Urls::new(&config);
        Ok(App {
            jwt: JwtKeys::new(&keys.jwt)?,
            sealer: Sealer::new(&keys.seal),
            throttle: LoginThrottle::new(config.login_throttle),
            allow_lists: Default::default(),
            api_limits: crate::rate_limit::Limiters::new(config.rate_limits, "api"),
            session_limits: crate::rate_limit::Limiters::new(config.rate_limits, "sessions"),
            login_verifier: crate::auth::password::VerifyQueue::new(config.login_verify_queue),
            metrics: crate::telemetry::metrics_handle(),
            dummy_password_hash: crate::auth::password::hash("not a real password")?,
            hub: Default::default(),
            bus: Default::default(),
            session_key: keys.session,
            template_names: crate::recent::Recent::new(crate::views::TEMPLATE_NAMES_FRESH_FOR),
            session_cache: crate::proxy::session_cache::SessionCache::new(clock.clone()),
            origins: crate::proxy::Origins::new(&urls),
            session_requests: Default::default(),
            http: crate::proxy::forward::client(),
            bound: Default::default(),
            connections: Default::default(),
            session_access: Default::default(),
            callers: crate::recent::Recent::new(crate::connections::access::FRESH_FOR),
            audit_key: keys.audit,
            sso: Default::default(),
            outbound: crate::outbound::OutboundHttp::new(config.outbound_ca.as_deref())?,
            urls,
            config,
            store,
            cluster,
            clock,
        })
    }
}

impl App {
    /// The control plane's own listeners, which no agent may name as a session's endpoint.
    pub fn listeners(&self) -> Vec<std::net::SocketAddr> {
        let mut listeners = vec![self.config.listen, self.config.session_listen];
        listeners.extend(self.bound.get().into_iter().flatten());
        listeners
    }

    /// This host's addresses, read anew each time: every session network adds one (its gateway).
    pub fn host_addresses(&self) -> Vec<std::net::IpAddr> {
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => interfaces.iter().map(|interface| interface.ip()).collect(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot list this host's addresses");
                Vec::new()
            }
        }
    }

    /// The streamer's settings for one session: secure mode with a master token only the control
    /// plane can derive, the session's own origin as its only allowed origin, and the UI as the only
    /// page allowed to frame it.
    pub fn streamer_env(&self, session_id: uuid::Uuid) -> [(String, String); 3] {
        [
            ("SELKIES_MASTER_TOKEN".to_owned(), self.master_token(session_id)),
            ("SELKIES_ALLOWED_ORIGINS".to_owned(), self.urls.session_origin(session_id)),
            ("SELKIES_FRAME_ANCESTORS".to_owned(), self.urls.public_url.clone()),
        ]
    }

    /// HMAC-SHA256(session key, session id): nothing to store, nothing to leak from the store.
    pub fn master_token(&self, session_id: uuid::Uuid) -> String {
        crate::auth::secrets::hmac_hex(&self.session_key, format!("selkies-master:{session_id}").as_bytes())
    }

    /// The token the session proxy presents to the streamer on behalf of someone taking part in
    /// the session as `role` (one per role: the streamer's role for it is a controller's or a
    /// viewer's); it never leaves the control plane.
    pub fn streamer_token(&self, session_id: uuid::Uuid, role: SessionRole) -> String {
        let purpose = match role {
            SessionRole::Owner => "selkies-viewer",
            SessionRole::Collaborator => "selkies-collaborator",
            SessionRole::Viewer => "selkies-watcher",
        };
        crate::auth::secrets::hmac_hex(&self.session_key, format!("{purpose}:{session_id}").as_bytes())
    }
}

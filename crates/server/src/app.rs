//! The application state every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use streamspace_store::Store;

use crate::auth::jwt::JwtKeys;
use crate::auth::secrets::Sealer;
use crate::auth::throttle::LoginThrottle;
use crate::clock::Clock;
use crate::config::Config;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub jwt: JwtKeys,
    pub sealer: Sealer,
    pub throttle: LoginThrottle,
    pub metrics: PrometheusHandle,
    /// Verified against when a login names an unknown user, so that answer takes as long as a
    /// wrong password.
    pub dummy_password_hash: String,
    /// Agents connected to this replica.
    pub hub: crate::hub::registry::Registry,
    /// Live updates for the UI.
    pub bus: crate::events::Bus,
    /// Keys session proxy cookies and the streamers' master tokens.
    pub session_key: [u8; 32],
    /// The session proxy's view of sessions and their traffic.
    pub routes: crate::proxy::routes::RouteCache,
    /// The session proxy's connection pool to streamers.
    pub http: crate::proxy::forward::HttpClient,
    /// Links the audit chain; kept out of the database so that the database alone cannot rewrite it.
    pub audit_key: streamspace_store::audit::AuditKey,
}

pub type AppState = Arc<App>;

impl App {
    /// Builds the state from settings and already-opened parts. Keys not given in the settings
    /// are read from (or created in) the data directory.
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir)?;
        let jwt_secret = match &config.jwt_secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => crate::keys::load_or_create(&config.data_dir, "jwt.key")?.to_vec(),
        };
        let seal_key = crate::keys::load_or_create(&config.data_dir, "seal.key")?;
        let session_key = crate::keys::load_or_create(&config.data_dir, "session.key")?;
        let audit_key = crate::keys::audit_key(&config)?;
        Ok(App {
            jwt: JwtKeys::new(&jwt_secret)?,
            sealer: Sealer::new(&seal_key),
            throttle: LoginThrottle::new(config.login_account_policy, config.login_ip_policy),
            metrics: crate::telemetry::metrics_handle(),
            dummy_password_hash: crate::auth::password::hash("not a real password")?,
            hub: Default::default(),
            bus: Default::default(),
            session_key,
            routes: Default::default(),
            http: crate::proxy::forward::client(),
            audit_key,
            config,
            store,
            clock,
        })
    }
}

impl App {
    /// The streamer's settings for one session: secure mode with a master token only the control
    /// plane can derive, and the session origin as its only allowed origin and the UI as the only
    /// page allowed to frame it.
    pub fn streamer_env(&self, session_id: uuid::Uuid) -> [(String, String); 3] {
        [
            ("SELKIES_MASTER_TOKEN".to_owned(), self.master_token(session_id)),
            ("SELKIES_ALLOWED_ORIGINS".to_owned(), self.config.session_origin()),
            ("SELKIES_FRAME_ANCESTORS".to_owned(), self.config.public_url()),
        ]
    }

    /// HMAC-SHA256(session key, session id): nothing to store, nothing to leak from the store.
    pub fn master_token(&self, session_id: uuid::Uuid) -> String {
        crate::auth::secrets::hmac_hex(&self.session_key, format!("selkies-master:{session_id}").as_bytes())
    }

    /// The token the session proxy presents to the streamer on behalf of the people it lets in;
    /// it never leaves the control plane.
    pub fn viewer_token(&self, session_id: uuid::Uuid) -> String {
        crate::auth::secrets::hmac_hex(&self.session_key, format!("selkies-viewer:{session_id}").as_bytes())
    }
}

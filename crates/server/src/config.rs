//! Control-plane settings. The binary fills them from flags and `STREAMSPACE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use ipnet::IpNet;

use uuid::Uuid;

use crate::auth::throttle::Policies;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: an SQLite file in the data directory.
    pub database_url: Option<String>,
    /// Password for the bootstrap `admin` user; generated and printed once when `None`.
    pub admin_password: Option<String>,
    /// HS256 secret for access tokens; generated and kept in the data directory when `None`.
    pub jwt_secret: Option<String>,
    /// Keys the audit chain; kept in the data directory when `None`. Replicas must share it.
    pub audit_key: Option<streamspace_store::audit::AuditKey>,
    /// A secret file every replica is given: the keys not set on their own (JWT, session cookie,
    /// sealing, audit) are derived from it instead of generated into the data directory.
    pub key_file: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    /// Sign-in attempt limits per account and address, per account, and per address.
    pub login_throttle: Policies,
    /// Sign-in password verifications that may wait for the argon2 thread; past it, `503 busy`.
    pub login_verify_queue: usize,
    /// The session proxy's own listener: sessions are served on this separate origin.
    pub session_listen: SocketAddr,
    /// `host[:port]` under which each session has a host of its own, `<session id>.<domain>`
    /// (`sessions.example.com` with a wildcard DNS name and certificate); default
    /// `localhost:<session port>`, which browsers resolve to loopback.
    pub session_domain: Option<String>,
    /// The UI/API origin's public URL; default from `listen`.
    pub public_url: Option<String>,
    /// How often agents send heartbeats; an agent is offline after three missed.
    pub heartbeat_interval_secs: u64,
    pub sessions: SessionTimers,
    /// How long a deleted user's persistent homes are kept before they are deleted with their volumes.
    pub home_deletion_grace: chrono::Duration,
    /// Header read timeout and connection cap, for each of the two listeners.
    pub http_limits: crate::serve::Limits,
    /// Quotas a new organization starts with (the bootstrap one too); administrators change them.
    pub default_quotas: streamspace_store::Quotas,
    /// Open live-update streams one user may hold (on each replica).
    pub max_event_streams_per_user: usize,
    /// Open WebSocket tunnels into sessions one user may hold (on each replica).
    pub max_tunnels_per_user: usize,
    /// How often the control plane verifies the whole audit chain for the
    /// `streamspace_audit_chain_intact` gauge; `None` turns it off.
    pub audit_verify_interval: Option<std::time::Duration>,
    /// Where scheduled compliance reports may go (ADR 0029).
    pub reports: crate::compliance::ReportConfig,
    /// TLS on both listeners; `None`: plain HTTP (behind a TLS-terminating proxy, or for local use).
    pub tls: Option<crate::tls::TlsSettings>,
    /// Request budgets per client address, user and org, for each listener (on each replica).
    pub rate_limits: crate::rate_limit::RateLimits,
    /// PEM certificates trusted, besides the system's, on the connections the control plane makes
    /// (identity providers, report webhooks): an organization's private CA.
    pub outbound_ca: Option<PathBuf>,
}

/// Session timers; `None` turns one off.
#[derive(Debug, Clone)]
pub struct SessionTimers {
    /// A session still scheduled or starting after this has failed.
    pub start_timeout: chrono::Duration,
    /// A running session without proxied traffic for this long is hibernated.
    pub idle_timeout: Option<chrono::Duration>,
    /// A running session this old is stopped.
    pub max_lifetime: Option<chrono::Duration>,
    /// A session hibernated this long is stopped and its container removed: a kept container holds
    /// disk and its agent's capacity for someone who may never come back.
    pub hibernated_expiry: Option<chrono::Duration>,
}

impl Default for SessionTimers {
    fn default() -> Self {
        SessionTimers {
            start_timeout: chrono::Duration::minutes(5),
            idle_timeout: Some(chrono::Duration::minutes(30)),
            max_lifetime: Some(chrono::Duration::hours(12)),
            hibernated_expiry: Some(chrono::Duration::days(7)),
        }
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("streamspace.db").display()))
    }
}

/// What the settings resolve to for browsers: the UI's URL and the session origins. Worked out
/// once, when the application is built from its settings ([`Urls::new`]), and read from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// The UI/API origin's public URL, without a trailing slash.
    pub public_url: String,
    /// The session domain, lower case, without scheme or trailing dot.
    pub session_domain: String,
    /// Sessions are served over HTTPS exactly when the UI is: a page cannot frame plain HTTP.
    session_scheme: &'static str,
    /// Cookies are `Secure` and `__Host-` prefixed whenever the UI is a secure context.
    pub secure_cookies: bool,
}

impl Urls {
    pub fn new(config: &Config) -> Urls {
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| local_url(scheme, config.listen))
            .trim_end_matches('/')
            .to_owned();
        let session_domain = match &config.session_domain {
            Some(domain) => domain.trim().trim_end_matches('.').to_ascii_lowercase(),
            None => format!("localhost:{}", config.session_listen.port()),
        };
        Urls {
            session_scheme: if public_url.starts_with("https://") { "https" } else { "http" },
            secure_cookies: crate::auth::cookies::is_secure_context(&public_url),
            public_url,
            session_domain,
        }
    }

    /// The origin of one session: `<scheme>://<session id>.<session domain>`.
    pub fn session_origin(&self, session_id: Uuid) -> String {
        format!("{}://{session_id}.{}", self.session_scheme, self.session_domain)
    }

    /// `Strict-Transport-Security` for both origins when the UI is served over HTTPS: browsers then
    /// never try plain HTTP again (a year, as browsers' preload lists expect).
    pub fn hsts(&self) -> Option<axum::http::HeaderValue> {
        (self.session_scheme == "https").then(|| axum::http::HeaderValue::from_static("max-age=31536000"))
    }

    /// Every session origin, as a CSP source expression.
    pub fn session_origins_source(&self) -> String {
        format!("{}://*.{}", self.session_scheme, self.session_domain)
    }
}

/// `http://localhost:<port>` for loopback listeners (browsers treat localhost as a secure
/// context, which the streamer's decoder needs), else the address itself.
fn local_url(scheme: &str, addr: SocketAddr) -> String {
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("{scheme}://localhost:{}", addr.port())
    } else {
        format!("{scheme}://{addr}")
    }
}

/// Finite, so that one tenant cannot take every agent by default: room for a team's everyday
/// use with the catalog's templates (2 CPUs, 2-3 GiB each); raise them per organization.
pub fn default_quotas() -> streamspace_store::Quotas {
    streamspace_store::Quotas {
        max_sessions: Some(20),
        max_sessions_per_user: Some(5),
        max_cpu_millis: Some(40_000),
        max_memory_mb: Some(64 * 1024),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_password: None,
            jwt_secret: None,
            audit_key: None,
            key_file: None,
            trusted_proxies: Vec::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            login_throttle: Policies::default(),
            // A verification takes tens of milliseconds: the last in line waits about a second.
            login_verify_queue: 32,
            session_listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            session_domain: None,
            public_url: None,
            heartbeat_interval_secs: 10,
            sessions: SessionTimers::default(),
            home_deletion_grace: chrono::Duration::days(7),
            http_limits: crate::serve::Limits::default(),
            default_quotas: default_quotas(),
            // A few browser tabs each; the streamer uses a handful of sockets per open session.
            max_event_streams_per_user: 8,
            max_tunnels_per_user: 32,
            audit_verify_interval: Some(std::time::Duration::from_secs(3600)),
            reports: crate::compliance::ReportConfig::default(),
            rate_limits: Default::default(),
            tls: None,
            outbound_ca: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_the_ui_and_sessions_are_on_localhost_ports() {
        let urls = Urls::new(&Config::default());
        assert_eq!(urls.public_url, "http://localhost:8000");
        assert_eq!(urls.session_domain, "localhost:8001");
        assert_eq!(urls.session_origin(Uuid::nil()), format!("http://{}.localhost:8001", Uuid::nil()));
        assert_eq!(urls.session_origins_source(), "http://*.localhost:8001");
        assert!(urls.secure_cookies, "localhost is a secure context");
    }

    #[test]
    fn sessions_follow_the_ui_to_https_and_the_domain_is_normalised() {
        let config = Config {
            public_url: Some("https://streamspace.example.com/".into()),
            session_domain: Some(" Sessions.Example.com. ".into()),
            ..Config::default()
        };
        let urls = Urls::new(&config);
        assert_eq!(urls.public_url, "https://streamspace.example.com");
        assert_eq!(urls.session_origins_source(), "https://*.sessions.example.com");
        assert!(urls.secure_cookies);
        let plain = Urls::new(&Config { public_url: Some("http://streamspace.lan:8000".into()), ..Config::default() });
        assert_eq!(plain.session_origins_source(), "http://*.localhost:8001");
        assert!(!plain.secure_cookies);
    }
}

//! Control-plane settings. The binary fills them from flags and `STREAMSPACE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use ipnet::IpNet;

use crate::auth::throttle::Policy;

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
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    /// Mark auth cookies `Secure` (on whenever the UI is served over HTTPS).
    pub secure_cookies: bool,
    pub login_account_policy: Policy,
    pub login_ip_policy: Policy,
    /// The session proxy's own listener: sessions are served on this separate origin.
    pub session_listen: SocketAddr,
    /// The session origin's public URL (`https://sessions.example.com`); default from `session_listen`.
    pub session_origin: Option<String>,
    /// The UI/API origin's public URL; default from `listen`.
    pub public_url: Option<String>,
    /// How often agents send heartbeats; an agent is offline after three missed.
    pub heartbeat_interval_secs: u64,
    pub sessions: SessionTimers,
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
}

impl Default for SessionTimers {
    fn default() -> Self {
        SessionTimers {
            start_timeout: chrono::Duration::minutes(5),
            idle_timeout: Some(chrono::Duration::minutes(30)),
            max_lifetime: Some(chrono::Duration::hours(12)),
        }
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("streamspace.db").display()))
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| local_url(self.listen)).trim_end_matches('/').to_owned()
    }

    pub fn session_origin(&self) -> String {
        self.session_origin.clone().unwrap_or_else(|| local_url(self.session_listen)).trim_end_matches('/').to_owned()
    }
}

/// `http://localhost:<port>` for loopback listeners (browsers treat localhost as a secure
/// context, which the streamer's decoder needs), else the address itself.
fn local_url(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
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
            trusted_proxies: Vec::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            secure_cookies: false,
            login_account_policy: Policy {
                max_failures: 5,
                window: chrono::Duration::minutes(15),
                lockout: chrono::Duration::minutes(15),
            },
            login_ip_policy: Policy {
                max_failures: 20,
                window: chrono::Duration::minutes(15),
                lockout: chrono::Duration::minutes(15),
            },
            session_listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            session_origin: None,
            public_url: None,
            heartbeat_interval_secs: 10,
            sessions: SessionTimers::default(),
        }
    }
}

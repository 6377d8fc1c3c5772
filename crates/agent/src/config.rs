//! What an agent needs to know to reach its control plane.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, bail};
use tokio_tungstenite::tungstenite::http::Uri;

/// The control plane's agent hub, relative to the server's base URL.
const HUB_PATH: &str = "/api/v1/agents/connect";

/// How the agent reaches and identifies itself to the control plane.
#[derive(Clone)]
pub struct AgentConfig {
    /// The control plane's base URLs: `http(s)://host[:port][/prefix]` (`ws(s)://` is accepted too). One URL
    /// (a single replica, or a load balancer in front of several), or one per replica: the agent tries them in
    /// turn and moves to the next as soon as one cannot be reached.
    pub servers: Vec<String>,
    /// The agent's token, sent as `Authorization: Bearer <token>`. Never logged.
    pub token: String,
    /// Free-form labels announced in `hello`, which the scheduler can match on.
    pub labels: BTreeMap<String, String>,
    /// The fencing epoch of this agent's term as leader of its HA group, announced in `hello`; `None` for an
    /// agent that runs alone.
    pub epoch: Option<u64>,
}

impl AgentConfig {
    /// A configuration for one control-plane URL, without labels.
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> AgentConfig {
        AgentConfig::with_servers(vec![server.into()], token)
    }

    /// A configuration for several control-plane URLs (one per replica), without labels.
    pub fn with_servers(servers: Vec<String>, token: impl Into<String>) -> AgentConfig {
        AgentConfig { servers, token: token.into(), labels: BTreeMap::new(), epoch: None }
    }

    /// The WebSocket URLs of the control plane's agent hub, one per server URL, in order.
    pub fn hub_urls(&self) -> anyhow::Result<Vec<String>> {
        if self.servers.is_empty() {
            bail!("no control-plane URL given");
        }
        self.servers.iter().map(|server| hub_url(server)).collect()
    }
}

/// Debug output redacts the token, so a config can be logged or shown in an error safely.
impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("servers", &self.servers)
            .field("token", &"<redacted>")
            .field("labels", &self.labels)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// Derives the hub's WebSocket URL from the server's base URL: `http` becomes `ws`, `https` becomes `wss`, and
/// the hub path is appended to whatever path prefix the server is mounted under.
fn hub_url(server: &str) -> anyhow::Result<String> {
    let server = server.trim();
    let Some((scheme, rest)) = server.split_once("://") else {
        bail!("server URL {server:?} has no scheme; expected http://host:port or https://host");
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => bail!("server URL {server:?} has scheme {other:?}; expected http or https"),
    };
    if rest.contains(['?', '#']) {
        bail!("server URL {server:?} must not have a query or fragment");
    }
    let base = rest.trim_end_matches('/');
    if base.is_empty() || base.starts_with('/') {
        bail!("server URL {server:?} has no host");
    }
    let url = format!("{scheme}://{base}{HUB_PATH}");
    // Catches what string surgery cannot, such as spaces or a bad port, before the first connection attempt.
    let uri = url.parse::<Uri>().with_context(|| format!("server URL {server:?} is not a valid URL"))?;
    if !port_is_valid(uri.authority().map(|authority| authority.as_str()).unwrap_or_default()) {
        bail!("server URL {server:?} has an invalid port");
    }
    Ok(url)
}

/// Whether an authority's port, if it has one, fits in 16 bits (`Uri` accepts any digits there).
fn port_is_valid(authority: &str) -> bool {
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, rest)| rest);
    // An IPv6 host's colons are inside brackets; the port, if any, follows the closing one.
    let after_host = host_and_port.rsplit_once(']').map_or(host_and_port, |(_, rest)| rest);
    after_host.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_schemes_map_to_websocket_schemes() {
        let cases = [
            ("http://localhost:8000", "ws://localhost:8000/api/v1/agents/connect"),
            ("https://cp.example.com/", "wss://cp.example.com/api/v1/agents/connect"),
            ("HTTPS://cp.example.com", "wss://cp.example.com/api/v1/agents/connect"),
            ("https://example.com/streamspace//", "wss://example.com/streamspace/api/v1/agents/connect"),
            ("ws://10.0.0.1:8000", "ws://10.0.0.1:8000/api/v1/agents/connect"),
            ("wss://[::1]:8443", "wss://[::1]:8443/api/v1/agents/connect"),
            ("http://[::1]", "ws://[::1]/api/v1/agents/connect"),
            ("http://user@host:8000", "ws://user@host:8000/api/v1/agents/connect"),
            ("  http://localhost:8000  ", "ws://localhost:8000/api/v1/agents/connect"),
        ];
        for (server, want) in cases {
            assert_eq!(hub_url(server).unwrap(), want, "{server}");
        }
    }

    #[test]
    fn unusable_server_urls_are_rejected_with_the_reason() {
        let cases = [
            ("localhost:8000", "no scheme"),
            ("ftp://example.com", "scheme \"ftp\""),
            ("http://", "no host"),
            ("http:///path", "no host"),
            ("http://example.com/?x=1", "query or fragment"),
            ("http://exa mple.com", "not a valid URL"),
            ("http://example.com:99999999", "invalid port"),
            ("http://[::1]:65536", "invalid port"),
        ];
        for (server, want) in cases {
            let error = format!("{:#}", hub_url(server).unwrap_err());
            assert!(error.contains(want), "{server}: {error}");
        }
    }

    #[test]
    fn every_server_url_becomes_a_hub_url_and_one_bad_url_fails_them_all() {
        let servers = vec!["http://10.0.0.1:8000".to_string(), "https://cp.example.com".to_string()];
        let config = AgentConfig::with_servers(servers.clone(), "t");
        assert_eq!(
            config.hub_urls().unwrap(),
            ["ws://10.0.0.1:8000/api/v1/agents/connect", "wss://cp.example.com/api/v1/agents/connect"]
        );
        let bad = AgentConfig::with_servers(vec![servers[0].clone(), "cp.example.com".into()], "t");
        assert!(format!("{:#}", bad.hub_urls().unwrap_err()).contains("no scheme"));
        let none = AgentConfig::with_servers(Vec::new(), "t");
        assert!(format!("{:#}", none.hub_urls().unwrap_err()).contains("no control-plane URL"));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut config = AgentConfig::new("http://localhost:8000", "s3cret-token");
        config.labels.insert("zone".into(), "a".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret") && shown.contains("<redacted>") && shown.contains("zone"), "{shown}");
    }
}

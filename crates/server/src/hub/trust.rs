//! What the control plane believes of an agent's reports. An agent runs on a host the control plane
//! does not control: a compromised one must not steer the session proxy at the control plane's own
//! ports, the cloud metadata service or loopback, grant itself administrator labels, or claim more
//! room than it was registered with.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use streamspace_proto::hub::Capacity;
use streamspace_store::CapacityLimit;

/// Label keys under this prefix are the platform's: only an administrator sets them, at registration.
pub const RESERVED_LABEL_PREFIX: &str = "streamspace.";

/// At most this many concurrent sessions on an agent registered without a session limit.
pub const DEFAULT_MAX_SESSIONS: i64 = 100;

/// What the session proxy will dial for an agent, and why an endpoint is refused.
pub struct EndpointPolicy<'a> {
    /// The control plane host's own addresses: whatever listens there (the control plane, its
    /// database, the Docker API) is not a session.
    pub host: &'a [IpAddr],
    /// The control plane's listeners; one on an unspecified address stands for every address, which
    /// matters when the host's addresses could not be listed.
    pub listeners: &'a [SocketAddr],
    /// Networks registered for the agent; empty allows any address not refused otherwise.
    pub allowed: &'a [IpNet],
}

impl EndpointPolicy<'_> {
    /// Accepts exactly `http://<IP literal>:<port>` (IPv6 in brackets), nothing around it, at an
    /// address the proxy may dial; the error says why not, for the session's failure reason.
    pub fn check(&self, endpoint: &str) -> Result<SocketAddr, String> {
        let authority = endpoint.strip_prefix("http://").ok_or("it is not an http:// URL")?;
        let address: SocketAddr = authority
            .parse()
            .map_err(|_| "it is not an IP address and port alone (no host name, path or credentials)")?;
        let ip = address.ip().to_canonical();
        if address.port() == 0 {
            return Err("port 0".to_owned());
        }
        if let Some(kind) = forbidden_kind(ip) {
            return Err(format!("{kind} addresses are not dialed"));
        }
        if self.host.contains(&ip) {
            return Err("it is an address of the control plane's own host".to_owned());
        }
        let listener = |own: &SocketAddr| own.port() == address.port() && (own.ip().is_unspecified() || own.ip() == ip);
        if self.listeners.iter().any(listener) {
            return Err("it is one of the control plane's own listeners".to_owned());
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|net| net.contains(&ip)) {
            return Err("it is outside the networks registered for the agent".to_owned());
        }
        Ok(SocketAddr::new(ip, address.port()))
    }
}

/// Addresses that reach the control plane's host itself or everything at once, never a session.
fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_loopback() => Some("loopback"),
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_multicast() => Some("multicast"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        // 0.0.0.0/8 means "this host" to many stacks.
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local"),
        IpAddr::V4(_) | IpAddr::V6(_) => None,
    }
}

/// At most this many labels of an agent's own are kept, each key and value at most this long (bytes):
/// they are stored and shown, and the agent chooses them.
pub const MAX_REPORTED_LABELS: usize = 32;
const MAX_LABEL_KEY: usize = 63;
const MAX_LABEL_VALUE: usize = 255;

/// The agent's labels it may set (no reserved key, none too long, no more than
/// `MAX_REPORTED_LABELS`), and the keys of the others, for the log (shortened, at most 8).
pub fn reported_labels(labels: BTreeMap<String, String>) -> (BTreeMap<String, String>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut ignored = Vec::new();
    for (key, value) in labels {
        let allowed = !key.starts_with(RESERVED_LABEL_PREFIX)
            && key.len() <= MAX_LABEL_KEY
            && value.len() <= MAX_LABEL_VALUE
            && kept.len() < MAX_REPORTED_LABELS;
        if allowed {
            kept.insert(key, value);
        } else if ignored.len() < 8 {
            ignored.push(key.chars().take(MAX_LABEL_KEY).collect());
        }
    }
    (kept, ignored)
}

/// The capacity the scheduler uses: the agent's report, no more than its registration allows. A
/// field the agent leaves unstated (0) takes the registered limit; sessions are always bounded.
pub fn capped_capacity(reported: Capacity, limit: CapacityLimit) -> Capacity {
    let cap = |reported: i64, limit: Option<i64>| match limit {
        Some(limit) if reported <= 0 => limit,
        Some(limit) => reported.min(limit),
        None => reported.max(0),
    };
    Capacity {
        max_sessions: cap(reported.max_sessions, Some(limit.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS))),
        cpu_millis: cap(reported.cpu_millis, limit.cpu_millis),
        memory_mb: cap(reported.memory_mb, limit.memory_mb),
    }
}

/// The registered networks, as stored at registration (where they were validated).
pub fn parse_cidrs(cidrs: &[String]) -> Vec<IpNet> {
    cidrs.iter().filter_map(|cidr| cidr.parse().ok()).collect()
}

/// An endpoint as it may be logged and audited: credentials in it masked and its length bounded,
/// since a hostile agent chooses both.
pub fn for_the_record(endpoint: &str) -> String {
    const MAX: usize = 200;
    let masked = match (endpoint.find("://"), endpoint.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &endpoint[..scheme_end], &endpoint[at..])
        }
        _ => endpoint.to_owned(),
    };
    masked.chars().take(MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners() -> Vec<SocketAddr> {
        vec!["0.0.0.0:8000".parse().unwrap(), "10.0.0.5:8001".parse().unwrap()]
    }

    fn host() -> Vec<IpAddr> {
        ["127.0.0.1", "10.0.0.5", "10.213.0.1", "::1", "fd00::1"].map(|ip| ip.parse().unwrap()).into()
    }

    #[test]
    fn endpoints_are_checked_against_a_table() {
        let (host, listeners) = (host(), listeners());
        let open = EndpointPolicy { host: &host, listeners: &listeners, allowed: &[] };
        let table: &[(&str, Result<&str, &str>)] = &[
            ("http://172.18.0.2:8080", Ok("172.18.0.2:8080")),
            ("http://10.213.0.34:8080", Ok("10.213.0.34:8080")),
            ("http://192.0.2.7:49153", Ok("192.0.2.7:49153")),
            ("http://[fd00::2]:8080", Ok("[fd00::2]:8080")),
            ("http://[::ffff:172.18.0.2]:8080", Ok("172.18.0.2:8080")),
            ("https://172.18.0.2:8080", Err("not an http:// URL")),
            ("ftp://172.18.0.2:8080", Err("not an http:// URL")),
            ("HTTP://172.18.0.2:8080", Err("not an http:// URL")),
            ("172.18.0.2:8080", Err("not an http:// URL")),
            ("http://172.18.0.2", Err("IP address and port")),
            ("http://172.18.0.2:8080/", Err("IP address and port")),
            ("http://172.18.0.2:8080/admin", Err("IP address and port")),
            ("http://172.18.0.2:8080?x=1", Err("IP address and port")),
            ("http://172.18.0.2:8080#x", Err("IP address and port")),
            ("http://user:pw@172.18.0.2:8080", Err("IP address and port")),
            ("http://localhost:8080", Err("IP address and port")),
            ("http://metadata.google.internal:80", Err("IP address and port")),
            ("http://fd00::2:8080", Err("IP address and port")),
            ("http://172.18.0.2:99999", Err("IP address and port")),
            ("http:// 172.18.0.2:8080", Err("IP address and port")),
            ("http://172.18.0.2:0", Err("port 0")),
            ("http://127.0.0.1:8000", Err("loopback")),
            ("http://127.1.2.3:8080", Err("loopback")),
            ("http://[::1]:8080", Err("loopback")),
            ("http://[::ffff:127.0.0.1]:8080", Err("loopback")),
            ("http://0.0.0.0:8080", Err("unspecified")),
            ("http://0.1.2.3:8080", Err("unspecified")),
            ("http://[::]:8080", Err("unspecified")),
            ("http://169.254.169.254:80", Err("link-local")),
            ("http://[fe80::1]:8080", Err("link-local")),
            ("http://[febf::1]:8080", Err("link-local")),
            ("http://224.0.0.1:8080", Err("multicast")),
            ("http://[ff02::1]:8080", Err("multicast")),
            ("http://255.255.255.255:8080", Err("broadcast")),
            // Anything on the control plane's host: its listeners, the gateway of a session network.
            ("http://10.0.0.5:8001", Err("control plane's own host")),
            ("http://10.0.0.5:5432", Err("control plane's own host")),
            ("http://10.213.0.1:8080", Err("control plane's own host")),
            ("http://[fd00::1]:2375", Err("control plane's own host")),
            ("http://[::ffff:10.0.0.5]:22", Err("control plane's own host")),
            ("http://10.213.0.2:8080", Ok("10.213.0.2:8080")),
            ("http://10.0.0.6:8001", Ok("10.0.0.6:8001")),
        ];
        for (endpoint, expected) in table {
            match (open.check(endpoint), expected) {
                (Ok(address), Ok(want)) => assert_eq!(address.to_string(), *want, "{endpoint}"),
                (Err(why), Err(want)) => assert!(why.contains(want), "{endpoint}: {why:?} should say {want:?}"),
                (got, want) => panic!("{endpoint}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn registered_networks_narrow_what_is_accepted() {
        let (host, listeners) = (host(), listeners());
        let allowed: Vec<IpNet> = parse_cidrs(&["10.213.0.0/16".into(), "fd00::/8".into(), "not a cidr".into()]);
        assert_eq!(allowed.len(), 2);
        let policy = EndpointPolicy { host: &host, listeners: &listeners, allowed: &allowed };
        assert!(policy.check("http://10.213.4.5:8080").is_ok());
        assert!(policy.check("http://[fd00::7]:8080").is_ok());
        assert!(policy.check("http://172.18.0.2:8080").unwrap_err().contains("outside the networks"));
        // A registered network never lets a refused address through.
        let loopback: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let policy = EndpointPolicy { host: &host, listeners: &listeners, allowed: &loopback };
        assert!(policy.check("http://127.0.0.1:8080").unwrap_err().contains("loopback"));
    }

    #[test]
    fn without_the_hosts_addresses_the_listeners_still_bind() {
        let listeners = listeners();
        let policy = EndpointPolicy { host: &[], listeners: &listeners, allowed: &[] };
        // Listening on every address: that port on any address may be the control plane.
        assert!(policy.check("http://172.18.0.1:8000").unwrap_err().contains("control plane's own listeners"));
        assert!(policy.check("http://10.0.0.5:8001").unwrap_err().contains("control plane's own listeners"));
        assert!(policy.check("http://10.0.0.6:8001").is_ok());
        assert!(policy.check("http://10.0.0.5:8080").is_ok());
    }

    #[test]
    fn reserved_labels_are_dropped_and_named() {
        let labels = BTreeMap::from([
            ("zone".to_owned(), "a".to_owned()),
            ("streamspace.builtin".to_owned(), "true".to_owned()),
            ("streamspace.io/tier".to_owned(), "admin".to_owned()),
            ("streamspacex".to_owned(), "ok".to_owned()),
        ]);
        let (kept, reserved) = reported_labels(labels);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["streamspacex", "zone"]);
        assert_eq!(reserved, ["streamspace.builtin", "streamspace.io/tier"]);
    }

    #[test]
    fn oversized_and_excess_labels_are_dropped() {
        let mut labels: BTreeMap<String, String> = (0..100).map(|i| (format!("k{i:03}"), "v".to_owned())).collect();
        labels.insert("long-value".into(), "v".repeat(256));
        labels.insert("x".repeat(64), "v".into());
        let (kept, ignored) = reported_labels(labels);
        assert_eq!(kept.len(), MAX_REPORTED_LABELS);
        assert!(kept.keys().all(|key| key.starts_with('k')), "{kept:?}");
        assert_eq!(ignored.len(), 8, "the log names a few");
        assert!(ignored.iter().all(|key| key.len() <= 63));
    }

    #[test]
    fn capacity_is_capped_by_the_registration() {
        let reported = Capacity { max_sessions: 500, cpu_millis: 64_000, memory_mb: 1_000_000 };
        let limit = CapacityLimit { max_sessions: Some(20), cpu_millis: Some(16_000), memory_mb: None };
        let capped = capped_capacity(reported, limit);
        assert_eq!(capped, Capacity { max_sessions: 20, cpu_millis: 16_000, memory_mb: 1_000_000 });

        let modest = Capacity { max_sessions: 5, cpu_millis: 8000, memory_mb: 4096 };
        assert_eq!(capped_capacity(modest, limit), modest, "a report under the limit stands");

        // Unstated (0) or nonsense (negative) values do not mean "unlimited".
        let unstated = Capacity { max_sessions: 0, cpu_millis: -1, memory_mb: 0 };
        let capped = capped_capacity(unstated, limit);
        assert_eq!(capped, Capacity { max_sessions: 20, cpu_millis: 16_000, memory_mb: 0 });
        let capped = capped_capacity(unstated, CapacityLimit::default());
        assert_eq!(capped.max_sessions, DEFAULT_MAX_SESSIONS, "sessions are bounded without a registered limit");
        assert_eq!(capped_capacity(reported, CapacityLimit::default()).max_sessions, DEFAULT_MAX_SESSIONS);
    }

    #[test]
    fn endpoints_are_recorded_short_and_without_credentials() {
        assert_eq!(for_the_record(&"x".repeat(5000)).len(), 200);
        assert_eq!(for_the_record("http://10.0.0.1:80"), "http://10.0.0.1:80");
        assert_eq!(for_the_record("http://admin:hunter2@10.0.0.1:80/x"), "http://***@10.0.0.1:80/x");
        assert_eq!(for_the_record("http://a@b:c@10.0.0.1:80"), "http://***@10.0.0.1:80");
        assert_eq!(for_the_record("10.0.0.1@x"), "10.0.0.1@x");
    }
}

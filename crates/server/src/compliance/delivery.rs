//! Where scheduled reports go: a directory the platform configures, or an org's webhook. Each is
//! a [`ReportSink`]; the round in `mod.rs` decides what is due and retries (ADR 0029).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::auth::secrets::hmac_hex;
use crate::outbound::OutboundHttp;

/// One report to hand over: its org and period, and the two renderings.
pub struct Delivery {
    pub org_id: uuid::Uuid,
    pub org_name: String,
    /// `<from>_<to>` as dates, e.g. `2026-12-01_2026-12-08`.
    pub period: String,
    pub json: Vec<u8>,
    pub csv: Vec<u8>,
}

#[async_trait]
pub trait ReportSink: Send + Sync {
    /// Delivers the report or says, in words safe to show the org's administrators, why not.
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String>;
}

/// Files `<base>/<org>/<org>_<period>.json` and `.csv`, each written to a temporary name and
/// renamed, so a reader never sees half a report.
pub struct DirectorySink {
    pub base: PathBuf,
}

#[async_trait]
impl ReportSink for DirectorySink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        // Org names are slugs, but the path must not depend on that staying true.
        let folder = if is_slug(&delivery.org_name) { delivery.org_name.clone() } else { delivery.org_id.to_string() };
        let dir = self.base.join(&folder);
        tokio::fs::create_dir_all(&dir).await.map_err(|err| file_error(&dir, &err))?;
        for (extension, body) in [("json", &delivery.json), ("csv", &delivery.csv)] {
            let path = dir.join(format!("{folder}_{}.{extension}", delivery.period));
            write_atomically(&path, body).await.map_err(|err| file_error(&path, &err))?;
        }
        Ok(())
    }
}

fn is_slug(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn file_error(path: &Path, err: &std::io::Error) -> String {
    tracing::warn!(path = %path.display(), error = %err, "cannot write a compliance report");
    "the platform's report directory cannot be written".to_owned()
}

async fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, body).await?;
    tokio::fs::rename(&partial, path).await
}

/// The headers a receiver checks: `X-StreamSpace-Signature: sha256=<hex>` is the HMAC-SHA256,
/// under the webhook's secret, of `<timestamp>.<body>`, the timestamp being
/// `X-StreamSpace-Timestamp` (Unix seconds), so a captured delivery cannot be replayed later.
pub const SIGNATURE_HEADER: &str = "x-streamspace-signature";
pub const TIMESTAMP_HEADER: &str = "x-streamspace-timestamp";
/// Names the org and period: a receiver can drop a delivery it already has (retries repeat it).
pub const DELIVERY_HEADER: &str = "x-streamspace-delivery";

pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("sha256={}", hmac_hex(secret, &message))
}

/// POSTs the JSON report to the org's URL.
pub struct WebhookSink {
    pub url: reqwest::Url,
    pub secret: Vec<u8>,
    pub timestamp: i64,
    /// Whether the URL may lead to loopback, private or link-local addresses (tests, or an
    /// operator who wants reports delivered inside their network).
    pub allow_private: bool,
    pub http: OutboundHttp,
}

#[async_trait]
impl ReportSink for WebhookSink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        let address = self.checked_address().await?;
        let request = axum::http::Request::post(self.url.as_str())
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, self.timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(&self.secret, self.timestamp, &delivery.json))
            .header(DELIVERY_HEADER, format!("{}/{}", delivery.org_id, delivery.period))
            .body(delivery.json.clone())
            .map_err(|_| "the webhook request cannot be built".to_owned())?;
        // The connection goes to the address just checked, not to what a second lookup (which
        // an attacker's DNS could answer differently) would say.
        let response = self
            .http
            .pinned_to(address)
            .execute(request)
            .await
            .map_err(|err| format!("the webhook cannot be reached ({})", err.kind()))?;
        // Only the status is kept: the receiver's body is none of the org's business (and the
        // URL must not become a way to read internal services).
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("the webhook answered {}", status.as_u16())),
        }
    }
}

impl WebhookSink {
    async fn checked_address(&self) -> Result<SocketAddr, String> {
        let host = self.url.host_str().ok_or("the webhook URL has no host")?;
        let port = self.url.port_or_known_default().ok_or("the webhook URL has no port")?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("the webhook host {host} cannot be resolved"))?
            .collect();
        let refused = addresses.iter().find(|address| !self.allow_private && is_internal(address.ip()));
        match (refused, addresses.first()) {
            (Some(address), _) => {
                Err(format!("the webhook host resolves to an internal address ({}), which is refused", address.ip()))
            }
            (None, Some(address)) => Ok(*address),
            (None, None) => Err(format!("the webhook host {host} has no address")),
        }
    }
}

/// Loopback, private, link-local (cloud metadata), unspecified, shared and unique-local
/// addresses: the control plane's neighbourhood, which an org's webhook must not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        let cases = [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("93.184.216.34", false),
            ("100.128.0.1", false),
            ("2606:4700::1111", false),
        ];
        for (ip, internal) in cases {
            assert_eq!(is_internal(ip.parse().unwrap()), internal, "{ip}");
        }
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let signed = signature(b"secret", 1_700_000_000, b"{}");
        assert!(signed.starts_with("sha256=") && signed.len() == 7 + 64, "{signed}");
        assert_ne!(signed, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(signed, signature(b"secret", 1_700_000_000, b"{ }"));
        assert_ne!(signed, signature(b"other", 1_700_000_000, b"{}"));
    }

    #[test]
    fn only_slugs_name_report_folders() {
        assert!(is_slug("acme-2"));
        assert!(!is_slug("../etc") && !is_slug("") && !is_slug("Acme"));
    }
}

//! TLS on both listeners (rustls with ring): a certificate and key from files, read again when they
//! change, or a self-signed set for trials (a local CA kept in the data directory, which issues a
//! certificate for the public host and one for each session host as browsers ask for it).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Urls;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files: the certificate chain (leaf first) and its private key. They must name the public
    /// host and `*.<session domain>`.
    Files { cert: PathBuf, key: PathBuf },
    /// Certificates issued by a CA kept in `<data dir>/tls/` (trust `ca.pem` to use them).
    SelfSigned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub source: TlsSource,
    /// How often certificate files are checked for a change.
    pub reload_interval: Duration,
}

impl TlsSettings {
    pub fn new(source: TlsSource) -> TlsSettings {
        TlsSettings { source, reload_interval: Duration::from_secs(10) }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate both listeners present; it can be replaced while they run.
pub struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Certificate")
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl Certificate {
    fn new(key: CertifiedKey) -> Certificate {
        Certificate { current: RwLock::new(Arc::new(key)) }
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

/// Certificate files and what was last loaded from them.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    loaded: Vec<u8>,
    certificate: Arc<Certificate>,
}

/// TLS for the listeners: the acceptor and, for files, what keeps the certificate current.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    files: Option<Files>,
    reload_interval: Duration,
}

impl Tls {
    /// Loads (or issues) the certificate; fails when the files are unreadable or do not match.
    pub fn new(settings: &TlsSettings, urls: &Urls, data_dir: &Path) -> anyhow::Result<Tls> {
        let (resolver, files) = match &settings.source {
            TlsSource::Files { cert, key } => {
                let pem = read_pair(cert, key)?;
                let certificate = Arc::new(Certificate::new(certified_key(&pem.0, &pem.1)?));
                let files =
                    Files { cert: cert.clone(), key: key.clone(), loaded: [pem.0, pem.1].concat(), certificate };
                (files.certificate.clone() as Arc<dyn ResolvesServerCert>, Some(files))
            }
            TlsSource::SelfSigned => (Arc::new(SelfSigned::new(urls, data_dir)?) as Arc<dyn ResolvesServerCert>, None),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            files,
            reload_interval: settings.reload_interval,
        })
    }

    /// Reads the certificate files again whenever they change, until dropped; a pair that does not
    /// load (half written, mismatched) is logged and the current certificate kept.
    pub async fn watch(self: Arc<Self>) {
        let Some(Files { cert: cert_path, key: key_path, loaded, certificate }) = &self.files else { return };
        let mut loaded = loaded.clone();
        let mut tick = tokio::time::interval(self.reload_interval);
        loop {
            tick.tick().await;
            let Ok((cert, key)) = read_pair(cert_path, key_path) else { continue };
            let pem = [cert.as_slice(), key.as_slice()].concat();
            if pem == loaded {
                continue;
            }
            match certified_key(&cert, &key) {
                Ok(key) => {
                    certificate.replace(key);
                    loaded = pem;
                    metrics::counter!("streamspace_tls_certificate_reloads_total").increment(1);
                    tracing::info!(cert = %cert_path.display(), "TLS certificate reloaded");
                }
                Err(err) => tracing::warn!(cert = %cert_path.display(), error = %err, "TLS certificate not reloaded"),
            }
        }
    }
}

fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    Ok((read(cert)?, read(key)?))
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>().context("reading the certificate PEM")?;
    if chain.is_empty() {
        return Err(anyhow!("the certificate file holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("reading the private key PEM")?;
    CertifiedKey::from_der(chain, key, &provider()).context("the private key does not fit the certificate")
}

/// The self-signed CA's name; the same at every start so that a kept key issues under it again.
fn ca_params() -> anyhow::Result<rcgen::CertificateParams> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "StreamSpace self-signed CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The CA in `<data dir>/tls/`, made on first use: `ca.pem` (to trust) and `ca.key` (0600).
fn local_ca(data_dir: &Path) -> anyhow::Result<(rcgen::Issuer<'static, rcgen::KeyPair>, String)> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let key = if cert_path.exists() && key_path.exists() {
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key_path)?)?
    } else {
        let key = rcgen::KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        crate::keys::write_private(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.pem())?;
        key
    };
    Ok((rcgen::Issuer::new(ca_params()?, key), std::fs::read_to_string(&cert_path)?))
}

/// Issues by the local CA: the public host's certificate, and one for each session host as
/// browsers ask for it (a wildcard under a single label such as `*.localhost` is refused by
/// browsers and by webpki, and the default session domain is `localhost`).
pub struct SelfSigned {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    public: Arc<CertifiedKey>,
    /// `.<session domain host>`, lower case.
    session_suffix: String,
    sessions: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// Session hosts' certificates kept; past it the cache starts over.
const MAX_SESSION_CERTIFICATES: usize = 4096;

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SelfSigned")
    }
}

impl SelfSigned {
    pub fn new(urls: &Urls, data_dir: &Path) -> anyhow::Result<SelfSigned> {
        let (issuer, ca_pem) = local_ca(data_dir)?;
        let (public_host, session_host) = hosts(urls);
        let public = Arc::new(issue(&issuer, &ca_pem, &public_host)?);
        let session_suffix = format!(".{session_host}");
        Ok(SelfSigned { issuer, ca_pem, public, session_suffix, sessions: RwLock::default() })
    }

    /// The certificate for one session host, issued on first use.
    fn session(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let label = host.strip_suffix(&self.session_suffix)?;
        uuid::Uuid::try_parse(label).ok()?;
        if let Some(key) = self.sessions.read().unwrap_or_else(|p| p.into_inner()).get(host) {
            return Some(key.clone());
        }
        let key = Arc::new(issue(&self.issuer, &self.ca_pem, host).ok()?);
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSION_CERTIFICATES {
            sessions.clear();
        }
        sessions.insert(host.to_owned(), key.clone());
        Some(key)
    }
}

impl ResolvesServerCert for SelfSigned {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name().map(str::to_ascii_lowercase);
        host.and_then(|host| self.session(&host)).or_else(|| Some(self.public.clone()))
    }
}

/// A certificate for `host` by `issuer`, with the CA in its chain.
fn issue(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>, ca_pem: &str, host: &str) -> anyhow::Result<CertifiedKey> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, host);
    let key = rcgen::KeyPair::generate()?;
    let leaf = params.signed_by(&key, issuer)?;
    certified_key(format!("{}{ca_pem}", leaf.pem()).as_bytes(), key.serialize_pem().as_bytes())
}

/// The public host and the session domain's host, without ports.
fn hosts(urls: &Urls) -> (String, String) {
    let host = |authority: &str| {
        let authority = authority.split('/').next().unwrap_or(authority);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
        };
        host.to_ascii_lowercase()
    };
    let public = urls.public_url.split_once("://").map_or(urls.public_url.as_str(), |(_, rest)| rest);
    (host(public), host(&urls.session_domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_hosts_are_taken_from_the_urls_without_ports() {
        let config = Config {
            public_url: Some("https://StreamSpace.example.com:8443/".into()),
            session_domain: Some("sessions.example.com:8444".into()),
            ..Config::default()
        };
        let expected = ("streamspace.example.com".to_owned(), "sessions.example.com".to_owned());
        assert_eq!(hosts(&Urls::new(&config)), expected);
        assert_eq!(hosts(&Urls::new(&Config::default())), ("localhost".to_owned(), "localhost".to_owned()));
    }

    #[test]
    fn the_local_ca_is_kept_and_issues_for_session_hosts_only() {
        let dir = tempfile::tempdir().unwrap();
        let urls = Urls::new(&Config::default());
        let first = SelfSigned::new(&urls, dir.path()).unwrap();
        let again = SelfSigned::new(&urls, dir.path()).unwrap();
        assert_eq!(first.ca_pem, again.ca_pem, "the CA is kept across restarts");
        let session = format!("{}.localhost", uuid::Uuid::now_v7());
        let issued = again.session(&session).unwrap();
        assert!(Arc::ptr_eq(&issued, &again.session(&session).unwrap()), "issued once");
        assert!(again.session("evil.localhost").is_none());
        assert!(again.session(&format!("{}.example.com", uuid::Uuid::now_v7())).is_none());
    }
}

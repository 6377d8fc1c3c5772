//! The HTTP client the control plane reaches the outside world with (identity providers, report
//! webhooks): rustls over ring with the system's trust roots plus any the operator adds, short
//! timeouts, no redirects followed, and bounded answers. The `oauth2`/`openidconnect` crates call
//! it through their `AsyncHttpClient` trait, so they bring no client of their own (ADR 0025).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::header::{ACCEPT, AUTHORIZATION};
use axum::http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Connecting takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request, answer included, takes at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// No discovery document, key set, token, user-info or webhook answer is this large.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the answer failed (larger than {MAX_BODY_BYTES} bytes?): {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("no answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
    #[error("malformed request: {0}")]
    Http(#[from] axum::http::Error),
}

impl OutboundError {
    /// Few words on what went wrong, safe to show to the people who configured the URL.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundError::Timeout => "timed out",
            OutboundError::Request(err) => match tls_error(err) {
                Some(rustls::Error::InvalidCertificate(_)) => "its certificate is not trusted",
                Some(_) => "the TLS handshake failed",
                None if err.is_connect() => "connection failed",
                None => "request failed",
            },
            _ => "request failed",
        }
    }
}

/// The TLS error behind a failed request, if that is what failed (hyper-rustls wraps it in
/// `io::Error`s, whose `source` skips what they wrap).
fn tls_error<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[derive(Clone)]
pub struct OutboundHttp {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
    tls: Arc<rustls::ClientConfig>,
}

impl OutboundHttp {
    /// A client trusting the system's roots and the PEM certificates in `extra_roots` (a private
    /// CA of the organization's identity provider or report receiver).
    pub fn new(extra_roots: Option<&Path>) -> anyhow::Result<OutboundHttp> {
        let extra = match extra_roots {
            Some(path) => CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading the outbound CA certificates {}", path.display()))?,
            None => Vec::new(),
        };
        Ok(OutboundHttp::with_tls(Arc::new(tls_config(extra)), Resolver::System))
    }

    fn with_tls(tls: Arc<rustls::ClientConfig>, resolver: Resolver) -> OutboundHttp {
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        OutboundHttp { client: Client::builder(TokioExecutor::new()).build(https), tls }
    }

    /// The same trust, but every connection goes to `address` whatever the URL's host resolves
    /// to by then: a name checked once cannot be re-pointed by its DNS before the connection.
    /// The certificate is still checked against the URL's host.
    pub fn pinned_to(&self, address: SocketAddr) -> OutboundHttp {
        OutboundHttp::with_tls(self.tls.clone(), Resolver::Pinned(address))
    }

    /// One request, its whole answer read (bounded), within the timeout. Redirects are answers
    /// like any other: nothing is followed.
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, OutboundError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let (parts, body) = self.client.request(request).await?.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES).collect().await.map_err(OutboundError::Body)?;
            Ok(Response::from_parts(parts, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| OutboundError::Timeout)?
    }

    /// A GET with the bearer token, answering the JSON body (user-info endpoints).
    pub async fn get_json(&self, url: &str, bearer: &str) -> Result<serde_json::Value, String> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(AUTHORIZATION, format!("Bearer {bearer}"))
            .header(ACCEPT, "application/json")
            .header("user-agent", concat!("StreamSpace/", env!("CARGO_PKG_VERSION")))
            .body(Vec::new())
            .map_err(|e| format!("user info request: {e}"))?;
        let response = self.execute(request).await.map_err(|e| format!("user info request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("user info answered {}", response.status()));
        }
        serde_json::from_slice(response.body()).map_err(|e| format!("user info is not JSON: {e}"))
    }
}

/// rustls with ring, the system's trust roots (where a TLS-intercepting proxy's CA lives too) and
/// the operator's.
fn tls_config(extra: Vec<CertificateDer<'static>>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    // A system certificate rustls cannot use is skipped rather than failing every connection.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots.add_parsable_certificates(extra);
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Host names to addresses: the system's resolver, or one address fixed in advance.
#[derive(Clone)]
enum Resolver {
    System,
    Pinned(SocketAddr),
}

type Addresses = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for Resolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Addresses>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self.clone() {
            Resolver::Pinned(address) => Box::pin(std::future::ready(Ok(vec![address].into_iter()))),
            // Port 0: the connector puts the URL's port in.
            Resolver::System => Box::pin(async move {
                Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.collect::<Vec<_>>().into_iter())
            }),
        }
    }
}

impl<'c> AsyncHttpClient<'c> for OutboundHttp {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OutboundError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

//! The HTTP client the server talks to identity providers with: rustls over ring with the
//! system's trust roots, short timeouts, no redirects (a token endpoint that redirects is not
//! followed anywhere), and bounded answers. The `oauth2`/`openidconnect` crates call it through
//! their `AsyncHttpClient` trait, so they bring no client of their own (ADR 0025).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{ACCEPT, AUTHORIZATION};
use axum::http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Connecting to a provider takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request to a provider, answer included, takes at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// No discovery document, key set, token or user-info answer is this large.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdpHttpError {
    #[error("request to the identity provider failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the identity provider's answer failed (larger than {MAX_BODY_BYTES} bytes?): {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    #[error("the identity provider did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
    #[error("malformed request: {0}")]
    Http(#[from] axum::http::Error),
}

#[derive(Clone)]
pub struct IdpHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl IdpHttp {
    pub fn new() -> IdpHttp {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        IdpHttp { client: Client::builder(TokioExecutor::new()).build(https) }
    }

    /// One request, its whole answer read (bounded), within the timeout. Redirects are answers
    /// like any other: nothing is followed.
    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let (parts, body) = self.client.request(request).await?.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES).collect().await.map_err(IdpHttpError::Body)?;
            Ok(Response::from_parts(parts, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| IdpHttpError::Timeout)?
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

impl Default for IdpHttp {
    fn default() -> Self {
        IdpHttp::new()
    }
}

/// rustls with ring and the system's trust roots (where a TLS-intercepting proxy's CA lives too).
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate rustls cannot use is skipped rather than failing every provider.
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = IdpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, IdpHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

//! The HTTP client the server talks to identity providers with: rustls over ring with the
//! system's trust roots, short timeouts, no redirects (a token endpoint that redirects is not
//! followed anywhere), and bounded answers. The `oauth2`/`openidconnect` crates call it through
//! their `AsyncHttpClient` trait, so they bring no client of their own (ADR 0025).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Connecting to a provider takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request to a provider takes at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// No discovery document, key set, token or user-info answer is this large.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IdpHttpError {
    #[error("request to the identity provider failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("the identity provider's answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("not a URL: {0}")]
    Url(#[from] oauth2::url::ParseError),
    #[error("malformed HTTP exchange: {0}")]
    Http(#[from] axum::http::Error),
}

#[derive(Clone)]
pub struct IdpHttp {
    client: reqwest::Client,
}

impl IdpHttp {
    pub fn new() -> anyhow::Result<IdpHttp> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("StreamSpace/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(IdpHttp { client })
    }

    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())?;
        let response = self.client.request(parts.method, url).headers(parts.headers).body(body).send().await?;
        let mut builder = axum::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        Ok(builder.body(read_bounded(response).await?)?)
    }

    /// A GET with the bearer token, answering the JSON body (user-info endpoints).
    pub async fn get_json(&self, url: &str, bearer: &str) -> Result<serde_json::Value, String> {
        let response = self
            .client
            .get(url)
            .bearer_auth(bearer)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("user info request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("user info answered {}", response.status()));
        }
        let body = read_bounded(response).await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("user info is not JSON: {e}"))
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, IdpHttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(IdpHttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

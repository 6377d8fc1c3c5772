//! TLS on both listeners with a real TLS client (rustls on ring) that trusts only the test's CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use streamspace_server::tls::{TlsSettings, TlsSource};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::harness::{ADMIN_PASSWORD, TestApp};
use crate::hostile_agents::eventually;

fn client_config(ca_pem: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// One HTTPS request to `addr` for `host`, trusting `ca_pem` alone: the answer's status and headers.
async fn https(ca_pem: &[u8], host: &str, addr: SocketAddr, request: Request<String>) -> (StatusCode, HeaderMap) {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from(host.to_owned()).unwrap(), tcp).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    let mut request = request.map(|body| Full::new(Bytes::from(body)));
    let authority = format!("{host}:{}", addr.port());
    request.headers_mut().insert("host", authority.parse().unwrap());
    let response = sender.send_request(request).await.unwrap();
    (response.status(), response.headers().clone())
}

fn get(path: &str) -> Request<String> {
    Request::get(path).body(String::new()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_serves_both_origins_with_hsts_secure_cookies_and_redirects_plain_http() {
    let t = TestApp::with_config(|config| config.tls = Some(TlsSettings::new(TlsSource::SelfSigned))).await;
    assert!(t.app.urls.public_url.starts_with("https://"), "the public URL follows TLS");
    let served = t.listen().await;
    // The listeners make the CA as they start, in a task of their own.
    let ca_path = t.app.config.data_dir.join("tls/ca.pem");
    let ca = eventually("the local CA", || async {
        std::fs::read(&ca_path).ok().filter(|pem| pem.ends_with(b"-----END CERTIFICATE-----\n"))
    })
    .await;
    let session = Uuid::now_v7();
    let session_host = format!("{session}.localhost");

    let (status, headers) = https(&ca, "localhost", served.api, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");
    let credentials = json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let login = Request::post("/api/v1/auth/login").header("content-type", "application/json").body(credentials);
    let (status, headers) = https(&ca, "localhost", served.api, login.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-ss_refresh=") && cookie.ends_with("; Secure"), "{cookie}");

    // The session origin presents the wildcard certificate.
    let proxied = get(&format!("/api/v1/http/{session}/"));
    let (status, headers) = https(&ca, &session_host, served.sessions, proxied).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such session, over TLS");
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");

    // Plain HTTP to either port is sent to HTTPS, on the same host, port and path.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (addr, path) in [(served.api, "/api/v1/me?x=1"), (served.sessions, "/api/v1/http/x/")] {
        let host = format!("localhost:{}", addr.port());
        let redirect = plain.get(format!("http://{}{path}", addr)).header("host", &host).send().await.unwrap();
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()["location"], format!("https://{host}{path}").as_str());
    }
}

/// A CA and a way to issue certificates for localhost under it.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// (certificate PEM, key PEM, certificate DER) for localhost and *.localhost.
    fn issue(&self, name: &str) -> (String, String, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "*.localhost".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// The leaf certificate a fresh TLS connection to `addr` is shown.
async fn presented(ca_pem: &[u8], addr: SocketAddr) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let chain: &[CertificateDer<'_>] = tls.get_ref().1.peer_certificates().unwrap();
    chain[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ca = TestCa::new();
    let (first_pem, first_key, first_der) = ca.issue("first");
    std::fs::write(&cert_path, &first_pem).unwrap();
    std::fs::write(&key_path, &first_key).unwrap();
    let source = TlsSource::Files { cert: cert_path.clone(), key: key_path.clone() };
    let settings = TlsSettings { source, reload_interval: Duration::from_millis(100) };
    let t = TestApp::with_config(|config| config.tls = Some(settings)).await;
    let served = t.listen().await;
    assert_eq!(presented(ca.pem.as_bytes(), served.api).await, first_der);
    assert_eq!(presented(ca.pem.as_bytes(), served.sessions).await, first_der);

    // The key is written first: until the certificate follows, the pair does not fit and the
    // first certificate stays.
    let (second_pem, second_key, second_der) = ca.issue("second");
    std::fs::write(&key_path, &second_key).unwrap();
    std::fs::write(&cert_path, &second_pem).unwrap();
    for addr in [served.api, served.sessions] {
        let ca = ca.pem.as_bytes();
        eventually("the new certificate", || async { (presented(ca, addr).await == second_der).then_some(()) }).await;
    }
    let (status, _) = https(ca.pem.as_bytes(), "localhost", served.api, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

//! The Node SAML IdP, started once per test process on 127.0.0.1:0; it exits when our stdin to it closes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub struct TestIdp {
    pub base_url: String,
    _process: Child,
}

static IDP: OnceLock<TestIdp> = OnceLock::new();

pub fn idp() -> &'static TestIdp {
    IDP.get_or_init(start)
}

fn start() -> TestIdp {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/saml");
    assert!(dir.join("node_modules").is_dir(), "run `make idp-deps` first (npm ci in {})", dir.display());
    let mut process = Command::new("node")
        .arg("idp.js")
        .current_dir(&dir)
        .env("IDP_KEY_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/saml-idp-keys"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs the SAML IdP");
    let stdout = process.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the IdP says where it listens");
    let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("unexpected IdP output {line:?}"));
    TestIdp { base_url: format!("http://127.0.0.1:{port}"), _process: process }
}

impl TestIdp {
    /// The IdP's metadata naming the signing certificates `certs` (`current`, `next`).
    pub fn metadata_url(&self, certs: &str) -> String {
        format!("{}/metadata?certs={certs}", self.base_url)
    }

    /// Follows an SP's redirect to the IdP (with the test's `knobs` added) and returns the form the IdP
    /// answers, as a browser would post it.
    pub async fn respond(&self, redirect_url: &str, knobs: &str) -> PostedForm {
        let url = if knobs.is_empty() { redirect_url.to_owned() } else { format!("{redirect_url}&{knobs}") };
        PostedForm::of(&get_text(&url).await)
    }

    /// An unsolicited (IdP-initiated) response for the SP `entity_id` with its ACS `acs_url`.
    pub async fn unsolicited(&self, entity_id: &str, acs_url: &str) -> PostedForm {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/idp-initiated", self.base_url),
            [("sp", entity_id), ("acs", acs_url)],
        )
        .unwrap();
        PostedForm::of(&get_text(url.as_str()).await)
    }
}

/// A client for the tests' plain-HTTP calls, redirects not followed.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub async fn get_text(url: &str) -> String {
    let response = http_client().get(url).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "the IdP answered {status}: {body}");
    body
}

/// The fields of the IdP's auto-posting form.
pub struct PostedForm {
    pub saml_response: String,
    pub relay_state: Option<String>,
}

impl PostedForm {
    fn of(html: &str) -> PostedForm {
        let saml_response = hidden_field(html, "SAMLResponse").unwrap_or_else(|| panic!("no SAMLResponse in {html}"));
        PostedForm { saml_response, relay_state: hidden_field(html, "RelayState") }
    }
}

/// The value of the hidden input `name` (the IdP's values need no unescaping: base64 and our state tokens).
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

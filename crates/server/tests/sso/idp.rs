//! The Node identity providers: started once per test process, stopped when it ends (the
//! provider exits when its stdin closes).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Idp {
    pub issuer: String,
    pub github: String,
    /// Held open for the life of the process; the provider exits when it closes.
    _process: Mutex<(Child, ChildStdin)>,
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/oidc")
}

/// The providers, started on first use.
pub fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(start)
}

fn start() -> Idp {
    let dir = idp_dir();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the test identity provider's packages are missing: run `make idp-deps` (npm ci in {})",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("idp.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready, announced) = std::sync::mpsc::channel();
    // Reads the announcement, then keeps draining: a closed pipe would kill the provider at its
    // next write.
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = ready.send(lines.next().and_then(Result::ok).unwrap_or_default());
        lines.for_each(drop);
    });
    let line = announced.recv_timeout(Duration::from_secs(30)).expect("the identity provider announces its URL");
    let urls: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    Idp {
        issuer: urls["issuer"].as_str().unwrap().to_owned(),
        github: urls["github"].as_str().unwrap().to_owned(),
        _process: Mutex::new((child, stdin)),
    }
}

impl Idp {
    async fn post(&self, url: String, body: Value) -> Value {
        let response = reqwest::Client::new().post(&url).json(&body).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {body}");
        body
    }

    /// Registers an OIDC client (dynamic registration); answers its id and secret.
    pub async fn register_oidc_client(&self, redirect_uri: &str, post_logout_redirect_uri: &str) -> (String, String) {
        let client = json!({
            "redirect_uris": [redirect_uri],
            "post_logout_redirect_uris": [post_logout_redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let registered = self.post(format!("{}/reg", self.issuer), client).await;
        (registered["client_id"].as_str().unwrap().to_owned(), registered["client_secret"].as_str().unwrap().to_owned())
    }

    pub async fn register_github_client(&self, redirect_uri: &str) -> (String, String) {
        let origin = self.issuer.clone();
        let registered =
            self.post(format!("{origin}/test/github/clients"), json!({"redirect_uri": redirect_uri})).await;
        (registered["client_id"].as_str().unwrap().to_owned(), registered["client_secret"].as_str().unwrap().to_owned())
    }

    /// Who signs in next at this client, and how the token endpoint's ID token is tampered with.
    pub async fn knobs(&self, client_id: &str, user: Value, tamper: Option<&str>) {
        let knobs = json!({"client_id": client_id, "user": user, "tamper": tamper});
        self.post(format!("{}/test/knobs", self.issuer), knobs).await;
    }

    /// The provider signs with a new key from now on (the old one stays published).
    pub async fn rotate_keys(&self) -> String {
        let rotated = self.post(format!("{}/test/rotate", self.issuer), json!({})).await;
        rotated["kid"].as_str().unwrap().to_owned()
    }
}

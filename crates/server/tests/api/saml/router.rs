//! SAML sign-in through the real router over HTTP, the test acting as the browser between our control plane
//! and the samlify IdP: the whole flow, and each refusal with its audit record.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};
use streamspace_store::{AuditFilter, AuditPage, Scope};

use super::idp::{PostedForm, http_client, idp};
use crate::harness::{Listening, REFRESH_COOKIE, TestApp};

/// The control plane's public URL in the tests' configuration.
const PUBLIC_URL: &str = "http://localhost:8000";

/// A control plane serving over HTTP with one SAML provider in an org, and its org admin.
struct SamlSetup {
    t: TestApp,
    listening: Listening,
    provider_id: String,
    http: reqwest::Client,
}

impl SamlSetup {
    /// `saml` is merged over the provider's default SAML settings (metadata by URL naming the current key).
    async fn new(saml: Value) -> SamlSetup {
        let t = TestApp::new().await;
        // The IdP stamps its assertions with the real time.
        t.clock.advance(Utc::now() - t.app.clock.now());
        let root = t.admin().await;
        let (org, admin, _) = t.org_with_users(&root, "acme").await;
        let mut settings = json!({
            "metadata_url": idp().metadata_url("current"),
            "attributes": {"email": "email", "name": "displayName", "groups": "groups"},
        });
        merge(&mut settings, saml);
        let provider = json!({
            "name": "corp-saml",
            "display_name": "Corp SAML",
            "kind": "saml",
            "enabled": true,
            "domains": ["example.test"],
            "saml": settings,
            "role_mapping": {"org_admin_groups": ["admins"]},
        });
        let created = t.post(&format!("/api/v1/orgs/{org}/identity-providers"), &admin, provider).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let provider_id = created.body["id"].as_str().unwrap().to_owned();
        let listening = t.listen().await;
        let http = http_client();
        SamlSetup { t, listening, provider_id, http }
    }

    /// Where the test reaches the provider's endpoint `path`.
    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/auth/sso/{}/{path}", self.listening.api, self.provider_id)
    }

    /// The endpoint as the IdP knows it, under the control plane's public URL.
    fn public_url(&self, path: &str) -> String {
        format!("{PUBLIC_URL}/api/v1/auth/sso/{}/{path}", self.provider_id)
    }

    /// An IdP-initiated response for this provider.
    async fn unsolicited(&self) -> PostedForm {
        idp().unsolicited(&self.public_url("metadata"), &self.public_url("acs")).await
    }

    /// Starts a sign-in: the IdP URL we are sent to, and the browser's flow cookie (`name=value`).
    async fn start(&self) -> (String, String) {
        let response = self.http.get(self.url("start?return_to=/catalog")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = header(&response, "location");
        let cookie = header(&response, "set-cookie").split(';').next().unwrap().to_owned();
        (location, cookie)
    }

    /// Posts the IdP's form to our ACS as the browser holding `cookie` would; answers where we are sent.
    async fn post_acs(&self, form: &PostedForm, cookie: Option<&str>) -> reqwest::Response {
        let mut fields = vec![("SAMLResponse", form.saml_response.as_str())];
        fields.extend(form.relay_state.as_deref().map(|state| ("RelayState", state)));
        let mut request = self.http.post(self.url("acs")).form(&fields);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// A whole sign-in with the IdP's `knobs`: where our ACS sends the browser at the end.
    async fn sign_in(&self, knobs: &str) -> reqwest::Response {
        let (idp_url, cookie) = self.start().await;
        let form = idp().respond(&idp_url, knobs).await;
        self.post_acs(&form, Some(&cookie)).await
    }

    /// The reason the last failed `sso.sign_in` was audited with.
    async fn audited_failure(&self) -> String {
        let filter = AuditFilter {
            action: Some("sso.sign_in".to_owned()),
            result: Some("failure".to_owned()),
            ..AuditFilter::default()
        };
        let page = AuditPage { limit: 1, before_seq: None };
        let events = self.t.app.store.list_audit(Scope::Platform, filter, page).await.unwrap();
        let event = events.first().expect("an audited sso.sign_in failure");
        event.details["reason"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the ACS sent the browser to the UI with `sso_failed` and audited `reason`.
    async fn assert_refused(&self, response: reqwest::Response, reason: &str) {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(header(&response, "location"), format!("{PUBLIC_URL}/login/sso?error=sso_failed"));
        assert!(set_cookie(&response, REFRESH_COOKIE).is_none(), "no sign-in on a refusal");
        assert_eq!(self.audited_failure().await, reason);
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_owned()
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|value| value.to_str().ok()).find_map(|cookie| {
        let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
        let (key, value) = pair.split_once('=')?;
        (key == name && !value.is_empty()).then(|| value.to_owned())
    })
}

#[tokio::test]
async fn saml_sign_in_provisions_the_user_with_the_role_of_their_groups() {
    let setup = SamlSetup::new(json!({})).await;
    let metadata = setup.http.get(setup.url("metadata")).send().await.unwrap();
    assert_eq!(header(&metadata, "content-type"), "application/samlmetadata+xml");
    assert!(metadata.text().await.unwrap().contains(&setup.public_url("acs")));

    let response = setup.sign_in("email=grace@example.test&name=Grace%20Hopper&groups=staff,admins").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&response, "location"), format!("{PUBLIC_URL}/login/sso?next=%2Fcatalog"));
    let refresh = set_cookie(&response, REFRESH_COOKIE).expect("signed in");
    let tokens = setup.t.cookie_call("/api/v1/auth/refresh", &refresh).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let me = setup.t.get("/api/v1/me", tokens.body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (me.body["username"].as_str(), me.body["role"].as_str()),
        (Some("grace@example.test"), Some("org_admin"))
    );
    let actions = setup.t.audit_actions().await;
    assert!(actions.contains(&("sso.sign_in".to_owned(), "success".to_owned())), "{actions:?}");
}

#[tokio::test]
async fn saml_sign_in_with_the_idps_rotated_key_works_once_its_metadata_lists_it() {
    let setup = SamlSetup::new(json!({"metadata_url": idp().metadata_url("current,next")})).await;
    let response = setup.sign_in("key=next").await;
    assert!(set_cookie(&response, REFRESH_COOKIE).is_some(), "{:?}", response.headers().get("location"));
}

#[tokio::test]
async fn saml_acs_refuses_an_unsigned_response() {
    let setup = SamlSetup::new(json!({})).await;
    setup.assert_refused(setup.sign_in("sign=none").await, "saml_unsigned").await;
}

#[tokio::test]
async fn saml_acs_refuses_a_response_signed_by_an_unknown_key() {
    let setup = SamlSetup::new(json!({})).await;
    setup.assert_refused(setup.sign_in("key=rogue").await, "saml_bad_signature").await;
}

#[tokio::test]
async fn saml_acs_refuses_a_wrapped_assertion() {
    let setup = SamlSetup::new(json!({})).await;
    setup.assert_refused(setup.sign_in("xsw=before").await, "saml_assertion_count").await;
}

#[tokio::test]
async fn saml_acs_refuses_an_assertion_for_another_audience() {
    let setup = SamlSetup::new(json!({})).await;
    setup.assert_refused(setup.sign_in("audience=https://other-sp.test").await, "saml_audience").await;
}

#[tokio::test]
async fn saml_acs_refuses_an_expired_assertion() {
    let setup = SamlSetup::new(json!({})).await;
    setup.assert_refused(setup.sign_in("valid=expired").await, "saml_expired").await;
}

#[tokio::test]
async fn saml_acs_refuses_a_response_posted_from_another_browser() {
    let setup = SamlSetup::new(json!({})).await;
    let (idp_url, _victims_cookie) = setup.start().await;
    let form = idp().respond(&idp_url, "").await;
    let (_, attackers_cookie) = setup.start().await;
    setup.assert_refused(setup.post_acs(&form, Some(&attackers_cookie)).await, "browser_mismatch").await;
}

#[tokio::test]
async fn saml_acs_reposts_from_our_origin_when_the_cross_site_post_lacks_the_flow_cookie() {
    let setup = SamlSetup::new(json!({})).await;
    let (idp_url, cookie) = setup.start().await;
    let form = idp().respond(&idp_url, "").await;
    let page = setup.post_acs(&form, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("form-action 'self'") && policy.contains("script-src 'sha256-"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="resubmitted""#) && html.contains(&form.saml_response), "{html}");
    // The browser's second post, from our origin, carries the cookie.
    let mut fields = vec![("SAMLResponse", form.saml_response.as_str()), ("resubmitted", "1")];
    fields.extend(form.relay_state.as_deref().map(|state| ("RelayState", state)));
    let second = setup.http.post(setup.url("acs")).form(&fields).header("cookie", &cookie).send().await.unwrap();
    assert!(set_cookie(&second, REFRESH_COOKIE).is_some(), "{:?}", second.headers().get("location"));
}

#[tokio::test]
async fn saml_acs_refuses_idp_initiated_sign_in_unless_enabled() {
    let setup = SamlSetup::new(json!({})).await;
    let form = setup.unsolicited().await;
    setup.assert_refused(setup.post_acs(&form, None).await, "saml_unsolicited").await;
}

#[tokio::test]
async fn saml_acs_refuses_a_replayed_assertion() {
    let setup = SamlSetup::new(json!({"allow_idp_initiated": true})).await;
    let form = setup.unsolicited().await;
    let first = setup.post_acs(&form, None).await;
    assert!(set_cookie(&first, REFRESH_COOKIE).is_some(), "{:?}", first.headers().get("location"));
    setup.assert_refused(setup.post_acs(&form, None).await, "saml_replayed").await;
}

//! The SAML protocol checks on responses a real IdP produced, honest or tampered with: each refusal for the
//! reason it must be refused.

use chrono::{Duration, Utc};
use streamspace_server::auth::sso::saml::{
    AcsExpectations, IdpMetadata, Refusal, ServiceProvider, SignedXml, VerifiedAssertion, XmlSec,
    authn_request_redirect, verify_response,
};
use uuid::Uuid;

use super::idp::{get_text, idp};

const PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

/// One sign-in attempt: our SP, the IdP as its metadata describes it, and the request we sent.
struct Attempt {
    sp: ServiceProvider,
    idp: IdpMetadata,
    request_id: String,
    redirect_url: String,
}

impl Attempt {
    /// Starts a sign-in against the IdP whose metadata names the certificates `certs`.
    async fn start(certs: &str) -> Attempt {
        let sp = ServiceProvider::for_provider("http://sp.test", Uuid::new_v4());
        let metadata = get_text(&idp().metadata_url(certs)).await;
        let idp = IdpMetadata::parse(&metadata).unwrap();
        let redirect = authn_request_redirect(&sp, &idp, "relay-state", Utc::now()).unwrap();
        Attempt { sp, idp, request_id: redirect.request_id, redirect_url: redirect.url }
    }

    async fn respond(&self, knobs: &str) -> String {
        idp().respond(&self.redirect_url, knobs).await.saml_response
    }

    fn expectations(&self) -> AcsExpectations<'_> {
        AcsExpectations {
            sp: &self.sp,
            idp: &self.idp,
            pending_request_ids: std::slice::from_ref(&self.request_id),
            allow_idp_initiated: false,
            now: Utc::now(),
        }
    }

    fn verify(&self, saml_response: &str) -> Result<VerifiedAssertion, Refusal> {
        verify_response(saml_response, &self.expectations(), &XmlSec)
    }
}

/// The IdP's answer to a fresh request (metadata naming the current key) with `knobs`, checked.
async fn answer(knobs: &str) -> Result<VerifiedAssertion, Refusal> {
    let attempt = Attempt::start("current").await;
    let response = attempt.respond(knobs).await;
    attempt.verify(&response)
}

#[tokio::test]
async fn saml_signed_assertion_is_accepted_and_read() {
    let attempt = Attempt::start("current").await;
    let response = attempt.respond("email=grace@example.test&name=Grace%20Hopper&groups=admins,staff").await;
    let assertion = attempt.verify(&response).unwrap();
    assert_eq!(assertion.name_id, "grace@example.test");
    assert_eq!(assertion.in_response_to.as_deref(), Some(attempt.request_id.as_str()));
    assert_eq!(assertion.attributes["email"], ["grace@example.test"]);
    assert_eq!(assertion.attributes["displayName"], ["Grace Hopper"]);
    assert_eq!(assertion.attributes["groups"], ["admins", "staff"]);
    assert_eq!(assertion.authn_context_class.as_deref(), Some(PASSWORD));
    assert!(assertion.expires_at > Utc::now() && assertion.expires_at < Utc::now() + Duration::minutes(8));
}

#[tokio::test]
async fn saml_signed_response_or_both_signed_are_accepted() {
    for knobs in ["sign=response", "sign=both"] {
        let assertion = answer(knobs).await.unwrap_or_else(|refusal| panic!("{knobs}: {refusal}"));
        assert_eq!(assertion.name_id, "ada@example.test", "{knobs}");
    }
}

#[tokio::test]
async fn saml_metadata_with_two_certificates_accepts_the_rotated_key() {
    let attempt = Attempt::start("current,next").await;
    assert_eq!(attempt.idp.signing_certificates.len(), 2);
    for key in ["current", "next"] {
        let response = attempt.respond(&format!("key={key}")).await;
        attempt.verify(&response).unwrap_or_else(|refusal| panic!("key {key}: {refusal}"));
    }
}

#[tokio::test]
async fn saml_key_not_in_metadata_is_refused() {
    // `rogue` is in no metadata; `next` is the IdP's rotated key, not yet in the metadata we hold.
    for knobs in ["key=rogue", "key=next", "key=rogue&sign=response"] {
        assert_eq!(answer(knobs).await, Err(Refusal::BadSignature), "{knobs}");
    }
}

#[tokio::test]
async fn saml_unsigned_response_is_refused() {
    assert_eq!(answer("sign=none").await, Err(Refusal::Unsigned));
}

#[tokio::test]
async fn saml_signed_content_changed_after_signing_is_refused() {
    assert_eq!(answer("alter_name_id=admin@example.test").await, Err(Refusal::BadSignature));
}

#[tokio::test]
async fn saml_wrapped_assertion_before_or_after_the_signed_one_is_refused() {
    for knobs in ["xsw=before", "xsw=after", "xsw=before&sign=response"] {
        assert_eq!(answer(knobs).await, Err(Refusal::AssertionCount), "{knobs}");
    }
}

#[tokio::test]
async fn saml_signed_assertion_hidden_in_extensions_is_refused() {
    assert_eq!(answer("xsw=extensions").await, Err(Refusal::AssertionCount));
}

#[tokio::test]
async fn saml_forged_assertion_with_the_signed_id_is_refused() {
    assert_eq!(answer("xsw=same_id").await, Err(Refusal::DuplicateId));
}

/// Behind the shape check, the signature layer itself only ever hands back the signed assertion.
#[tokio::test]
async fn saml_signature_layer_returns_the_signed_assertion_not_the_forged_one() {
    use base64::Engine as _;
    let attempt = Attempt::start("current").await;
    let response = attempt.respond("xsw=extensions").await;
    let xml = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(response).unwrap()).unwrap();
    let signed = XmlSec.signed_part(&xml, &attempt.idp.signing_certificates).unwrap();
    assert!(!signed.contains("_evil") && !signed.contains("admin@example.test"), "{signed}");
    assert!(signed.contains("ada@example.test"), "{signed}");
}

#[tokio::test]
async fn saml_comment_inside_the_name_id_is_refused() {
    assert_eq!(answer("comment_in_name_id=1").await, Err(Refusal::ForbiddenXml));
}

#[tokio::test]
async fn saml_wrong_audience_is_refused() {
    assert_eq!(answer("audience=https://other-sp.test/metadata").await, Err(Refusal::Audience));
}

#[tokio::test]
async fn saml_wrong_recipient_is_refused() {
    assert_eq!(answer("recipient=https://other-sp.test/acs").await, Err(Refusal::Recipient));
}

#[tokio::test]
async fn saml_wrong_destination_is_refused() {
    assert_eq!(answer("destination=https://other-sp.test/acs").await, Err(Refusal::Destination));
}

#[tokio::test]
async fn saml_wrong_issuer_is_refused() {
    assert_eq!(answer("issuer=https://evil-idp.test").await, Err(Refusal::Issuer));
}

#[tokio::test]
async fn saml_expired_assertion_is_refused() {
    assert_eq!(answer("valid=expired").await, Err(Refusal::Expired));
}

#[tokio::test]
async fn saml_assertion_not_yet_valid_is_refused() {
    assert_eq!(answer("valid=not_yet").await, Err(Refusal::NotYetValid));
}

/// The injected time decides: a good assertion is refused once our clock is past its end plus the skew.
#[tokio::test]
async fn saml_assertion_checked_after_its_end_is_refused() {
    let attempt = Attempt::start("current").await;
    let response = attempt.respond("").await;
    let late = AcsExpectations { now: Utc::now() + Duration::minutes(8), ..attempt.expectations() };
    assert_eq!(verify_response(&response, &late, &XmlSec), Err(Refusal::Expired));
    let within_skew = AcsExpectations { now: Utc::now() + Duration::minutes(6), ..attempt.expectations() };
    verify_response(&response, &within_skew, &XmlSec).unwrap();
}

#[tokio::test]
async fn saml_response_to_another_request_is_refused() {
    assert_eq!(answer("in_response_to=_someone-elses-request").await, Err(Refusal::InResponseTo));
}

/// A response to a request another browser started is refused: pending requests are per browser.
#[tokio::test]
async fn saml_response_to_another_browsers_request_is_refused() {
    let attempt = Attempt::start("current").await;
    let response = attempt.respond("").await;
    let other_browser = vec!["_another-browsers-request".to_owned()];
    let expected = AcsExpectations { pending_request_ids: &other_browser, ..attempt.expectations() };
    assert_eq!(verify_response(&response, &expected, &XmlSec), Err(Refusal::InResponseTo));
}

#[tokio::test]
async fn saml_idp_initiated_is_refused_unless_enabled() {
    let attempt = Attempt::start("current").await;
    let response = idp().unsolicited(&attempt.sp.entity_id, &attempt.sp.acs_url).await.saml_response;
    assert_eq!(attempt.verify(&response), Err(Refusal::Unsolicited));
    let enabled = AcsExpectations { allow_idp_initiated: true, ..attempt.expectations() };
    let assertion = verify_response(&response, &enabled, &XmlSec).unwrap();
    assert_eq!(assertion.in_response_to, None);
}

#[tokio::test]
async fn saml_garbage_is_refused_as_malformed() {
    let attempt = Attempt::start("current").await;
    assert_eq!(attempt.verify("not base64!"), Err(Refusal::Malformed));
    use base64::Engine as _;
    let doctype = base64::engine::general_purpose::STANDARD.encode(
        r#"<!DOCTYPE r [<!ENTITY x "y">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>"#,
    );
    assert_eq!(attempt.verify(&doctype), Err(Refusal::ForbiddenXml));
}

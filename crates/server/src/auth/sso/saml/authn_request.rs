//! The AuthnRequest, sent by the HTTP-Redirect binding. Its ID is what the response must answer
//! (InResponseTo); the caller keeps it with the pending sign-in of this browser.

use chrono::{DateTime, Utc};
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use uuid::Uuid;

use super::{HTTP_POST_BINDING, IdpMetadata, ServiceProvider};

const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

#[derive(Clone, Debug)]
pub struct AuthnRequestRedirect {
    /// The request's ID, to match against the response's InResponseTo.
    pub request_id: String,
    /// Where to send the browser: the IdP's SSO URL with SAMLRequest and RelayState.
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the AuthnRequest could not be encoded: {0}")]
pub struct AuthnRequestError(String);

pub fn authn_request_redirect(
    sp: &ServiceProvider,
    idp: &IdpMetadata,
    relay_state: &str,
    now: DateTime<Utc>,
) -> Result<AuthnRequestRedirect, AuthnRequestError> {
    // An xsd:ID must not start with a digit.
    let request_id = format!("_{}", Uuid::new_v4().simple());
    let request = AuthnRequest {
        id: request_id.clone(),
        version: "2.0".to_owned(),
        issue_instant: now,
        destination: Some(idp.sso_redirect_url.clone()),
        issuer: Some(Issuer {
            format: Some(ENTITY_FORMAT.to_owned()),
            value: Some(sp.entity_id.clone()),
            ..Issuer::default()
        }),
        name_id_policy: Some(NameIdPolicy { allow_create: Some(true), ..NameIdPolicy::default() }),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST_BINDING.to_owned()),
        ..AuthnRequest::default()
    };
    let url = request
        .redirect(relay_state)
        .map_err(|error| AuthnRequestError(error.to_string()))?
        .ok_or_else(|| AuthnRequestError("no destination".to_owned()))?;
    Ok(AuthnRequestRedirect { request_id, url: url.to_string() })
}

//! SAML in the SSO flow (`auth/sso`): the AuthnRequest a start sends the browser to, and the identity a
//! response posted to the ACS vouches for, after every check of [`verify_response`] and the replay record.

use serde::{Deserialize, Serialize};
use streamspace_store::IdentityProvider;

use super::{
    AcsExpectations, IdpMetadata, ServiceProvider, VerifiedAssertion, XmlSec, authn_request_redirect, verify_response,
};
use crate::app::App;
use crate::auth::sso::settings::{RoleMapping, SamlSettings, Settings};
use crate::auth::sso::{AuthorizationRequest, ExternalIdentity, PendingFlow, SsoFailure};

/// Attribute names read when the provider names none.
const DEFAULT_EMAIL_ATTRIBUTE: &str = "email";
const DEFAULT_NAME_ATTRIBUTE: &str = "displayName";
const DEFAULT_GROUPS_ATTRIBUTE: &str = "groups";

/// What a flow keeps for the ACS: the request the response must answer.
#[derive(Serialize, Deserialize)]
struct SentRequest {
    request_id: String,
}

/// This control plane as the SP of `provider`.
pub fn service_provider(app: &App, provider: &IdentityProvider) -> ServiceProvider {
    ServiceProvider::for_provider(&app.urls.public_url, provider.id)
}

/// The IdP's SSO URL with our AuthnRequest; `state` travels as RelayState and comes back with the response.
pub async fn authorization_request(
    app: &App,
    provider: &IdentityProvider,
    state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    let idp = idp_metadata(app, &settings(provider)?).await?;
    let redirect = authn_request_redirect(&service_provider(app, provider), &idp, state, app.clock.now())
        .map_err(|error| SsoFailure::failed(error.to_string()))?;
    let sent = SentRequest { request_id: redirect.request_id };
    Ok(AuthorizationRequest { url: redirect.url, protocol: serde_json::to_value(sent).unwrap_or_default() })
}

/// The identity the `SAMLResponse` posted to the ACS vouches for. `pending` is the flow its RelayState named,
/// `None` for an IdP-initiated response. The assertion's ID is recorded so that it is accepted once.
pub async fn identity(
    app: &App,
    provider: &IdentityProvider,
    pending: Option<&PendingFlow>,
    saml_response: &str,
) -> Result<ExternalIdentity, SsoFailure> {
    let settings = settings(provider)?;
    let idp = idp_metadata(app, &settings).await?;
    let sp = service_provider(app, provider);
    let pending_request_ids = pending
        .and_then(|pending| serde_json::from_value::<SentRequest>(pending.flow.protocol.clone()).ok())
        .map(|sent| sent.request_id)
        .into_iter()
        .collect::<Vec<_>>();
    let now = app.clock.now();
    let expected = AcsExpectations {
        sp: &sp,
        idp: &idp,
        pending_request_ids: &pending_request_ids,
        allow_idp_initiated: settings.allow_idp_initiated,
        now,
    };
    let assertion =
        verify_response(saml_response, &expected, &XmlSec).map_err(|refusal| SsoFailure::failed(refusal.code()))?;
    if !app.store.record_sso_replay(provider.id, &assertion.id, assertion.expires_at, now).await? {
        return Err(SsoFailure::failed("saml_replayed"));
    }
    Ok(external_identity(provider, &settings, &assertion))
}

fn settings(provider: &IdentityProvider) -> Result<SamlSettings, SsoFailure> {
    match Settings::of(provider)? {
        Settings::Saml(settings) => Ok(settings),
        _ => Err(SsoFailure::failed("not a SAML provider")),
    }
}

/// The IdP's metadata, as configured or as published at its URL now (so a rotation it announces is seen).
async fn idp_metadata(app: &App, settings: &SamlSettings) -> Result<IdpMetadata, SsoFailure> {
    let xml = match (&settings.metadata_xml, &settings.metadata_url) {
        (Some(xml), _) => xml.clone(),
        (None, Some(url)) => fetch(app, url).await?,
        (None, None) => return Err(SsoFailure::failed("the provider has no IdP metadata")),
    };
    IdpMetadata::parse(&xml).map_err(|error| SsoFailure::failed(error.to_string()))
}

async fn fetch(app: &App, url: &str) -> Result<String, SsoFailure> {
    let failed = |error: String| SsoFailure::failed(format!("IdP metadata: {error}"));
    let request = axum::http::Request::get(url).body(Vec::new()).map_err(|error| failed(error.to_string()))?;
    let response = app.outbound.execute(request).await.map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("answered {}", response.status())));
    }
    String::from_utf8(response.into_body()).map_err(|_| failed("not UTF-8".to_owned()))
}

fn external_identity(
    provider: &IdentityProvider,
    settings: &SamlSettings,
    assertion: &VerifiedAssertion,
) -> ExternalIdentity {
    let values = |name: &str| assertion.attributes.get(name).cloned().unwrap_or_default();
    let first = |name: &str| values(name).into_iter().map(|value| value.trim().to_owned()).find(|v| !v.is_empty());
    let names = &settings.attributes;
    let groups_attribute = names.groups.clone().or(RoleMapping::of(provider).groups_claim);
    let mfa_by_idp =
        assertion.authn_context_class.as_ref().is_some_and(|class| settings.mfa_context_classes.contains(class));
    ExternalIdentity {
        provider_id: provider.id,
        subject: assertion.name_id.clone(),
        email: first(names.email.as_deref().unwrap_or(DEFAULT_EMAIL_ATTRIBUTE)),
        name: first(names.name.as_deref().unwrap_or(DEFAULT_NAME_ATTRIBUTE)),
        groups: values(groups_attribute.as_deref().unwrap_or(DEFAULT_GROUPS_ATTRIBUTE)),
        mfa_by_idp,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use serde_json::json;
    use streamspace_store::ProviderKind;
    use uuid::Uuid;

    use super::*;

    fn provider(role_mapping: serde_json::Value) -> IdentityProvider {
        IdentityProvider {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            name: "corp".to_owned(),
            display_name: "Corp".to_owned(),
            kind: ProviderKind::Saml,
            enabled: true,
            domains: vec![],
            config: json!({}),
            client_secret: None,
            role_mapping,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn assertion(attributes: &[(&str, &[&str])], class: &str) -> VerifiedAssertion {
        let attributes: BTreeMap<String, Vec<String>> = attributes
            .iter()
            .map(|(name, values)| (name.to_string(), values.iter().map(|v| v.to_string()).collect()))
            .collect();
        VerifiedAssertion {
            id: "_a".to_owned(),
            expires_at: Utc::now(),
            name_id: "u-123".to_owned(),
            in_response_to: None,
            attributes,
            authn_context_class: Some(class.to_owned()),
        }
    }

    const MFA: &str = "http://schemas.microsoft.com/claims/multipleauthn";

    #[test]
    fn the_configured_attributes_and_context_classes_make_the_identity() {
        let settings = SamlSettings {
            attributes: crate::auth::sso::settings::SamlAttributes {
                email: Some("mail".to_owned()),
                name: Some("cn".to_owned()),
                groups: Some("memberOf".to_owned()),
            },
            mfa_context_classes: vec![MFA.to_owned()],
            ..SamlSettings::default()
        };
        let signed = assertion(&[("mail", &[" ada@example.test "]), ("cn", &["Ada"]), ("memberOf", &["a", "b"])], MFA);
        let identity = external_identity(&provider(json!({})), &settings, &signed);
        assert_eq!(identity.subject, "u-123");
        assert_eq!(identity.email.as_deref(), Some("ada@example.test"));
        assert_eq!(identity.name.as_deref(), Some("Ada"));
        assert_eq!(identity.groups, ["a", "b"]);
        assert!(identity.mfa_by_idp);
        let password_only = assertion(&[], "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport");
        assert!(!external_identity(&provider(json!({})), &settings, &password_only).mfa_by_idp);
    }

    #[test]
    fn groups_fall_back_to_the_role_mappings_claim_then_to_groups() {
        let settings = SamlSettings::default();
        let signed = assertion(&[("roles", &["admins"]), ("groups", &["staff"]), ("email", &["e@x.test"])], "x");
        let mapped = external_identity(&provider(json!({"groups_claim": "roles"})), &settings, &signed);
        assert_eq!(mapped.groups, ["admins"]);
        let default = external_identity(&provider(json!({})), &settings, &signed);
        assert_eq!((default.groups, default.email.as_deref()), (vec!["staff".to_owned()], Some("e@x.test")));
        assert!(!default.mfa_by_idp, "no context class means MFA unless configured");
    }
}

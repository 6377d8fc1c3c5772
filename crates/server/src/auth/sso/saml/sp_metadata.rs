//! What this service provider is to an IdP: one entity per identity-provider object, so two organizations that
//! use the same IdP tenant still get assertions meant only for them.

use quick_xml::escape::escape;
use uuid::Uuid;

use super::HTTP_POST_BINDING;

const PERSISTENT_NAME_ID: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const EMAIL_NAME_ID: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceProvider {
    /// Our entity id: the metadata URL, as IdPs that import metadata by URL expect.
    pub entity_id: String,
    /// Where the IdP posts responses; assertions must name it as Recipient and Destination.
    pub acs_url: String,
}

impl ServiceProvider {
    /// The service provider of identity provider `provider` on a control plane reached at `public_url`.
    pub fn for_provider(public_url: &str, provider: Uuid) -> ServiceProvider {
        let base = format!("{}/api/v1/auth/sso/{provider}", public_url.trim_end_matches('/'));
        ServiceProvider { entity_id: format!("{base}/metadata"), acs_url: format!("{base}/acs") }
    }

    /// The SP metadata document. Requests go unsigned (they carry nothing an attacker could use, and the
    /// response is bound to them by InResponseTo and a browser cookie); assertions must be signed.
    pub fn metadata_xml(&self) -> String {
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">"#,
                r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" "#,
                r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
                r#"<md:NameIDFormat>{persistent}</md:NameIDFormat><md:NameIDFormat>{email}</md:NameIDFormat>"#,
                r#"<md:AssertionConsumerService Binding="{binding}" Location="{acs}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
            ),
            entity = escape(self.entity_id.as_str()),
            persistent = PERSISTENT_NAME_ID,
            email = EMAIL_NAME_ID,
            binding = HTTP_POST_BINDING,
            acs = escape(self.acs_url.as_str()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_entity_and_the_post_acs_of_this_provider() {
        let provider = Uuid::parse_str("0190c2a5-0000-7000-8000-000000000001").unwrap();
        let sp = ServiceProvider::for_provider("https://ss.example.com/", provider);
        assert_eq!(sp.entity_id, format!("https://ss.example.com/api/v1/auth/sso/{provider}/metadata"));
        assert_eq!(sp.acs_url, format!("https://ss.example.com/api/v1/auth/sso/{provider}/acs"));
        let descriptor: samael::metadata::EntityDescriptor = sp.metadata_xml().parse().unwrap();
        assert_eq!(descriptor.entity_id.as_deref(), Some(sp.entity_id.as_str()));
        let sp_descriptor = &descriptor.sp_sso_descriptors.unwrap()[0];
        let acs = &sp_descriptor.assertion_consumer_services[0];
        assert_eq!((acs.binding.as_str(), acs.location.as_str()), (HTTP_POST_BINDING, sp.acs_url.as_str()));
        assert_eq!(sp_descriptor.want_assertions_signed, Some(true));
    }
}

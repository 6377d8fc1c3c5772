//! What we know of an IdP, from its metadata: entity id, where to send the browser, and the certificates whose
//! keys may sign. Several signing certificates are how IdPs roll keys: any of them is accepted.

use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::ServiceProvider as SamaelServiceProvider;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// The SingleSignOnService location for the HTTP-Redirect binding.
    pub sso_redirect_url: String,
    /// DER certificates whose keys may sign responses.
    pub signing_certificates: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the IdP metadata is not a SAML EntityDescriptor: {0}")]
    NotMetadata(String),
    #[error("the IdP metadata has no entityID")]
    NoEntityId,
    #[error("the IdP metadata has no SingleSignOnService for the HTTP-Redirect binding")]
    NoRedirectEndpoint,
    #[error("the IdP metadata names no signing certificate")]
    NoSigningCertificate,
}

impl IdpMetadata {
    pub fn parse(xml: &str) -> Result<IdpMetadata, MetadataError> {
        let descriptor =
            xml.parse::<EntityDescriptor>().map_err(|error| MetadataError::NotMetadata(error.to_string()))?;
        let entity_id = descriptor.entity_id.clone().filter(|id| !id.is_empty()).ok_or(MetadataError::NoEntityId)?;
        let reader = SamaelServiceProvider { idp_metadata: descriptor, ..SamaelServiceProvider::default() };
        let sso_redirect_url =
            reader.sso_binding_location(HTTP_REDIRECT_BINDING).ok_or(MetadataError::NoRedirectEndpoint)?;
        let signing_certificates = reader
            .idp_signing_certs()
            .map_err(|error| MetadataError::NotMetadata(error.to_string()))?
            .unwrap_or_default()
            .into_iter()
            .map(|certificate| certificate.der_data().to_vec())
            .collect::<Vec<_>>();
        if signing_certificates.is_empty() {
            return Err(MetadataError::NoSigningCertificate);
        }
        Ok(IdpMetadata { entity_id, sso_redirect_url, signing_certificates })
    }
}

//! XML signature verification, behind a trait so the rest of the SAML code never touches the XML-security
//! library: it gets back only the part of a document a trusted key signed.

use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};

pub trait SignedXml: Send + Sync {
    /// Verifies every signature in `xml` against `certificates` (DER; any one of them may have signed) and
    /// returns a document made only of the signed content: the signed element becomes the root, and whatever
    /// no signature covers is gone. An error when there is no signature or one does not verify.
    fn signed_part(&self, xml: &str, certificates: &[Vec<u8>]) -> Result<String, SignatureError>;
}

#[derive(Debug, thiserror::Error)]
#[error("no valid signature by a trusted key: {0}")]
pub struct SignatureError(String);

/// SHA-1 and weaker are refused: a collision would let a signed document say something else.
const ALLOWED_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// libxmlsec1 through samael. The key is taken from the certificates we were given, never from the
/// document's KeyInfo.
pub struct XmlSec;

impl SignedXml for XmlSec {
    fn signed_part(&self, xml: &str, certificates: &[Vec<u8>]) -> Result<String, SignatureError> {
        let certificates = certificates.iter().cloned().map(CertificateDer::from).collect::<Vec<_>>();
        Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            &certificates,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(ALLOWED_ALGORITHMS),
        )
        .map_err(|error| SignatureError(error.to_string()))
    }
}

//! SAML 2.0 service provider (ADR 0026): our metadata, the AuthnRequest sent by HTTP-Redirect, and the checks
//! an assertion posted to the ACS must pass before anyone is signed in. Signatures are checked by xmlsec
//! (through samael) behind [`SignedXml`]; everything read from a response comes from the signed part.

mod authn_request;
pub mod flow;
mod idp_metadata;
mod response;
mod signature;
mod sp_metadata;

pub use authn_request::{AuthnRequestRedirect, authn_request_redirect};
pub use idp_metadata::{IdpMetadata, MetadataError};
pub use response::{AcsExpectations, CLOCK_SKEW, Refusal, VerifiedAssertion, verify_response};
pub use signature::{SignatureError, SignedXml, XmlSec};
pub use sp_metadata::ServiceProvider;

/// The binding our ACS takes responses by.
const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

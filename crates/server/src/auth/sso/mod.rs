//! Single sign-on with an organization's identity provider.

pub mod saml;

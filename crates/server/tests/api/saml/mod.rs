//! SAML 2.0 service provider against a real IdP (npm samlify, `tests/idp/saml/idp.js`).

mod idp;
mod protocol;
mod router;

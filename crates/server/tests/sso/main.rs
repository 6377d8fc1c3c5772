//! Single sign-on through the real router served on 127.0.0.1:0, against real identity
//! providers: npm `oidc-provider` and a GitHub-style OAuth2 provider in one Node process
//! (`tests/idp/oidc`, started once per test process). A reqwest client with a cookie jar plays the
//! browser. Every refused case checks the code the browser lands with and the audit record.

mod harness;
mod idp;
mod oauth2;
mod oidc;

//! API tests through the real router and a real store.

mod auth;
mod harness;
mod mfa;
mod openapi;
mod resources;
mod revocation;
mod tenancy;

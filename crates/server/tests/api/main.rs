//! API tests through the real router and a real store.

mod auth;
mod harness;
mod hostile_agents;
mod identity_providers;
mod listeners;
mod mfa;
mod openapi;
mod orchestrator;
mod request_logs;
mod resources;
mod revocation;
mod saml;
mod signin;
mod tenancy;

//! API tests through the real router and a real store.

mod agent_fencing;
mod auth;
mod harness;
mod hostile_agents;
mod identity_providers;
mod listeners;
mod memory;
mod mfa;
mod network;
mod openapi;
mod orchestrator;
mod pools;
mod rate_limits;
mod reports;
mod request_logs;
mod resources;
mod revocation;
mod saml;
mod signin;
mod tenancy;
mod tls;

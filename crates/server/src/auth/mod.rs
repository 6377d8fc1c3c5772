//! Authentication: who is calling, and how they proved it.

pub mod client_ip;
pub mod cookies;
pub mod jwt;
pub mod mfa;
pub mod password;
pub mod policy;
pub mod principal;
pub mod secrets;
pub mod session_grant;
pub mod sign_in;
pub mod sso;
pub mod throttle;
pub mod totp;

pub use principal::Principal;

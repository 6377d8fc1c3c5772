//! Single sign-on records: identity providers of an org, external identities linked to users,
//! pending sign-ins, and their row decoders. The protocol settings are JSON the server types;
//! the store keeps them without looking inside.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::sql::Columns;
use crate::{Result, StoreError, Timestamp};

/// The protocol an identity provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Oidc,
    Oauth2,
    Saml,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Oauth2 => "oauth2",
            ProviderKind::Saml => "saml",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        [ProviderKind::Oidc, ProviderKind::Oauth2, ProviderKind::Saml].into_iter().find(|k| k.as_str() == s)
    }
}

/// Whether an identity provider's assertion of a second factor satisfies the org's MFA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SsoMfaPolicy {
    /// The IdP's `amr`/`acr`/`AuthnContextClassRef` counts as MFA when it says a second factor was used.
    TrustIdp,
    /// Users who have TOTP are asked for it after every SSO sign-in.
    #[default]
    RequireTotp,
}

impl SsoMfaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SsoMfaPolicy::TrustIdp => "trust_idp",
            SsoMfaPolicy::RequireTotp => "require_totp",
        }
    }

    pub fn parse(s: &str) -> Option<SsoMfaPolicy> {
        [SsoMfaPolicy::TrustIdp, SsoMfaPolicy::RequireTotp].into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Unique in the org.
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    pub enabled: bool,
    /// Lower-case email domains that lead to this provider on the sign-in page.
    pub domains: Vec<String>,
    /// The protocol's settings (no secrets), as the server writes them.
    pub config: serde_json::Value,
    /// Sealed by the server.
    pub client_secret: Option<String>,
    pub role_mapping: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewIdentityProvider {
    pub org_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    pub enabled: bool,
    pub domains: Vec<String>,
    pub config: serde_json::Value,
    pub client_secret: Option<String>,
    pub role_mapping: serde_json::Value,
}

/// `None` leaves a field as it is; `client_secret: Some(None)` removes the secret.
#[derive(Debug, Clone, Default)]
pub struct IdentityProviderPatch {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub domains: Option<Vec<String>>,
    pub config: Option<serde_json::Value>,
    pub client_secret: Option<Option<String>>,
    pub role_mapping: Option<serde_json::Value>,
}

/// A person at an identity provider, linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider_id: Uuid,
    pub subject: String,
    pub email: Option<String>,
    /// Created by just-in-time provisioning rather than linked to an existing account.
    pub provisioned: bool,
    pub created_at: Timestamp,
    pub last_sign_in_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewExternalIdentity {
    pub user_id: Uuid,
    pub provider_id: Uuid,
    pub subject: String,
    pub email: Option<String>,
    pub provisioned: bool,
}

/// What a pending token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsoPendingKind {
    /// A flow sent to the IdP, awaiting its answer (`state`, SAML `RelayState`).
    State,
    /// A sign-in the IdP finished that still needs TOTP.
    MfaTicket,
}

impl SsoPendingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SsoPendingKind::State => "state",
            SsoPendingKind::MfaTicket => "mfa_ticket",
        }
    }

    pub fn parse(s: &str) -> Option<SsoPendingKind> {
        [SsoPendingKind::State, SsoPendingKind::MfaTicket].into_iter().find(|k| k.as_str() == s)
    }
}

/// A single-use, short-lived token of an SSO flow, kept server side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoPending {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub kind: SsoPendingKind,
    pub provider_id: Uuid,
    /// The user being linked (state) or signing in (MFA ticket).
    pub user_id: Option<Uuid>,
    /// SHA-256 of the cookie that binds the flow to the browser that started it, hex.
    pub browser_hash: Option<String>,
    /// Sealed by the server.
    pub payload: String,
    pub expires_at: Timestamp,
}

/// A sign-in (refresh token family) that came from an identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSignIn {
    pub family_id: Uuid,
    pub provider_id: Uuid,
    pub user_id: Uuid,
    /// Sealed by the server: what the provider's logout needs.
    pub payload: String,
    pub expires_at: Timestamp,
}

macro_rules! identity_provider_columns {
    () => {
        "id, org_id, name, display_name, kind, enabled, domains, config, client_secret, role_mapping, created_at, \
         updated_at"
    };
}
macro_rules! external_identity_columns {
    () => {
        "id, user_id, provider_id, subject, email, provisioned, created_at, last_sign_in_at"
    };
}
macro_rules! sso_pending_columns {
    () => {
        "token_hash, kind, provider_id, user_id, browser_hash, payload, expires_at"
    };
}
macro_rules! sso_sign_in_columns {
    () => {
        "family_id, provider_id, user_id, payload, expires_at"
    };
}
pub(crate) use {external_identity_columns, identity_provider_columns, sso_pending_columns, sso_sign_in_columns};

pub(crate) const PROVIDER_TAKEN: &str = "an identity provider with that name already exists in the organization";
pub(crate) const IDENTITY_TAKEN: &str =
    "that identity is already linked, or the user already has one from that provider";
pub(crate) const NO_SUCH_USER_OR_PROVIDER: &str = "the user or the identity provider does not exist";
pub(crate) const PENDING_TAKEN: &str = "a pending sign-in with that token already exists";

pub(crate) fn identity_provider(row: &impl Columns) -> Result<IdentityProvider> {
    let kind = row.text("kind")?;
    Ok(IdentityProvider {
        id: row.uuid("id")?,
        org_id: row.uuid("org_id")?,
        name: row.text("name")?,
        display_name: row.text("display_name")?,
        kind: ProviderKind::parse(&kind)
            .ok_or_else(|| StoreError::Database(format!("unknown identity provider kind {kind:?}")))?,
        enabled: row.flag("enabled")?,
        domains: row.json("domains")?,
        config: row.json("config")?,
        client_secret: row.opt_text("client_secret")?,
        role_mapping: row.json("role_mapping")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn external_identity(row: &impl Columns) -> Result<ExternalIdentity> {
    Ok(ExternalIdentity {
        id: row.uuid("id")?,
        user_id: row.uuid("user_id")?,
        provider_id: row.uuid("provider_id")?,
        subject: row.text("subject")?,
        email: row.opt_text("email")?,
        provisioned: row.flag("provisioned")?,
        created_at: row.time("created_at")?,
        last_sign_in_at: row.opt_time("last_sign_in_at")?,
    })
}

pub(crate) fn sso_pending(row: &impl Columns) -> Result<SsoPending> {
    let kind = row.text("kind")?;
    Ok(SsoPending {
        token_hash: row.text("token_hash")?,
        kind: SsoPendingKind::parse(&kind)
            .ok_or_else(|| StoreError::Database(format!("unknown pending sign-in kind {kind:?}")))?,
        provider_id: row.uuid("provider_id")?,
        user_id: row.opt_uuid("user_id")?,
        browser_hash: row.opt_text("browser_hash")?,
        payload: row.text("payload")?,
        expires_at: row.time("expires_at")?,
    })
}

pub(crate) fn sso_sign_in(row: &impl Columns) -> Result<SsoSignIn> {
    Ok(SsoSignIn {
        family_id: row.uuid("family_id")?,
        provider_id: row.uuid("provider_id")?,
        user_id: row.uuid("user_id")?,
        payload: row.text("payload")?,
        expires_at: row.time("expires_at")?,
    })
}

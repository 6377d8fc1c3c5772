//! What an admin configures on an identity provider, typed: the protocol settings kept as the
//! provider's `config` in the store, and the role mapping. Secrets are not here: they are sealed
//! apart and never leave the server.

use serde::{Deserialize, Serialize};
use streamspace_store::{IdentityProvider, ProviderKind, Role};
use utoipa::ToSchema;

use crate::auth::cookies::is_secure_context;
use crate::error::{ApiError, ApiResult};

/// An OpenID Connect provider, found by discovery from its issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OidcSettings {
    /// The issuer URL; `<issuer>/.well-known/openid-configuration` is read from it.
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid` (default `email profile`).
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// Also read the user-info endpoint (for providers that leave claims out of the ID token).
    #[serde(default)]
    pub use_userinfo: bool,
    /// `acr` values that mean a second factor was used (an `amr` with `mfa` always does).
    #[serde(default)]
    pub acr_mfa_values: Vec<String>,
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// A plain OAuth2 provider (GitHub-style): the endpoints and where the claims are in the
/// user-info JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuth2Settings {
    pub authorize_url: String,
    pub token_url: String,
    pub userinfo_url: String,
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: ClaimPaths,
}

/// Dotted paths into the user-info JSON (`id`, `email`, `profile.name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimPaths {
    #[serde(default = "default_subject_path")]
    pub subject: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Option<String>,
}

fn default_subject_path() -> String {
    "id".into()
}

impl Default for ClaimPaths {
    fn default() -> Self {
        ClaimPaths {
            subject: default_subject_path(),
            email: Some("email".into()),
            name: Some("name".into()),
            groups: None,
        }
    }
}

/// A SAML 2.0 identity provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SamlSettings {
    #[serde(default)]
    pub metadata_url: Option<String>,
    #[serde(default)]
    pub metadata_xml: Option<String>,
    /// Accept responses the IdP sends unasked (off unless enabled).
    #[serde(default)]
    pub allow_idp_initiated: bool,
    #[serde(default)]
    pub attributes: SamlAttributes,
    /// `AuthnContextClassRef` values that mean a second factor was used.
    #[serde(default)]
    pub mfa_context_classes: Vec<String>,
}

/// Attribute names in the assertion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SamlAttributes {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Option<String>,
}

/// Which role a user provisioned by the provider gets, from their groups. Applied when the
/// account is created and on each sign-in of accounts the provider created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleMapping {
    /// The claim (OIDC) or attribute (SAML) holding the groups, `groups` by default. OAuth2
    /// providers use `oauth2.claims.groups`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub org_admin_groups: Vec<String>,
    /// Only a platform administrator may set these.
    #[serde(default)]
    pub platform_admin_groups: Vec<String>,
    /// `member` or `org_admin`.
    #[serde(default = "default_role")]
    pub default_role: Role,
}

fn default_role() -> Role {
    Role::Member
}

impl Default for RoleMapping {
    fn default() -> Self {
        RoleMapping {
            groups_claim: None,
            org_admin_groups: vec![],
            platform_admin_groups: vec![],
            default_role: default_role(),
        }
    }
}

impl RoleMapping {
    /// The role the groups map to; the highest wins.
    pub fn role_for(&self, groups: &[String]) -> Role {
        let member_of = |wanted: &[String]| groups.iter().any(|g| wanted.contains(g));
        if member_of(&self.platform_admin_groups) {
            Role::PlatformAdmin
        } else if member_of(&self.org_admin_groups) {
            Role::OrgAdmin
        } else {
            self.default_role
        }
    }

    pub fn validate(&self) -> ApiResult<()> {
        if self.default_role == Role::PlatformAdmin {
            return Err(ApiError::validation("role_mapping.default_role must be member or org_admin"));
        }
        Ok(())
    }

    pub fn of(provider: &IdentityProvider) -> RoleMapping {
        serde_json::from_value(provider.role_mapping.clone()).unwrap_or_default()
    }
}

/// A provider's protocol settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    Oidc(OidcSettings),
    OAuth2(OAuth2Settings),
    Saml(SamlSettings),
}

impl Settings {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Settings::Oidc(_) => ProviderKind::Oidc,
            Settings::OAuth2(_) => ProviderKind::Oauth2,
            Settings::Saml(_) => ProviderKind::Saml,
        }
    }

    /// The settings as the store keeps them.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Settings::Oidc(s) => serde_json::to_value(s),
            Settings::OAuth2(s) => serde_json::to_value(s),
            Settings::Saml(s) => serde_json::to_value(s),
        };
        value.unwrap_or_default()
    }

    /// The settings of a stored provider.
    pub fn of(provider: &IdentityProvider) -> ApiResult<Settings> {
        let config = provider.config.clone();
        let settings = match provider.kind {
            ProviderKind::Oidc => serde_json::from_value(config).map(Settings::Oidc),
            ProviderKind::Oauth2 => serde_json::from_value(config).map(Settings::OAuth2),
            ProviderKind::Saml => serde_json::from_value(config).map(Settings::Saml),
        };
        settings.map_err(ApiError::internal)
    }

    pub fn validate(&self) -> ApiResult<()> {
        match self {
            Settings::Oidc(s) => {
                require_url("oidc.issuer", &s.issuer)?;
                require_text("oidc.client_id", &s.client_id)
            }
            Settings::OAuth2(s) => {
                require_url("oauth2.authorize_url", &s.authorize_url)?;
                require_url("oauth2.token_url", &s.token_url)?;
                require_url("oauth2.userinfo_url", &s.userinfo_url)?;
                require_text("oauth2.client_id", &s.client_id)?;
                require_text("oauth2.claims.subject", &s.claims.subject)
            }
            Settings::Saml(s) => match (&s.metadata_url, &s.metadata_xml) {
                (Some(url), None) => require_url("saml.metadata_url", url),
                (None, Some(xml)) => require_text("saml.metadata_xml", xml),
                _ => Err(ApiError::validation("saml needs exactly one of metadata_url and metadata_xml")),
            },
        }
    }
}

fn require_text(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::validation(format!("{field} must not be empty")));
    }
    Ok(())
}

/// Provider URLs must be HTTPS: a token or a user-info answer over plain HTTP could be read or
/// changed on the way. Loopback addresses are the exception, for providers on the same host.
fn require_url(field: &str, value: &str) -> ApiResult<()> {
    let parsed = reqwest::Url::parse(value).map_err(|_| ApiError::validation(format!("{field} is not a URL")))?;
    let secure = parsed.scheme() == "https" || (parsed.scheme() == "http" && is_secure_context(value));
    if !secure || parsed.host_str().is_none() {
        return Err(ApiError::validation(format!("{field} must be an https URL (plain http only on loopback)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_role_wins() {
        let mapping = RoleMapping {
            org_admin_groups: vec!["admins".into()],
            platform_admin_groups: vec!["root".into()],
            ..RoleMapping::default()
        };
        assert_eq!(mapping.role_for(&[]), Role::Member);
        assert_eq!(mapping.role_for(&["staff".into(), "admins".into()]), Role::OrgAdmin);
        assert_eq!(mapping.role_for(&["admins".into(), "root".into()]), Role::PlatformAdmin);
        let platform_default = RoleMapping { default_role: Role::PlatformAdmin, ..RoleMapping::default() };
        assert!(platform_default.validate().is_err());
    }

    #[test]
    fn provider_urls_are_https_or_loopback() {
        for ok in ["https://idp.example.com", "http://127.0.0.1:4000/issuer", "http://localhost:3000"] {
            assert!(require_url("u", ok).is_ok(), "{ok}");
        }
        for bad in ["http://idp.example.com", "ftp://x", "not a url", "file:///etc/passwd"] {
            assert!(require_url("u", bad).is_err(), "{bad}");
        }
    }
}

//! Identity providers of an organization (single sign-on): org administrators manage their
//! org's, platform administrators any org's. Client secrets are write-only.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{IdentityProvider, IdentityProviderPatch, NewIdentityProvider, ProviderKind, Scope};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Json, Path, validate_slug};
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::auth::sso::redirect_uri;
use crate::auth::sso::settings::{OAuth2Settings, OidcSettings, RoleMapping, SamlSettings, Settings};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_providers, create_provider)).routes(routes!(
        get_provider,
        update_provider,
        delete_provider
    ))
}

/// OIDC settings as sent: the settings and the client secret (write-only).
#[derive(Deserialize, ToSchema)]
pub struct OidcInput {
    #[serde(flatten)]
    pub settings: OidcSettings,
    /// Write-only; absent keeps the current one. A public client (PKCE only) has none.
    pub client_secret: Option<String>,
}

/// OAuth2 settings as sent: the settings and the client secret (write-only).
#[derive(Deserialize, ToSchema)]
pub struct OAuth2Input {
    #[serde(flatten)]
    pub settings: OAuth2Settings,
    /// Write-only; absent keeps the current one.
    pub client_secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewIdentityProviderRequest {
    /// `[a-z0-9-]`, unique in the org.
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Email domains that lead to this provider on the sign-in page.
    #[serde(default)]
    pub domains: Vec<String>,
    /// For `kind: oidc`.
    pub oidc: Option<OidcInput>,
    /// For `kind: oauth2`.
    pub oauth2: Option<OAuth2Input>,
    /// For `kind: saml`.
    pub saml: Option<SamlSettings>,
    #[serde(default)]
    pub role_mapping: RoleMapping,
}

fn enabled_by_default() -> bool {
    true
}

/// Absent fields stay as they are; the settings of the provider's kind are replaced as a whole.
#[derive(Deserialize, ToSchema)]
pub struct IdentityProviderPatchRequest {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub domains: Option<Vec<String>>,
    pub oidc: Option<OidcInput>,
    pub oauth2: Option<OAuth2Input>,
    pub saml: Option<SamlSettings>,
    pub role_mapping: Option<RoleMapping>,
}

/// A provider as the API shows it: never its secret, and what the admin copies into the IdP.
#[derive(Serialize, ToSchema)]
pub struct IdentityProviderView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    pub enabled: bool,
    pub domains: Vec<String>,
    pub oidc: Option<OidcSettings>,
    pub oauth2: Option<OAuth2Settings>,
    pub saml: Option<SamlSettings>,
    pub role_mapping: RoleMapping,
    pub has_client_secret: bool,
    /// OIDC and OAuth2: the redirect (callback) URI to register at the provider.
    pub redirect_uri: Option<String>,
    /// SAML: the service provider's entity ID.
    pub sp_entity_id: Option<String>,
    /// SAML: the assertion consumer service URL.
    pub acs_url: Option<String>,
    /// SAML: where the provider reads this service provider's metadata.
    pub sp_metadata_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityProviderList {
    pub items: Vec<IdentityProviderView>,
}

fn view(app: &App, provider: IdentityProvider) -> ApiResult<IdentityProviderView> {
    let settings = Settings::of(&provider)?;
    let role_mapping = RoleMapping::of(&provider);
    let base = format!("{}/api/v1/auth/sso/{}", app.urls.public_url.trim_end_matches('/'), provider.id);
    let (oidc, oauth2, saml) = match settings {
        Settings::Oidc(s) => (Some(s), None, None),
        Settings::OAuth2(s) => (None, Some(s), None),
        Settings::Saml(s) => (None, None, Some(s)),
    };
    let is_saml = saml.is_some();
    let saml_url = |suffix: &str| is_saml.then(|| format!("{base}/{suffix}"));
    Ok(IdentityProviderView {
        redirect_uri: (!is_saml).then(|| redirect_uri(app, provider.id)),
        sp_entity_id: saml_url("metadata"),
        acs_url: saml_url("acs"),
        sp_metadata_url: saml_url("metadata"),
        id: provider.id,
        org_id: provider.org_id,
        name: provider.name,
        display_name: provider.display_name,
        kind: provider.kind,
        enabled: provider.enabled,
        domains: provider.domains,
        oidc,
        oauth2,
        saml,
        role_mapping,
        has_client_secret: provider.client_secret.is_some(),
        created_at: provider.created_at,
        updated_at: provider.updated_at,
    })
}

/// The settings of `kind` from a request, with the secret that came with them.
fn settings_for(
    kind: ProviderKind,
    oidc: Option<OidcInput>,
    oauth2: Option<OAuth2Input>,
    saml: Option<SamlSettings>,
) -> ApiResult<(Settings, Option<String>)> {
    let mismatch = || ApiError::validation(format!("send the settings of kind {} (and only those)", kind.as_str()));
    let (settings, secret) = match (kind, oidc, oauth2, saml) {
        (ProviderKind::Oidc, Some(input), None, None) => (Settings::Oidc(input.settings), input.client_secret),
        (ProviderKind::Oauth2, None, Some(input), None) => (Settings::OAuth2(input.settings), input.client_secret),
        (ProviderKind::Saml, None, None, Some(settings)) => (Settings::Saml(settings), None),
        _ => return Err(mismatch()),
    };
    settings.validate()?;
    Ok((settings, secret.filter(|s| !s.is_empty())))
}

/// Lower-case domains, each a plain host name.
fn normalize_domains(domains: Vec<String>) -> ApiResult<Vec<String>> {
    domains
        .into_iter()
        .map(|domain| {
            let domain = domain.trim().trim_start_matches('@').to_lowercase();
            let valid = !domain.is_empty()
                && domain.len() <= 253
                && domain.contains('.')
                && domain.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            if valid { Ok(domain) } else { Err(ApiError::validation(format!("{domain:?} is not an email domain"))) }
        })
        .collect()
}

/// A mapping to `platform_admin` is a platform administrator's decision: an org administrator
/// must not be able to make their IdP hand out platform rights.
fn check_role_mapping(principal: &Principal, mapping: &RoleMapping, current: Option<&RoleMapping>) -> ApiResult<()> {
    mapping.validate()?;
    let unchanged = current.is_some_and(|c| c.platform_admin_groups == mapping.platform_admin_groups);
    if !mapping.platform_admin_groups.is_empty() && !unchanged {
        principal.require_platform_admin()?;
    }
    Ok(())
}

/// The org, when the caller administers it; another org is a 404.
async fn administered_org(app: &App, principal: &Principal, org_id: Uuid) -> ApiResult<()> {
    app.store.get_org(principal.scope(), org_id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    principal.require_admin()
}

async fn provider_of(app: &App, principal: &Principal, org_id: Uuid, id: Uuid) -> ApiResult<IdentityProvider> {
    administered_org(app, principal, org_id).await?;
    app.store
        .get_identity_provider(Scope::Org(org_id), id)
        .await?
        .ok_or_else(|| ApiError::not_found("identity provider"))
}

fn seal_secret(app: &App, secret: Option<String>) -> Option<String> {
    secret.map(|secret| app.sealer.seal(secret.as_bytes()))
}

async fn audit(
    app: &App,
    meta: &RequestMeta,
    principal: &Principal,
    action: &'static str,
    p: &IdentityProvider,
) -> ApiResult<()> {
    let details = json!({"name": p.name, "kind": p.kind, "enabled": p.enabled, "domains": p.domains,
        "role_mapping": p.role_mapping, "has_client_secret": p.client_secret.is_some()});
    let record = Record::new(action, format!("identity_provider:{}", p.id)).org(p.org_id).details(details);
    app.audit(meta, &Actor::from(principal), record).await
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/identity-providers", tag = "identity-providers",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, body = IdentityProviderList), (status = 404, body = ErrorBody)))]
async fn list_providers(
    State(app): State<AppState>,
    principal: Principal,
    Path(org_id): Path<Uuid>,
) -> ApiResult<axum::Json<IdentityProviderList>> {
    administered_org(&app, &principal, org_id).await?;
    let providers = app.store.list_identity_providers(principal.scope(), org_id).await?;
    let items = providers.into_iter().map(|p| view(&app, p)).collect::<ApiResult<_>>()?;
    Ok(axum::Json(IdentityProviderList { items }))
}

#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/identity-providers", tag = "identity-providers",
    params(("org_id" = Uuid, Path)), request_body = NewIdentityProviderRequest,
    responses(
        (status = 201, body = IdentityProviderView),
        (status = 403, description = "Not an administrator of the org, or `platform_admin_groups` set by an org administrator", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the org has a provider of that name", body = ErrorBody),
    ))]
async fn create_provider(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(org_id): Path<Uuid>,
    Json(body): Json<NewIdentityProviderRequest>,
) -> ApiResult<(StatusCode, axum::Json<IdentityProviderView>)> {
    administered_org(&app, &principal, org_id).await?;
    validate_slug("name", &body.name)?;
    check_role_mapping(&principal, &body.role_mapping, None)?;
    let (settings, secret) = settings_for(body.kind, body.oidc, body.oauth2, body.saml)?;
    let new = NewIdentityProvider {
        org_id,
        name: body.name,
        display_name: display_name(body.display_name)?,
        kind: body.kind,
        enabled: body.enabled,
        domains: normalize_domains(body.domains)?,
        config: settings.to_json(),
        client_secret: seal_secret(&app, secret),
        role_mapping: serde_json::to_value(&body.role_mapping).map_err(ApiError::internal)?,
    };
    let provider = app.store.create_identity_provider(new).await?;
    audit(&app, &meta, &principal, "identity_provider.create", &provider).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&app, provider)?)))
}

fn display_name(name: String) -> ApiResult<String> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("display_name must be 1-100 characters"));
    }
    Ok(name)
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/identity-providers/{id}", tag = "identity-providers",
    params(("org_id" = Uuid, Path), ("id" = Uuid, Path)),
    responses((status = 200, body = IdentityProviderView), (status = 404, body = ErrorBody)))]
async fn get_provider(
    State(app): State<AppState>,
    principal: Principal,
    Path((org_id, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<axum::Json<IdentityProviderView>> {
    let provider = provider_of(&app, &principal, org_id, id).await?;
    Ok(axum::Json(view(&app, provider)?))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/identity-providers/{id}", tag = "identity-providers",
    params(("org_id" = Uuid, Path), ("id" = Uuid, Path)), request_body = IdentityProviderPatchRequest,
    responses(
        (status = 200, body = IdentityProviderView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the org has a provider of that name", body = ErrorBody),
    ))]
async fn update_provider(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path((org_id, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<IdentityProviderPatchRequest>,
) -> ApiResult<axum::Json<IdentityProviderView>> {
    let current = provider_of(&app, &principal, org_id, id).await?;
    if let Some(name) = &body.name {
        validate_slug("name", name)?;
    }
    if let Some(mapping) = &body.role_mapping {
        check_role_mapping(&principal, mapping, Some(&RoleMapping::of(&current)))?;
    }
    let touches_settings = body.oidc.is_some() || body.oauth2.is_some() || body.saml.is_some();
    let (config, secret) = if touches_settings {
        let (settings, secret) = settings_for(current.kind, body.oidc, body.oauth2, body.saml)?;
        (Some(settings.to_json()), secret)
    } else {
        (None, None)
    };
    let patch = IdentityProviderPatch {
        name: body.name,
        display_name: body.display_name.map(display_name).transpose()?,
        enabled: body.enabled,
        domains: body.domains.map(normalize_domains).transpose()?,
        config,
        client_secret: seal_secret(&app, secret).map(Some),
        role_mapping: body.role_mapping.map(|m| serde_json::to_value(m).map_err(ApiError::internal)).transpose()?,
    };
    let provider = app
        .store
        .update_identity_provider(Scope::Org(org_id), id, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("identity provider"))?;
    audit(&app, &meta, &principal, "identity_provider.update", &provider).await?;
    Ok(axum::Json(view(&app, provider)?))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/identity-providers/{id}", tag = "identity-providers",
    params(("org_id" = Uuid, Path), ("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted with the identities linked through it"), (status = 404, body = ErrorBody)))]
async fn delete_provider(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path((org_id, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let provider = provider_of(&app, &principal, org_id, id).await?;
    if !app.store.delete_identity_provider(Scope::Org(org_id), id).await? {
        return Err(ApiError::not_found("identity provider"));
    }
    audit(&app, &meta, &principal, "identity_provider.delete", &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

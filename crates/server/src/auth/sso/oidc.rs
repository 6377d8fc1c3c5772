//! OpenID Connect with `openidconnect`: discovery (cached), the authorization code flow with
//! PKCE, `state` and `nonce`, and the ID token's checks: signature by a key of the provider's
//! JWKS (fetched again when a token names a key not seen yet, so rotation works and an unknown
//! key is still refused), only the asymmetric algorithms the provider advertises, `iss`, `aud`,
//! `azp`, `exp`, `iat` and the nonce. User info is read where configured; the provider's
//! `end_session_endpoint` is kept for RP-initiated logout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, JwsSigningAlgorithm, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamspace_store::IdentityProvider;
use uuid::Uuid;

use super::settings::{OidcSettings, RoleMapping, Settings};
use super::{AuthorizationRequest, ExternalIdentity, PendingFlow, ProviderSession, SsoFailure, redirect_uri};
use crate::app::App;

/// Discovery documents are read again after this long.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// A token naming an unknown key fetches the key set again at most this often per provider, so a
/// stream of such tokens cannot make the server hammer the provider.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// How far in the future an `iat` may be (clocks differ a little).
const IAT_SKEW_SECS: i64 = 60;
/// An ID token issued longer ago than this is not fresh from the token endpoint.
const IAT_MAX_AGE_SECS: i64 = 600;

type Metadata = ProviderMetadataWithLogout;
type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A provider's discovery document and key set, as last fetched.
#[derive(Clone)]
struct Discovered {
    issuer: String,
    metadata: Metadata,
    fetched_at: Instant,
    /// When an unknown key last made the key set be fetched again.
    jwks_refetched_at: Option<Instant>,
}

/// Discovery documents by provider, shared by the requests of this replica.
#[derive(Default)]
pub struct Discoveries {
    entries: Mutex<HashMap<Uuid, Discovered>>,
}

impl Discoveries {
    fn fresh(&self, provider_id: Uuid, issuer: &str) -> Option<Discovered> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&provider_id).filter(|d| d.issuer == issuer && d.fetched_at.elapsed() < DISCOVERY_TTL).cloned()
    }

    fn keep(&self, provider_id: Uuid, discovered: Discovered) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).insert(provider_id, discovered);
    }
}

/// What the flow keeps between the redirect and the callback.
#[derive(Serialize, Deserialize)]
struct Kept {
    pkce_verifier: String,
    nonce: String,
}

fn settings_of(provider: &IdentityProvider) -> Result<OidcSettings, SsoFailure> {
    match Settings::of(provider)? {
        Settings::Oidc(settings) => Ok(settings),
        _ => Err(SsoFailure::failed("not an OIDC provider")),
    }
}

async fn discover(app: &App, provider: &IdentityProvider, settings: &OidcSettings) -> Result<Discovered, SsoFailure> {
    if let Some(discovered) = app.sso.discoveries.fresh(provider.id, &settings.issuer) {
        return Ok(discovered);
    }
    let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| SsoFailure::failed(format!("issuer: {e}")))?;
    // Checks that the document names this issuer, and fetches the key set.
    let metadata = Metadata::discover_async(issuer, &app.outbound)
        .await
        .map_err(|e| SsoFailure::failed(format!("discovery_failed: {e}")))?;
    let discovered =
        Discovered { issuer: settings.issuer.clone(), metadata, fetched_at: Instant::now(), jwks_refetched_at: None };
    app.sso.discoveries.keep(provider.id, discovered.clone());
    Ok(discovered)
}

fn client(
    app: &App,
    provider: &IdentityProvider,
    settings: &OidcSettings,
    metadata: Metadata,
) -> Result<Client, SsoFailure> {
    let secret = client_secret(app, provider)?;
    let redirect = RedirectUrl::new(redirect_uri(app, provider.id)).map_err(|e| SsoFailure::failed(e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(metadata, ClientId::new(settings.client_id.clone()), secret)
        .set_redirect_uri(redirect))
}

/// The provider's client secret, unsealed; `None` for a public client.
pub(super) fn client_secret(app: &App, provider: &IdentityProvider) -> Result<Option<ClientSecret>, SsoFailure> {
    provider
        .client_secret
        .as_deref()
        .map(|sealed| {
            let secret = app.sealer.open(sealed).ok_or_else(|| SsoFailure::failed("client secret unreadable"))?;
            String::from_utf8(secret).map(ClientSecret::new).map_err(|_| SsoFailure::failed("client secret unreadable"))
        })
        .transpose()
}

pub async fn authorization_request(
    app: &App,
    provider: &IdentityProvider,
    state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    let settings = settings_of(provider)?;
    let discovered = discover(app, provider, &settings).await?;
    let client = client(app, provider, &settings, discovered.metadata)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = Nonce::new_random();
    let state = state.to_owned();
    let kept_nonce = nonce.clone();
    let (url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || CsrfToken::new(state), move || nonce)
        .add_scopes(settings.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    let kept = Kept { pkce_verifier: verifier.secret().clone(), nonce: kept_nonce.secret().clone() };
    Ok(AuthorizationRequest::new(url, &kept))
}

/// Trades the code for tokens and answers who the checked ID token says signed in.
pub async fn identity(
    app: &App,
    pending: &PendingFlow,
    code: &str,
) -> Result<(ExternalIdentity, ProviderSession), SsoFailure> {
    let provider = &pending.provider;
    let settings = settings_of(provider)?;
    let kept: Kept = pending.kept()?;
    let discovered = discover(app, provider, &settings).await?;
    let end_session = discovered.metadata.additional_metadata().end_session_endpoint.clone();
    let userinfo_url = discovered.metadata.userinfo_endpoint().map(|url| url.url().to_string());
    let client = client(app, provider, &settings, discovered.metadata.clone())?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| SsoFailure::failed(format!("token_exchange_failed: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(kept.pkce_verifier))
        .request_async(&app.outbound)
        .await
        .map_err(|e| SsoFailure::failed(format!("token_exchange_failed: {e}")))?;
    let id_token = tokens.id_token().ok_or_else(|| SsoFailure::failed("id_token_missing"))?;
    let claims = verified_claims(app, provider, &settings, discovered, id_token, &Nonce::new(kept.nonce)).await?;
    let mut raw = raw_claims(id_token)?;
    if settings.use_userinfo {
        let url = userinfo_url.ok_or_else(|| SsoFailure::failed("the provider has no userinfo_endpoint"))?;
        let userinfo = app.outbound.get_json(&url, tokens.access_token().secret()).await.map_err(SsoFailure::failed)?;
        // The user info must be about the person the ID token names (OIDC Core 5.3.2).
        if userinfo.get("sub").and_then(Value::as_str) != Some(claims.subject().as_str()) {
            return Err(SsoFailure::failed("userinfo_subject_mismatch"));
        }
        merge(&mut raw, userinfo);
    }
    let identity = external_identity(provider, &settings, &claims, &raw);
    let end_session_url = end_session.map(|endpoint| {
        let back = PostLogoutRedirectUrl::new(format!("{}/login", app.urls.public_url.trim_end_matches('/')));
        let request = LogoutRequest::from(endpoint).set_id_token_hint(id_token);
        match back {
            Ok(back) => request.set_post_logout_redirect_uri(back).http_get_url().to_string(),
            Err(_) => request.http_get_url().to_string(),
        }
    });
    Ok((identity, ProviderSession { end_session_url }))
}

/// The ID token's claims once every check passed. A token naming a key the cached set lacks
/// fetches the set again once (the provider rotated its keys); a key still unknown is refused.
async fn verified_claims(
    app: &App,
    provider: &IdentityProvider,
    settings: &OidcSettings,
    discovered: Discovered,
    id_token: &CoreIdToken,
    nonce: &Nonce,
) -> Result<CoreIdTokenClaims, SsoFailure> {
    match verify(app, settings, &discovered, id_token, nonce) {
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
            let refreshed = refetch_keys(app, provider.id, discovered).await?;
            verify(app, settings, &refreshed, id_token, nonce).map_err(refusal)
        }
        verified => verified.map_err(refusal),
    }
    .and_then(|claims| check_authorized_party(settings, claims))
}

fn verify(
    app: &App,
    settings: &OidcSettings,
    discovered: &Discovered,
    id_token: &CoreIdToken,
    nonce: &Nonce,
) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
    let metadata = &discovered.metadata;
    // Only what the provider advertises, and never a shared-secret algorithm: with HS256 anyone
    // holding the client secret could mint tokens, and `none` is no signature at all.
    let allowed: Vec<CoreJwsSigningAlgorithm> = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| !alg.uses_shared_secret() && **alg != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect();
    let clock = app.clock.clone();
    let now = app.clock.now();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(settings.client_id.clone()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    )
    .set_allowed_algs(allowed)
    .set_time_fn(move || clock.now())
    .set_issue_time_verifier_fn(move |iat| {
        if iat > now + chrono::Duration::seconds(IAT_SKEW_SECS) {
            Err("issued in the future".to_owned())
        } else if iat < now - chrono::Duration::seconds(IAT_MAX_AGE_SECS) {
            Err("issued too long ago".to_owned())
        } else {
            Ok(())
        }
    });
    id_token.claims(&verifier, nonce).cloned()
}

/// `azp`, which `openidconnect` leaves to its users: when present it must be this client, and a
/// token for several audiences must have it (OIDC Core 3.1.3.7, steps 4-5).
fn check_authorized_party(settings: &OidcSettings, claims: CoreIdTokenClaims) -> Result<CoreIdTokenClaims, SsoFailure> {
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != settings.client_id => {
            Err(SsoFailure::failed(format!("id_token_wrong_azp: {}", azp.as_str())))
        }
        None if claims.audiences().len() > 1 => {
            Err(SsoFailure::failed("id_token_wrong_azp: missing with several audiences"))
        }
        _ => Ok(claims),
    }
}

/// Fetches the provider's key set again, unless that was done a moment ago.
async fn refetch_keys(app: &App, provider_id: Uuid, mut discovered: Discovered) -> Result<Discovered, SsoFailure> {
    if discovered.jwks_refetched_at.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
        return Ok(discovered);
    }
    let jwks: CoreJsonWebKeySet = CoreJsonWebKeySet::fetch_async(discovered.metadata.jwks_uri(), &app.outbound)
        .await
        .map_err(|e| SsoFailure::failed(format!("jwks_fetch_failed: {e}")))?;
    discovered.metadata = discovered.metadata.set_jwks(jwks);
    discovered.jwks_refetched_at = Some(Instant::now());
    app.sso.discoveries.keep(provider_id, discovered.clone());
    Ok(discovered)
}

/// The audit reason for a refused ID token.
fn refusal(error: ClaimsVerificationError) -> SsoFailure {
    let kind = match &error {
        ClaimsVerificationError::Expired(_) => "id_token_expired",
        ClaimsVerificationError::InvalidAudience(_) => "id_token_wrong_audience",
        ClaimsVerificationError::InvalidIssuer(_) => "id_token_wrong_issuer",
        ClaimsVerificationError::InvalidNonce(_) => "id_token_wrong_nonce",
        ClaimsVerificationError::InvalidAuthTime(_) | ClaimsVerificationError::Other(_) => "id_token_invalid",
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
            "id_token_unknown_key"
        }
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature,
        ) => "id_token_alg_refused",
        ClaimsVerificationError::SignatureVerification(_) => "id_token_bad_signature",
        _ => "id_token_invalid",
    };
    SsoFailure::failed(format!("{kind}: {error}"))
}

/// The ID token's payload as JSON, read once its signature and claims were checked, for the
/// claims `openidconnect` does not type (groups).
fn raw_claims(id_token: &CoreIdToken) -> Result<Value, SsoFailure> {
    let jwt = id_token.to_string();
    let payload = jwt.split('.').nth(1).ok_or_else(|| SsoFailure::failed("id_token_invalid: not a JWS"))?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SsoFailure::failed("id_token_invalid: payload"))?;
    serde_json::from_slice(&bytes).map_err(|_| SsoFailure::failed("id_token_invalid: payload"))
}

/// User info fills in what the ID token left out; the ID token's claims win.
fn merge(claims: &mut Value, userinfo: Value) {
    if let (Some(claims), Value::Object(userinfo)) = (claims.as_object_mut(), userinfo) {
        for (key, value) in userinfo {
            claims.entry(key).or_insert(value);
        }
    }
}

fn external_identity(
    provider: &IdentityProvider,
    settings: &OidcSettings,
    claims: &CoreIdTokenClaims,
    raw: &Value,
) -> ExternalIdentity {
    let verified = raw.get("email_verified").and_then(Value::as_bool) != Some(false);
    let email = raw.get("email").and_then(Value::as_str).filter(|_| verified).map(str::to_owned);
    let groups_claim = RoleMapping::of(provider).groups_claim.unwrap_or_else(|| "groups".to_owned());
    let amr_mfa = claims.auth_method_refs().is_some_and(|amr| amr.iter().any(|method| method.as_str() == "mfa"));
    let acr_mfa =
        claims.auth_context_ref().is_some_and(|acr| settings.acr_mfa_values.iter().any(|v| v == acr.as_str()));
    ExternalIdentity {
        provider_id: provider.id,
        subject: claims.subject().as_str().to_owned(),
        email,
        name: raw.get("name").and_then(Value::as_str).map(str::to_owned),
        groups: strings(raw.get(&groups_claim)),
        mfa_by_idp: amr_mfa || acr_mfa,
    }
}

/// A claim that is a string or a list of strings, as a list.
pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => vec![],
    }
}

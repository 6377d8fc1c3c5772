//! Plain OAuth2 (GitHub-style) with `oauth2`: the authorization code flow with PKCE and `state`,
//! then the user-info endpoint, read by the provider's claim paths (`id`, `email`, `login`...).
//! No ID token here, so nothing says a second factor was used.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamspace_store::IdentityProvider;

use super::oidc::{client_secret, strings};
use super::settings::{OAuth2Settings, Settings};
use super::{AuthorizationRequest, ExternalIdentity, PendingFlow, ProviderSession, SsoFailure, redirect_uri};
use crate::app::App;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What the flow keeps between the redirect and the callback.
#[derive(Serialize, Deserialize)]
struct Kept {
    pkce_verifier: String,
}

fn settings_of(provider: &IdentityProvider) -> Result<OAuth2Settings, SsoFailure> {
    match Settings::of(provider)? {
        Settings::OAuth2(settings) => Ok(settings),
        _ => Err(SsoFailure::failed("not an OAuth2 provider")),
    }
}

fn client(app: &App, provider: &IdentityProvider, settings: &OAuth2Settings) -> Result<Client, SsoFailure> {
    let invalid = |e: oauth2::url::ParseError| SsoFailure::failed(format!("provider settings: {e}"));
    let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
        .set_auth_uri(AuthUrl::new(settings.authorize_url.clone()).map_err(invalid)?)
        .set_token_uri(TokenUrl::new(settings.token_url.clone()).map_err(invalid)?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri(app, provider.id)).map_err(invalid)?);
    Ok(match client_secret(app, provider)? {
        Some(secret) => client.set_client_secret(secret),
        None => client,
    })
}

pub async fn authorization_request(
    app: &App,
    provider: &IdentityProvider,
    state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    let settings = settings_of(provider)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = state.to_owned();
    let (url, _) = client(app, provider, &settings)?
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(settings.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    let kept = Kept { pkce_verifier: verifier.secret().clone() };
    Ok(AuthorizationRequest::new(url, &kept))
}

/// Trades the code for an access token and reads who it belongs to from the user-info endpoint.
pub async fn identity(
    app: &App,
    pending: &PendingFlow,
    code: &str,
) -> Result<(ExternalIdentity, ProviderSession), SsoFailure> {
    let provider = &pending.provider;
    let settings = settings_of(provider)?;
    let kept: Kept = pending.kept()?;
    let tokens = client(app, provider, &settings)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(kept.pkce_verifier))
        .request_async(&app.outbound)
        .await
        .map_err(|e| SsoFailure::failed(format!("token_exchange_failed: {e}")))?;
    let userinfo = app
        .outbound
        .get_json(&settings.userinfo_url, tokens.access_token().secret())
        .await
        .map_err(SsoFailure::failed)?;
    Ok((identity_from_userinfo(provider, &settings, &userinfo)?, ProviderSession::default()))
}

fn identity_from_userinfo(
    provider: &IdentityProvider,
    settings: &OAuth2Settings,
    userinfo: &Value,
) -> Result<ExternalIdentity, SsoFailure> {
    let claims = &settings.claims;
    let text = |path: &Option<String>| path.as_deref().and_then(|p| scalar(at_path(userinfo, p)));
    let subject = scalar(at_path(userinfo, &claims.subject))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SsoFailure::failed(format!("userinfo_subject_missing: no {:?}", claims.subject)))?;
    Ok(ExternalIdentity {
        provider_id: provider.id,
        subject,
        email: text(&claims.email),
        name: text(&claims.name),
        groups: strings(claims.groups.as_deref().and_then(|p| at_path(userinfo, p))),
        mfa_by_idp: false,
    })
}

/// The value at a dotted path (`id`, `profile.email`).
fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

/// A string or a number as text (GitHub's `id` is a number).
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_read_by_dotted_paths_and_numbers_become_text() {
        let userinfo =
            json!({"id": 583231, "login": "octocat", "profile": {"mail": "o@example.com"}, "teams": ["a", "b"]});
        assert_eq!(scalar(at_path(&userinfo, "id")).as_deref(), Some("583231"));
        assert_eq!(scalar(at_path(&userinfo, "profile.mail")).as_deref(), Some("o@example.com"));
        assert_eq!(scalar(at_path(&userinfo, "profile.none")), None);
        assert_eq!(scalar(at_path(&userinfo, "teams")), None);
        assert_eq!(strings(at_path(&userinfo, "teams")), vec!["a".to_owned(), "b".to_owned()]);
    }
}

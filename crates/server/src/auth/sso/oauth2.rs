//! Plain OAuth2 (GitHub-style): the authorization code flow with PKCE and state, and the user
//! from the user-info endpoint by claim paths.

use streamspace_store::IdentityProvider;

use super::{AuthorizationRequest, SsoFailure};
use crate::app::App;

pub async fn authorization_request(
    _app: &App,
    _provider: &IdentityProvider,
    _state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    Err(SsoFailure::failed("OAuth2 flows are not available yet"))
}

pub async fn identity(
    _app: &App,
    _pending: &super::PendingFlow,
    _code: &str,
) -> Result<(super::ExternalIdentity, super::ProviderSession), SsoFailure> {
    Err(SsoFailure::failed("not available yet"))
}

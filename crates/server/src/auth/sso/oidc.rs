//! OpenID Connect: discovery, the authorization code flow with PKCE, state and nonce, and the ID
//! token's checks.

use streamspace_store::IdentityProvider;

use super::{AuthorizationRequest, SsoFailure};
use crate::app::App;

pub async fn authorization_request(
    _app: &App,
    _provider: &IdentityProvider,
    _state: &str,
) -> Result<AuthorizationRequest, SsoFailure> {
    Err(SsoFailure::failed("OIDC flows are not available yet"))
}

pub async fn identity(
    _app: &App,
    _pending: &super::PendingFlow,
    _code: &str,
) -> Result<(super::ExternalIdentity, super::ProviderSession), SsoFailure> {
    Err(SsoFailure::failed("not available yet"))
}

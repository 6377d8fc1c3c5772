//! SAML 2.0 endpoints of an identity provider: our SP metadata, and the ACS where the browser posts the IdP's
//! response (HTTP-POST binding). The flow starts at `GET /api/v1/auth/sso/{id}/start` like every protocol's.

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use quick_xml::escape::escape;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use streamspace_store::{IdentityProvider, ProviderKind, Scope};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Path;
use super::sso::{binding_cookie, ended, fail, with_cookie};
use crate::app::{App, AppState};
use crate::auth::cookies::Read;
use crate::auth::sso::saml::flow as saml;
use crate::auth::sso::{self, Flow, PendingFlow, ProviderSession, SsoFailure};
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metadata)).routes(routes!(acs))
}

async fn saml_provider(app: &App, id: Uuid) -> ApiResult<Option<IdentityProvider>> {
    let provider = app.store.get_identity_provider(Scope::Platform, id).await?;
    Ok(provider.filter(|provider| provider.kind == ProviderKind::Saml))
}

#[utoipa::path(get, path = "/api/v1/auth/sso/{id}/metadata", tag = "sso", security(()), params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "This service provider's SAML metadata, for the IdP", content_type = "application/samlmetadata+xml", body = String),
        (status = 404, description = "No SAML provider with this id", body = ErrorBody),
    ))]
async fn metadata(State(app): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Response> {
    let provider = saml_provider(&app, id).await?.ok_or_else(|| ApiError::not_found("identity provider"))?;
    let xml = saml::service_provider(&app, &provider).metadata_xml();
    Ok(([(CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response())
}

/// The IdP's answer, as the browser posts it.
#[derive(Deserialize, ToSchema)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    pub saml_response: String,
    /// The flow's state, as the start sent it; absent for an IdP-initiated sign-in.
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
    /// Set by our own re-post page (see [`repost_page`]).
    pub resubmitted: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/sso/{id}/acs", tag = "sso", security(()), params(("id" = Uuid, Path)),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To `/login/sso` with `next`, `mfa` or `error`; when linking, to `/account` with `linked` or `link_error`"),
        (status = 200, description = "A page that posts the form again from this origin, when the IdP's cross-site post came without the flow's cookie", content_type = "text/html"),
    ))]
async fn acs(
    State(app): State<AppState>,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> ApiResult<Response> {
    let Some(provider) = saml_provider(&app, id).await? else {
        return fail(&app, &meta, None, false, &SsoFailure::failed("no such SAML provider")).await;
    };
    if !provider.enabled {
        return fail(&app, &meta, Some(&provider), false, &SsoFailure::new("provider_disabled", "disabled")).await;
    }
    let relay_state = form.relay_state.as_deref().filter(|state| !state.is_empty());
    let cookie_sent = matches!(sso::browser_cookie(&app).read(&headers), Read::One(_));
    if relay_state.is_some() && !cookie_sent && form.resubmitted.is_none() {
        return repost_page(&provider, &form);
    }
    let pending = match relay_state {
        Some(state) => match sso::take_flow(&app, &provider, Some(state), &headers).await {
            Ok(pending) => Some(pending),
            Err(failure) => return fail(&app, &meta, Some(&provider), false, &failure).await,
        },
        None => None,
    };
    let linking = pending.as_ref().is_some_and(|pending| pending.link_user.is_some());
    let outcome = match saml::identity(&app, &provider, pending.as_ref(), &form.saml_response).await {
        Ok(identity) => {
            let pending = pending.unwrap_or_else(|| unsolicited(&provider));
            sso::finish(&app, &meta, pending, identity, ProviderSession::default()).await
        }
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(outcome) => Ok(with_cookie(ended(&app, outcome)?, binding_cookie(&app, "")?)),
        Err(failure) => fail(&app, &meta, Some(&provider), linking, &failure).await,
    }
}

/// An IdP-initiated sign-in has no flow of ours; it lands on the UI's home.
fn unsolicited(provider: &IdentityProvider) -> PendingFlow {
    PendingFlow {
        provider: provider.clone(),
        flow: Flow { return_to: "/".to_owned(), ..Flow::default() },
        link_user: None,
    }
}

const REPOST_SCRIPT: &str = "document.forms[0].submit()";

/// The IdP's post is cross-site, so the browser leaves out our SameSite=Lax flow cookie. This page posts the
/// same form again from our own origin, where the cookie is sent; the flow's binding to the browser is then
/// checked as for every protocol. Only our script may run, and the form only goes to us.
fn repost_page(provider: &IdentityProvider, form: &AcsForm) -> ApiResult<Response> {
    let html = format!(
        concat!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>Signing in</title></head><body>"#,
            r#"<form method="post" action="/api/v1/auth/sso/{id}/acs">"#,
            r#"<input type="hidden" name="SAMLResponse" value="{response}">"#,
            r#"<input type="hidden" name="RelayState" value="{relay_state}">"#,
            r#"<input type="hidden" name="resubmitted" value="1">"#,
            r#"<noscript><button type="submit">Continue</button></noscript></form>"#,
            r#"<script>{script}</script></body></html>"#
        ),
        id = provider.id,
        response = escape(form.saml_response.as_str()),
        relay_state = escape(form.relay_state.as_deref().unwrap_or_default()),
        script = REPOST_SCRIPT,
    );
    let script_hash = STANDARD.encode(Sha256::digest(REPOST_SCRIPT.as_bytes()));
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{script_hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let headers = [
        (CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
        (CONTENT_SECURITY_POLICY, policy),
        (CACHE_CONTROL, "no-store".to_owned()),
        (REFERRER_POLICY, "no-referrer".to_owned()),
    ];
    Ok((headers, html).into_response())
}

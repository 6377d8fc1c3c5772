//! OpenID Connect against oidc-provider: sign-in, provisioning, roles, linking, MFA policy,
//! logout, and every way a callback or an ID token can be wrong.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use streamspace_server::auth::totp;
use streamspace_store::{Scope, UserPatch};

use crate::harness::{Landed, Sso, TestOrg, TestProvider};
use crate::idp::idp;

fn person(sub: &str, email: &str, groups: &[&str]) -> Value {
    json!({"sub": sub, "email": email, "name": format!("Person {sub}"), "groups": groups, "amr": ["pwd"]})
}

/// An org `acme` with an OIDC provider that maps the `admins` group to org admins.
async fn acme(sso: &Sso) -> (TestOrg, TestProvider) {
    let org = sso.org("acme").await;
    let provider = sso
        .oidc_provider(
            &org,
            json!({
                "domains": ["acme.test"],
                "role_mapping": {"org_admin_groups": ["admins"]},
                "oidc": {"scopes": ["email", "profile", "groups"]},
            }),
        )
        .await;
    (org, provider)
}

async fn assert_signed_in(sso: &Sso, landed: &Landed) {
    let why = || async { sso.last_audit("sso.sign_in").await.details };
    if landed.path() != "/login/sso" || landed.param("next").as_deref() != Some("/catalog") {
        panic!("not signed in: {} ({})", landed.url, why().await);
    }
}

fn assert_failed(landed: &Landed, code: &str) {
    assert_eq!(landed.path(), "/login/sso", "{:?}", landed.url);
    assert_eq!(landed.param("error").as_deref(), Some(code), "{:?}", landed.url);
    assert_eq!(landed.param("next"), None);
}

#[tokio::test]
async fn oidc_sign_in_provisions_the_user_in_the_providers_org_with_mapped_roles() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("alice-1", "Alice@Acme.test", &["staff", "admins"]), None).await;
    let browser = sso.browser();
    assert_signed_in(&sso, &browser.sign_in(&provider).await).await;
    let (status, tokens) = browser.refresh().await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["user"]["username"], "alice@acme.test");
    assert_eq!(tokens["user"]["org_id"], org.id.as_str());
    assert_eq!(tokens["user"]["role"], "org_admin");
    let event = sso.last_audit("sso.sign_in").await;
    assert_eq!((event.result.as_str(), &event.details["provisioned"]), ("success", &json!(true)));

    // The mapping is followed at every sign-in of an account the provider created.
    idp().knobs(&provider.client_id, person("alice-1", "alice@acme.test", &["staff"]), None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    assert_eq!(sso.user("alice@acme.test").await.role, streamspace_store::Role::Member);
    // A provisioned account has no password to sign in with.
    let body = json!({"username": "alice@acme.test", "password": "!sso"});
    let (status, _) = sso.call(Method::POST, "/api/v1/auth/login", None, Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn discovery_offers_an_orgs_providers_by_email_domain_or_org_name_and_nothing_else() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    let (status, found) = sso.call(Method::GET, "/api/v1/auth/sso/discover?email=bob@ACME.test", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["org"], "acme");
    assert_eq!(found["providers"][0]["id"], provider.id.as_str());
    assert_eq!(found["providers"][0]["start_url"], format!("/api/v1/auth/sso/{}/start", provider.id));
    let (_, by_org) = sso.call(Method::GET, "/api/v1/auth/sso/discover?org=acme", None, None).await;
    assert_eq!(by_org["providers"].as_array().unwrap().len(), 1);
    sso.org("quiet").await;
    for unknown in ["email=bob@nowhere.test", "org=nowhere", "org=quiet", "email=no-at-sign"] {
        let (status, nothing) =
            sso.call(Method::GET, &format!("/api/v1/auth/sso/discover?{unknown}"), None, None).await;
        assert_eq!((status, &nothing), (StatusCode::OK, &json!({"org": null, "providers": []})), "{unknown}");
    }
}

#[tokio::test]
async fn an_unlinked_local_account_with_the_email_is_not_signed_in_to() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    let local = json!({"username": "bob@acme.test", "password": "password-123", "role": "member", "org_id": org.id});
    let (status, _) = sso.call(Method::POST, "/api/v1/users", Some(&org.admin), Some(local)).await;
    assert_eq!(status, StatusCode::CREATED);
    idp().knobs(&provider.client_id, person("bob-1", "bob@acme.test", &[]), None).await;
    assert_failed(&sso.browser().sign_in(&provider).await, "link_required");
    sso.assert_refused("an unlinked account").await;
    assert_eq!(sso.last_audit("sso.sign_in").await.details["code"], "link_required");
}

#[tokio::test]
async fn linking_is_an_explicit_signed_in_act_and_then_signs_in_to_the_local_account() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    let local = json!({"username": "carol", "password": "password-123", "role": "member", "org_id": org.id});
    sso.call(Method::POST, "/api/v1/users", Some(&org.admin), Some(local)).await;
    let carol = sso.login("carol", "password-123").await;
    idp().knobs(&provider.client_id, person("carol-1", "carol@acme.test", &["admins"]), None).await;

    let browser = sso.browser();
    let (status, started) =
        browser.post("/api/v1/me/identities", Some(&carol), json!({"provider_id": provider.id})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let landed = browser.visit(&started["redirect_url"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!((landed.path(), landed.param("linked").as_deref()), ("/account", Some("oidc")), "{:?}", landed.url);
    assert_eq!(sso.last_audit("sso.link").await.result, "success");

    let fresh = sso.browser();
    assert_signed_in(&sso, &fresh.sign_in(&provider).await).await;
    let (_, tokens) = fresh.refresh().await;
    assert_eq!(tokens["user"]["username"], "carol");
    assert_eq!(tokens["user"]["role"], "member", "a linked local account keeps its own role");

    let (_, identities) = sso.call(Method::GET, "/api/v1/me/identities", Some(&carol), None).await;
    assert_eq!(identities["items"][0]["provider_name"], "oidc");
    assert_eq!(identities["items"][0]["subject"], "carol-1");
    let id = identities["items"][0]["id"].as_str().unwrap();
    let (status, _) = sso.call(Method::DELETE, &format!("/api/v1/me/identities/{id}"), Some(&carol), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sso.last_audit("sso.unlink").await.result, "success");
}

#[tokio::test]
async fn an_identity_linked_to_someone_else_is_not_linked_again() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("dave-1", "dave@acme.test", &[]), None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    let local = json!({"username": "erin", "password": "password-123", "role": "member", "org_id": org.id});
    sso.call(Method::POST, "/api/v1/users", Some(&org.admin), Some(local)).await;
    let erin = sso.login("erin", "password-123").await;
    let browser = sso.browser();
    let (_, started) = browser.post("/api/v1/me/identities", Some(&erin), json!({"provider_id": provider.id})).await;
    let landed = browser.visit(&started["redirect_url"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!(landed.param("link_error").as_deref(), Some("identity_taken"), "{:?}", landed.url);
    assert_eq!(sso.last_audit("sso.link").await.result, "failure");
}

/// Provisions `user` by signing in once, then turns TOTP on for them; answers their secret.
async fn provisioned_with_totp(sso: &Sso, provider: &TestProvider, user: Value) -> String {
    idp().knobs(&provider.client_id, user.clone(), None).await;
    assert_signed_in(sso, &sso.browser().sign_in(provider).await).await;
    let account = sso.user(user["email"].as_str().unwrap()).await;
    let secret = totp::enroll(&account.username).unwrap().secret;
    let patch = UserPatch {
        mfa_secret: Some(Some(sso.app.sealer.seal(secret.as_bytes()))),
        mfa_enabled: Some(true),
        ..UserPatch::default()
    };
    sso.app.store.update_user(Scope::Platform, account.id, patch).await.unwrap();
    secret
}

#[tokio::test]
async fn require_totp_asks_users_with_totp_for_their_code_even_when_the_idp_did_mfa() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    let mut user = person("frank-1", "frank@acme.test", &[]);
    user["amr"] = json!(["pwd", "mfa"]);
    let secret = provisioned_with_totp(&sso, &provider, user).await;

    let browser = sso.browser();
    let landed = browser.sign_in(&provider).await;
    let ticket = landed.param("mfa").unwrap_or_else(|| panic!("no MFA ticket: {:?}", landed.url));
    assert_eq!(landed.param("next").as_deref(), Some("/catalog"), "the UI goes on where the user was going");
    assert_eq!(sso.last_audit("sso.sign_in").await.details["reason"], "mfa_required");
    let wrong = browser.post("/api/v1/auth/sso/mfa", None, json!({"ticket": ticket, "totp_code": "000000"})).await;
    assert_eq!((wrong.0, wrong.1["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_mfa_code")));
    let code = totp::code_at(&secret, sso.app.clock.now().timestamp() as u64).unwrap();
    let (status, tokens) =
        browser.post("/api/v1/auth/sso/mfa", None, json!({"ticket": ticket, "totp_code": code})).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["user"]["username"], "frank@acme.test");
    assert_eq!(sso.last_audit("sso.sign_in").await.details["mfa"], true);
    let (status, _) = browser.refresh().await;
    assert_eq!(status, StatusCode::OK, "the MFA step set the refresh cookie");
    let replay = browser.post("/api/v1/auth/sso/mfa", None, json!({"ticket": ticket, "totp_code": code})).await;
    assert_eq!((replay.0, replay.1["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_ticket")));
}

#[tokio::test]
async fn trust_idp_takes_the_idps_mfa_and_still_asks_when_the_idp_did_none() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    let (status, _) = sso
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{}", org.id),
            Some(&org.admin),
            Some(json!({"sso_mfa": "trust_idp"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut user = person("gina-1", "gina@acme.test", &[]);
    provisioned_with_totp(&sso, &provider, user.clone()).await;

    user["amr"] = json!(["pwd", "mfa"]);
    idp().knobs(&provider.client_id, user.clone(), None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    let event = sso.last_audit("sso.sign_in").await;
    assert_eq!((event.result.as_str(), &event.details["mfa"]), ("success", &json!(true)));

    user["amr"] = json!(["pwd"]);
    idp().knobs(&provider.client_id, user.clone(), None).await;
    let landed = sso.browser().sign_in(&provider).await;
    assert!(landed.param("mfa").is_some(), "no second factor at the IdP: TOTP is asked, {:?}", landed.url);

    // An `acr` the org lists as multi-factor counts too.
    let oidc = json!({"issuer": idp().issuer, "client_id": provider.client_id, "acr_mfa_values": ["phr"]});
    sso.patch_provider(&org, &provider.id, json!({"oidc": oidc})).await;
    user["acr"] = json!("phr");
    idp().knobs(&provider.client_id, user, None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    assert_eq!(sso.last_audit("sso.sign_in").await.details["mfa"], true);
}

#[tokio::test]
async fn user_info_is_read_when_configured() {
    let sso = Sso::start().await;
    let org = sso.org("acme").await;
    let provider = sso.oidc_provider(&org, json!({"oidc": {"use_userinfo": true}})).await;
    idp().knobs(&provider.client_id, person("uma-1", "uma@acme.test", &[]), None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    assert_eq!(sso.user("uma@acme.test").await.role, streamspace_store::Role::Member);
}

#[tokio::test]
async fn the_only_way_into_a_provisioned_account_cannot_be_unlinked() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("vic-1", "vic@acme.test", &[]), None).await;
    let browser = sso.browser();
    assert_signed_in(&sso, &browser.sign_in(&provider).await).await;
    let (_, tokens) = browser.refresh().await;
    let token = tokens["access_token"].as_str().unwrap();
    let (_, identities) = sso.call(Method::GET, "/api/v1/me/identities", Some(token), None).await;
    let id = identities["items"][0]["id"].as_str().unwrap();
    let (status, refused) = sso.call(Method::DELETE, &format!("/api/v1/me/identities/{id}"), Some(token), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("last_sign_in_method")));
}

#[tokio::test]
async fn logout_hands_back_the_providers_end_session_url() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("hal-1", "hal@acme.test", &[]), None).await;
    let browser = sso.browser();
    assert_signed_in(&sso, &browser.sign_in(&provider).await).await;
    let (status, logout) = browser.post("/api/v1/auth/logout", None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{logout}");
    let url: reqwest::Url = logout["end_session_url"].as_str().unwrap().parse().unwrap();
    assert_eq!(url.as_str().split('?').next(), Some(format!("{}/session/end", idp().issuer).as_str()));
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(params.contains_key("id_token_hint"), "{url}");
    assert_eq!(params.get("post_logout_redirect_uri"), Some(&format!("{}/login", sso.base)));
    let at_idp = reqwest::get(url).await.unwrap();
    assert_eq!(at_idp.status(), StatusCode::OK, "the provider accepts the logout request");
    assert_eq!(browser.refresh().await.0, StatusCode::UNAUTHORIZED, "signed out here too");
}

#[tokio::test]
async fn a_disabled_user_is_refused() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("ivy-1", "ivy@acme.test", &[]), None).await;
    assert_signed_in(&sso, &sso.browser().sign_in(&provider).await).await;
    let ivy = sso.user("ivy@acme.test").await;
    let (status, _) = sso
        .call(Method::PATCH, &format!("/api/v1/users/{}", ivy.id), Some(&org.admin), Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_failed(&sso.browser().sign_in(&provider).await, "account_disabled");
    sso.assert_refused(&format!("user {} is disabled", ivy.id)).await;
}

#[tokio::test]
async fn a_disabled_provider_starts_nothing() {
    let sso = Sso::start().await;
    let (org, provider) = acme(&sso).await;
    sso.patch_provider(&org, &provider.id, json!({"enabled": false})).await;
    assert_failed(&sso.browser().sign_in(&provider).await, "provider_disabled");
    sso.assert_refused("the provider is disabled").await;
}

/// Signs in with the ID token tampered with as `tamper` and checks the refusal.
async fn refused_id_token(tamper: &str, reason: &str) {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("mallory-1", "mallory@acme.test", &["admins"]), Some(tamper)).await;
    assert_failed(&sso.browser().sign_in(&provider).await, "sso_failed");
    sso.assert_refused(reason).await;
    assert!(sso.app.store.get_user_by_username("mallory@acme.test").await.unwrap().is_none(), "nobody provisioned");
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    refused_id_token("wrong_aud", "id_token_wrong_audience").await;
}

#[tokio::test]
async fn an_id_token_for_another_authorized_party_is_refused() {
    refused_id_token("wrong_azp", "id_token_wrong_azp").await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    refused_id_token("expired", "id_token_expired").await;
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    refused_id_token("wrong_nonce", "id_token_wrong_nonce").await;
}

#[tokio::test]
async fn an_unsigned_id_token_alg_none_is_refused() {
    refused_id_token("alg_none", "id_token_alg_refused").await;
}

#[tokio::test]
async fn an_id_token_signed_hs256_with_the_client_secret_is_refused() {
    refused_id_token("hs256", "id_token_alg_refused").await;
}

#[tokio::test]
async fn an_id_token_signed_by_an_unknown_key_is_refused() {
    refused_id_token("unknown_key", "id_token_unknown_key").await;
}

#[tokio::test]
async fn a_key_rotated_mid_way_is_fetched_and_the_sign_in_works() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("judy-1", "judy@acme.test", &[]), None).await;
    let browser = sso.browser();
    // The key set is cached at the start; the provider rotates before the code is exchanged.
    let callback = browser.until_callback(&provider).await;
    idp().rotate_keys().await;
    assert_signed_in(&sso, &browser.visit(&callback.url).await).await;
    assert_eq!(sso.last_audit("sso.sign_in").await.result, "success");
}

#[tokio::test]
async fn a_callback_with_a_state_never_issued_is_refused() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("kim-1", "kim@acme.test", &[]), None).await;
    let browser = sso.browser();
    let mut callback = browser.until_callback(&provider).await.url;
    let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    callback.query_pairs_mut().clear().append_pair("code", &code).append_pair("state", "forged-state");
    assert_failed(&browser.visit(&callback).await, "sso_failed");
    sso.assert_refused("state_invalid").await;
}

#[tokio::test]
async fn a_replayed_callback_code_and_state_is_refused() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("leo-1", "leo@acme.test", &[]), None).await;
    let browser = sso.browser();
    let callback = browser.until_callback(&provider).await;
    assert_signed_in(&sso, &browser.visit(&callback.url).await).await;
    assert_failed(&browser.visit(&callback.url).await, "sso_failed");
    sso.assert_refused("state_invalid").await;
}

#[tokio::test]
async fn a_callback_in_another_browser_is_refused_login_csrf() {
    let sso = Sso::start().await;
    let (_, provider) = acme(&sso).await;
    idp().knobs(&provider.client_id, person("attacker-1", "attacker@acme.test", &[]), None).await;
    // The attacker's own flow, stopped at the callback, sent to a victim's browser.
    let callback = sso.browser().until_callback(&provider).await;
    let victim = sso.browser();
    assert_failed(&victim.visit(&callback.url).await, "sso_failed");
    sso.assert_refused("browser_mismatch").await;
    assert_eq!(victim.refresh().await.0, StatusCode::UNAUTHORIZED, "the victim is not signed in as the attacker");
}

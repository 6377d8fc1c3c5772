//! Plain OAuth2 against the GitHub-style provider: user info by claim paths, numeric ids.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::Sso;
use crate::idp::idp;

#[tokio::test]
async fn github_style_sign_in_reads_the_user_by_claim_paths() {
    let sso = Sso::start().await;
    let org = sso.org("octo").await;
    let provider = sso.github_provider(&org, json!({})).await;
    idp()
        .knobs(&provider.client_id, json!({"id": 583231, "login": "octocat", "email": "Octo@Example.test"}), None)
        .await;
    let browser = sso.browser();
    let landed = browser.sign_in(&provider).await;
    assert_eq!((landed.path(), landed.param("next").as_deref()), ("/login/sso", Some("/catalog")), "{:?}", landed.url);
    let (status, tokens) = browser.refresh().await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        (tokens["user"]["username"].as_str(), tokens["user"]["role"].as_str()),
        (Some("octo@example.test"), Some("member"))
    );
    let identity = sso.app.store.find_external_identity(provider.id.parse().unwrap(), "583231").await.unwrap();
    assert!(identity.is_some(), "the numeric id is the subject");
    let event = sso.last_audit("sso.sign_in").await;
    assert_eq!((event.result.as_str(), &event.details["mfa"]), ("success", &json!(false)));
}

#[tokio::test]
async fn github_style_users_without_a_public_email_get_a_provider_scoped_name() {
    let sso = Sso::start().await;
    let org = sso.org("octo").await;
    let provider = sso.github_provider(&org, json!({})).await;
    idp().knobs(&provider.client_id, json!({"id": 42, "login": "hidden", "email": null}), None).await;
    let browser = sso.browser();
    browser.sign_in(&provider).await;
    let (_, tokens) = browser.refresh().await;
    assert_eq!(tokens["user"]["username"], "github-42");
}

#[tokio::test]
async fn a_replayed_oauth2_callback_is_refused() {
    let sso = Sso::start().await;
    let org = sso.org("octo").await;
    let provider = sso.github_provider(&org, json!({})).await;
    idp().knobs(&provider.client_id, json!({"id": 7, "login": "seven", "email": "seven@example.test"}), None).await;
    let browser = sso.browser();
    let callback = browser.until_callback(&provider).await;
    assert_eq!(browser.visit(&callback.url).await.param("next").as_deref(), Some("/catalog"));
    let replayed = browser.visit(&callback.url).await;
    assert_eq!(replayed.param("error").as_deref(), Some("sso_failed"));
    sso.assert_refused("state_invalid").await;
}

//! Identity providers as objects of an org: who may manage them, secrets write-only, the URLs
//! an admin copies into the IdP, and the org's SSO MFA policy.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

fn oidc_provider(name: &str) -> Value {
    json!({
        "name": name,
        "display_name": "Acme Okta",
        "kind": "oidc",
        "domains": ["Acme.COM"],
        "oidc": {"issuer": "https://idp.acme.com", "client_id": "streamspace", "client_secret": "s3cret-value"},
        "role_mapping": {"groups_claim": "groups", "org_admin_groups": ["admins"]},
    })
}

#[tokio::test]
async fn org_admins_manage_their_providers_and_never_see_secrets() {
    let t = TestApp::new().await;
    let root = t.admin().await;
    let (org, admin, member) = t.org_with_users(&root, "acme").await;
    let base = format!("/api/v1/orgs/{org}/identity-providers");

    let created = t.post(&base, &admin, oidc_provider("okta")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["has_client_secret"], true);
    assert_eq!(created.body["domains"], json!(["acme.com"]));
    assert_eq!(created.body["role_mapping"]["default_role"], "member");
    let callback = format!("http://localhost:8000/api/v1/auth/sso/{id}/callback");
    assert_eq!(created.body["redirect_uri"], callback.as_str());
    assert_eq!(created.body["acs_url"], Value::Null);
    assert!(!created.body.to_string().contains("s3cret-value"), "{}", created.body);

    let listed = t.get(&base, &admin).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains("s3cret-value"));
    // The secret is sealed at rest, not stored as sent.
    let stored = t.app.store.get_identity_provider(streamspace_store::Scope::Platform, id.parse().unwrap()).await;
    let sealed = stored.unwrap().unwrap().client_secret.unwrap();
    assert!(!sealed.contains("s3cret-value"));
    assert_eq!(t.app.sealer.open(&sealed).as_deref(), Some(&b"s3cret-value"[..]));

    assert_eq!(t.get(&base, &member).await.status, StatusCode::FORBIDDEN, "members do not manage providers");
    assert_eq!(t.post(&base, &admin, oidc_provider("okta")).await.status, StatusCode::CONFLICT);

    // A patch without a secret keeps it; the kind's settings are replaced whole.
    let settings = json!({"oidc": {"issuer": "https://login.acme.com", "client_id": "ss2"}, "enabled": false});
    let patched = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&admin), Some(settings)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        (patched.body["oidc"]["client_id"].as_str(), patched.body["enabled"].as_bool()),
        (Some("ss2"), Some(false))
    );
    assert_eq!(patched.body["has_client_secret"], true);
    let wrong_kind = json!({"saml": {"metadata_xml": "<x/>"}});
    let refused = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&admin), Some(wrong_kind)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);

    let deleted = t.send(Method::DELETE, &format!("{base}/{id}"), Some(&admin), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&format!("{base}/{id}"), &admin).await.status, StatusCode::NOT_FOUND);
    let actions: Vec<String> = t.audit_actions().await.into_iter().map(|(a, _)| a).collect();
    for action in ["identity_provider.create", "identity_provider.update", "identity_provider.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn another_orgs_providers_are_not_found() {
    let t = TestApp::new().await;
    let root = t.admin().await;
    let (acme, acme_admin, _) = t.org_with_users(&root, "acme").await;
    let (_, other_admin, _) = t.org_with_users(&root, "other").await;
    let base = format!("/api/v1/orgs/{acme}/identity-providers");
    let created = t.post(&base, &acme_admin, oidc_provider("okta")).await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(t.get(&base, &other_admin).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&format!("{base}/{id}"), &other_admin).await.status, StatusCode::NOT_FOUND);
    let patch =
        t.send(Method::PATCH, &format!("{base}/{id}"), Some(&other_admin), Some(json!({"enabled": false}))).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(
        t.send(Method::DELETE, &format!("{base}/{id}"), Some(&other_admin), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(t.post(&base, &other_admin, oidc_provider("mine")).await.status, StatusCode::NOT_FOUND);
    // Platform admins manage any org's.
    assert_eq!(t.get(&format!("{base}/{id}"), &root).await.status, StatusCode::OK);
}

#[tokio::test]
async fn only_platform_admins_map_groups_to_platform_admin() {
    let t = TestApp::new().await;
    let root = t.admin().await;
    let (org, admin, _) = t.org_with_users(&root, "acme").await;
    let base = format!("/api/v1/orgs/{org}/identity-providers");
    let mut escalating = oidc_provider("okta");
    escalating["role_mapping"]["platform_admin_groups"] = json!(["admins"]);
    let refused = t.post(&base, &admin, escalating.clone()).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "forbidden"), "{}", refused.body);

    let created = t.post(&base, &admin, oidc_provider("okta")).await;
    let id = created.body["id"].as_str().unwrap();
    let mapping = json!({"role_mapping": {"platform_admin_groups": ["admins"]}});
    let patch = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&admin), Some(mapping.clone())).await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN, "{}", patch.body);
    let by_root = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&root), Some(mapping)).await;
    assert_eq!(by_root.status, StatusCode::OK, "{}", by_root.body);
    // The org admin may still change the rest of the mapping while keeping the platform's part.
    let keep = json!({"role_mapping": {"platform_admin_groups": ["admins"], "org_admin_groups": ["leads"]}});
    let kept = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&admin), Some(keep)).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let default_platform = json!({"role_mapping": {"default_role": "platform_admin"}});
    let refused = t.send(Method::PATCH, &format!("{base}/{id}"), Some(&root), Some(default_platform)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn provider_settings_are_validated_and_saml_shows_its_sp_urls() {
    let t = TestApp::new().await;
    let root = t.admin().await;
    let (org, admin, _) = t.org_with_users(&root, "acme").await;
    let base = format!("/api/v1/orgs/{org}/identity-providers");
    let mut plain_http = oidc_provider("okta");
    plain_http["oidc"]["issuer"] = json!("http://idp.acme.com");
    assert_eq!(t.post(&base, &admin, plain_http).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut bad_name = oidc_provider("Okta SSO");
    bad_name["name"] = json!("Okta SSO");
    assert_eq!(t.post(&base, &admin, bad_name).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let saml = json!({"name": "adfs", "display_name": "ADFS", "kind": "saml",
        "saml": {"metadata_url": "https://adfs.acme.com/metadata.xml"}});
    let created = t.post(&base, &admin, saml).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let sso = format!("http://localhost:8000/api/v1/auth/sso/{id}");
    assert_eq!(created.body["acs_url"], format!("{sso}/acs"));
    assert_eq!(created.body["sp_metadata_url"], format!("{sso}/metadata"));
    assert_eq!(created.body["redirect_uri"], Value::Null);
    assert_eq!(created.body["has_client_secret"], false);
}

#[tokio::test]
async fn the_org_sets_its_sso_mfa_policy() {
    let t = TestApp::new().await;
    let root = t.admin().await;
    let (org, admin, member) = t.org_with_users(&root, "acme").await;
    let path = format!("/api/v1/orgs/{org}");
    assert_eq!(t.get(&path, &admin).await.body["sso_mfa"], "require_totp");
    let trust = json!({"sso_mfa": "trust_idp"});
    assert_eq!(t.send(Method::PATCH, &path, Some(&member), Some(trust.clone())).await.status, StatusCode::FORBIDDEN);
    let patched = t.send(Method::PATCH, &path, Some(&admin), Some(trust)).await;
    assert_eq!((patched.status, patched.body["sso_mfa"].as_str()), (StatusCode::OK, Some("trust_idp")));
    let bad = t.send(Method::PATCH, &path, Some(&admin), Some(json!({"sso_mfa": "whatever"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

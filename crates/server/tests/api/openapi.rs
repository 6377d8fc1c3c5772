//! The OpenAPI document and the router describe the same routes.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::TestApp;

fn spec() -> Value {
    serde_json::from_str(streamspace_server::openapi_json()).unwrap()
}

#[test]
fn the_document_is_openapi_3_with_described_operations() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let t = TestApp::new().await;
    let spec = spec();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let reply = t.send(method.clone(), &uri, None, None).await;
            assert_ne!(reply.code(), "route_not_found", "{method} {path} is documented but not routed");
            assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
}

/// The router and the document come from the same `routes!` lists; a route added any other way
/// (`.route(...)`, `.route_service(...)`, `.nest(...)`) would be served without documentation.
#[test]
fn every_route_is_registered_through_the_documented_router() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                    if text.contains(call) {
                        offenders.push(format!("{} uses {call}", path.display()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "routes outside utoipa_axum::routes!: {offenders:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let t = TestApp::new().await;
    let missing = t.send(Method::GET, "/api/v1/nothing-here", None, None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "route_not_found"));
    let wrong_method = t.send(Method::PUT, "/api/v1/auth/login", None, None).await;
    assert_eq!((wrong_method.status, wrong_method.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}

#[tokio::test]
async fn the_document_is_served() {
    let t = TestApp::new().await;
    let reply = t.send(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, spec());
}

/// The binary serves the UI it was built with. Without `ui/dist` this fails rather than pass
/// on the API alone: `make test` builds the UI before the Rust tests.
#[tokio::test]
async fn the_embedded_ui_is_served_with_its_policy() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist/index.html");
    assert!(dist.exists(), "{} is missing: build the web UI with `make ui` first", dist.display());
    let t = TestApp::new().await;
    let reply = t.send(Method::GET, "/sessions/some-deep-link", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "SPA fallback to index.html");
    assert!(reply.body.as_str().unwrap().contains("<div id=\"root\">"));
    let csp = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-src http://*.localhost:8001;"), "every session origin, nothing else: {csp}");
    assert_eq!(reply.headers["cache-control"], "no-cache");
    let asset = std::fs::read_dir(dist.parent().unwrap().join("assets")).unwrap().next().unwrap().unwrap().file_name();
    let asset = t.send(Method::GET, &format!("/assets/{}", asset.to_string_lossy()), None, None).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.headers["cache-control"], "public, max-age=31536000, immutable");
}

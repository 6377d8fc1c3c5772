//! The web UI, embedded in the binary: hashed assets cached for a year, everything else falls
//! back to `index.html` (the UI routes in the browser), all under a strict Content-Security-Policy.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::app::AppState;
use crate::error::ApiError;

/// `ui/dist`, built by `npm run build` (the Makefile does it), relative to this crate. A binary
/// built without it serves the API alone and says so at `/`.
#[derive(RustEmbed)]
#[folder = "../../ui/dist"]
#[allow_missing = true]
struct Assets;

/// Paths that belong to the API: unknown ones answer in the API's error shape, never with the UI.
fn is_api_path(path: &str) -> bool {
    ["/api/", "/healthz", "/readyz", "/metrics"]
        .iter()
        .any(|prefix| path == prefix.trim_end_matches('/') || path.starts_with(prefix))
}

pub fn content_security_policy(session_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; \
         font-src 'self' data:; connect-src 'self'; frame-src {session_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The router's fallback: the UI for browser routes, a JSON 404 for unknown API routes.
pub async fn serve(State(app): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if is_api_path(path) {
        return ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "the UI is read-only")
            .into_response();
    }
    let asset = path.trim_start_matches('/');
    let (file, cache) = match Assets::get(asset).filter(|_| !asset.is_empty()) {
        // Vite names everything under assets/ by content hash: it can be cached forever.
        Some(file) if asset.starts_with("assets/") => (file, "public, max-age=31536000, immutable"),
        Some(file) => (file, "no-cache"),
        None if asset.starts_with("assets/") => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such asset").into_response();
        }
        None => match Assets::get("index.html") {
            Some(index) => (index, "no-cache"),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "The web UI is not built into this binary: run `make ui`, then rebuild.",
                )
                    .into_response();
            }
        },
    };
    let mut response = Response::new(Body::from(file.data.into_owned()));
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&app.urls.session_origins_source())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_never_fall_back_to_the_ui() {
        for path in ["/api/v1/nothing", "/api/", "/healthz", "/metrics"] {
            assert!(is_api_path(path), "{path}");
        }
        for path in ["/", "/sessions/123", "/admin/audit", "/apix"] {
            assert!(!is_api_path(path), "{path}");
        }
    }

    #[test]
    fn the_policy_frames_only_the_session_origin_and_runs_only_own_scripts() {
        let csp = content_security_policy("http://*.localhost:8001");
        assert!(csp.contains("frame-src http://*.localhost:8001;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}

//! The catalog's template icons, built into the binary: `<img>` fetches them without credentials.

use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Path;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// The icons under `crates/server/icons/`, by file name.
const ICONS: &[(&str, &str)] = &[
    ("chromium.svg", include_str!("../../icons/chromium.svg")),
    ("firefox.svg", include_str!("../../icons/firefox.svg")),
    ("desktop.svg", include_str!("../../icons/desktop.svg")),
    ("vscode.svg", include_str!("../../icons/vscode.svg")),
];

/// Where the icon of that file name is served, as a template's `icon`.
pub fn icon_url(file: &str) -> String {
    format!("/api/v1/icons/{file}")
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_icon))
}

#[utoipa::path(get, path = "/api/v1/icons/{file}", tag = "templates", security(()), params(("file" = String, Path)),
    responses((status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String), (status = 404, body = ErrorBody)))]
async fn get_icon(Path(file): Path<String>) -> Response {
    let Some((_, svg)) = ICONS.iter().find(|(name, _)| *name == file) else {
        return ApiError::not_found("icon").into_response();
    };
    let mut response = svg.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    // Opened on its own, an SVG is a document: it may run nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icon_is_an_svg_that_runs_and_loads_nothing() {
        for (name, svg) in ICONS {
            assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}");
            for banned in ["<script", "href", "<foreignObject", "<image", "url(http"] {
                assert!(!svg.contains(banned), "{name} contains {banned}");
            }
            let handlers = svg.split_whitespace().filter(|word| word.starts_with("on") && word.contains('='));
            assert_eq!(handlers.count(), 0, "{name} has an event handler");
        }
    }
}

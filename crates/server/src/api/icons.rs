//! Serves the catalog's template icons (`crate::icons`): `<img>` fetches them without credentials.

use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::Path;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_icon))
}

#[utoipa::path(get, path = "/api/v1/icons/{file}", tag = "templates", security(()), params(("file" = String, Path)),
    responses((status = 200, description = "An SVG image", content_type = "image/svg+xml", body = String), (status = 404, body = ErrorBody)))]
async fn get_icon(Path(file): Path<String>) -> Response {
    let Some(svg) = crate::icons::svg(&file) else {
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

//! Speaking for the people the proxy lets in, to the Selkies streamer in secure mode: the
//! control plane registers one controller token per session with the streamer, and the proxy
//! presents it upstream. Browsers never hold a streamer credential.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::header::HeaderValue;
use axum::http::{HeaderMap, Method, Request};
use serde_json::json;

use super::forward::{HttpClient, is_upgrade};

/// The streamer checks tokens on its `/api/` routes only.
pub fn is_streamer_api(tail: &str) -> bool {
    tail.starts_with("/api/")
}

/// What the proxy presents to a session's streamer for the people it lets in: the viewer token,
/// and the `Authorization` carrying it, worked out once per session rather than per request.
pub struct Viewer {
    pub token: String,
    authorization: Option<HeaderValue>,
}

impl Viewer {
    pub fn new(token: String) -> Viewer {
        let authorization = HeaderValue::from_str(&format!("Bearer {token}")).ok();
        Viewer { token, authorization }
    }

    /// `Authorization` for the streamer's HTTP API routes.
    pub fn credential(&self, tail: &str) -> Option<HeaderValue> {
        is_streamer_api(tail).then(|| self.authorization.clone()).flatten()
    }
}

/// The streamer takes a WebSocket's token from the query: add it to upgrades of its API routes.
pub fn query_with_token<'a>(headers: &HeaderMap, tail: &str, query: Cow<'a, str>, token: &str) -> Cow<'a, str> {
    if !(is_upgrade(headers) && is_streamer_api(tail)) {
        return query;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty() && !pair.starts_with("token=")).collect();
    let mut pairs = kept.join("&");
    if !pairs.is_empty() {
        pairs.push('&');
    }
    pairs.push_str("token=");
    pairs.push_str(token);
    Cow::Owned(pairs)
}

/// Registers the session's controller token with a (re)started streamer. `POST /api/tokens`
/// replaces the streamer's whole table, so it always carries every token the session uses.
/// Images without a Selkies streamer (test fixtures) answer 404, which is fine.
pub async fn provision(client: HttpClient, endpoint: String, master_token: String, viewer_token: String) {
    let body = json!({ viewer_token: {"role": "controller", "slot": 1} }).to_string();
    // The streamer answered its health check moments ago; a transport error is worth a few retries.
    for attempt in 0..5u32 {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{endpoint}/api/tokens"))
            .header("authorization", format!("Bearer {master_token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.clone()));
        let Ok(request) = request else { return };
        match client.request(request).await {
            Ok(response) if response.status().is_success() => {
                return tracing::debug!(%endpoint, "streamer token registered");
            }
            Ok(response) => {
                return tracing::debug!(%endpoint, status = %response.status(), "streamer took no token (not a Selkies streamer?)");
            }
            Err(err) => {
                tracing::warn!(%endpoint, error = %err, attempt, "cannot register the streamer token yet");
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("upgrade"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers
    }

    #[test]
    fn only_streamer_api_upgrades_carry_the_token_and_a_client_cannot_choose_it() {
        assert_eq!(query_with_token(&upgrade(), "/api/websockets", "".into(), "t"), "token=t");
        assert_eq!(query_with_token(&upgrade(), "/api/websockets", "a=1&token=mine".into(), "t"), "a=1&token=t");
        assert_eq!(query_with_token(&upgrade(), "/ws", "a=1".into(), "t"), "a=1");
        assert_eq!(query_with_token(&HeaderMap::new(), "/api/websockets", "a=1".into(), "t"), "a=1");
    }

    #[test]
    fn only_streamer_api_requests_get_the_credential() {
        let viewer = Viewer::new("t".into());
        assert_eq!(viewer.credential("/api/status").unwrap(), "Bearer t");
        assert!(viewer.credential("/").is_none());
        assert!(viewer.credential("/echo").is_none());
    }
}

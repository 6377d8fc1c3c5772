//! Speaking for the people the proxy lets in, to the Selkies streamer in secure mode: the
//! control plane registers one token per session and part (owner, collaborator, viewer) with the
//! streamer, and the proxy presents the one of the person it lets in. Browsers never hold a
//! streamer credential.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::header::HeaderValue;
use axum::http::{Method, Request};
use serde_json::json;

use super::forward::HttpClient;
use crate::auth::policy::SessionRole;

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

/// A session's streamer credentials, one per part people take in it.
pub struct Credentials {
    owner: Viewer,
    collaborator: Viewer,
    viewer: Viewer,
}

impl Credentials {
    pub fn new(token: impl Fn(SessionRole) -> String) -> Credentials {
        Credentials {
            owner: Viewer::new(token(SessionRole::Owner)),
            collaborator: Viewer::new(token(SessionRole::Collaborator)),
            viewer: Viewer::new(token(SessionRole::Viewer)),
        }
    }

    pub fn of(&self, role: SessionRole) -> &Viewer {
        match role {
            SessionRole::Owner => &self.owner,
            SessionRole::Collaborator => &self.collaborator,
            SessionRole::Viewer => &self.viewer,
        }
    }
}

/// The streamer's token table: the owner drives gamepad slot 1, collaborators drive keyboard and
/// mouse beside them, viewers only watch (the streamer drops their input itself).
pub fn token_table(token: impl Fn(SessionRole) -> String) -> serde_json::Value {
    json!({
        token(SessionRole::Owner): {"role": "controller", "slot": 1},
        token(SessionRole::Collaborator): {"role": "controller"},
        token(SessionRole::Viewer): {"role": "viewer"},
    })
}

/// The streamer takes a WebSocket's token from the query: add it to upgrades of its API routes.
pub fn query_with_token<'a>(upgrade: bool, tail: &str, query: Cow<'a, str>, token: &str) -> Cow<'a, str> {
    if !(upgrade && is_streamer_api(tail)) {
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

/// Registers the session's tokens ([`token_table`]) with a (re)started streamer. `POST
/// /api/tokens` replaces the streamer's whole table, so it always carries every token the session
/// uses. Images without a Selkies streamer (test fixtures) answer 404, which is fine.
pub async fn provision(client: HttpClient, endpoint: String, master_token: String, tokens: serde_json::Value) {
    let body = tokens.to_string();
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

    #[test]
    fn only_streamer_api_upgrades_carry_the_token_and_a_client_cannot_choose_it() {
        assert_eq!(query_with_token(true, "/api/websockets", "".into(), "t"), "token=t");
        assert_eq!(query_with_token(true, "/api/websockets", "a=1&token=mine".into(), "t"), "a=1&token=t");
        assert_eq!(query_with_token(true, "/ws", "a=1".into(), "t"), "a=1");
        assert_eq!(query_with_token(false, "/api/websockets", "a=1".into(), "t"), "a=1");
    }

    #[test]
    fn each_part_has_its_own_token_and_only_viewers_are_streamer_viewers() {
        let token = |role: SessionRole| format!("t-{}", role.as_str());
        let table = token_table(token);
        assert_eq!(table["t-owner"]["role"], "controller");
        assert_eq!(table["t-collaborator"]["role"], "controller");
        assert_eq!(table["t-viewer"]["role"], "viewer");
        let credentials = Credentials::new(token);
        assert_eq!(credentials.of(SessionRole::Viewer).token, "t-viewer");
        assert_eq!(credentials.of(SessionRole::Collaborator).token, "t-collaborator");
    }

    #[test]
    fn only_streamer_api_requests_get_the_credential() {
        let viewer = Viewer::new("t".into());
        assert_eq!(viewer.credential("/api/status").unwrap(), "Bearer t");
        assert!(viewer.credential("/").is_none());
        assert!(viewer.credential("/echo").is_none());
    }
}

//! Live updates over Server-Sent Events: every session and agent change the caller may see.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::principal::Credential;
use crate::bus::Change;
use crate::connections::{CapReached, Kind};
use crate::error::{ApiError, ApiResult, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

fn to_event(change: &Change) -> Event {
    let data = match change {
        Change::Session(session) => serde_json::to_string(session),
        Change::Agent(agent) => serde_json::to_string(agent),
    };
    Event::default().event(change.name()).data(data.unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses(
        (status = 200, description = "An event stream: `session` events carry a session, `agent` events an agent (platform administrators), `resync` asks the client to reload (it fell behind). The stream ends when the credential that opened it expires or is revoked, or when the caller is disabled, deleted or given another role: reconnect to continue", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody),
        (status = 429, description = "`too_many_event_streams`: the caller already holds as many streams as allowed", body = ErrorBody),
    ))]
async fn events(
    State(app): State<AppState>,
    principal: Principal,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let api_key = match principal.credential {
        Credential::ApiKey(id) => Some(id),
        Credential::AccessToken => None,
    };
    let cap = app.config.max_event_streams_per_user;
    let registration = app
        .connections
        .open(principal.user_id, Kind::Events { role: principal.role, api_key }, cap)
        .map_err(|CapReached| {
            let message = format!("at most {cap} live-update streams per user; close one first");
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_event_streams", message)
        })?;
    // The stream lives no longer than the credential that opened it.
    let lifetime = principal.expires_at.map(|at| (at - app.clock.now()).to_std().unwrap_or_default());
    let expired = async move {
        match lifetime {
            Some(lifetime) => tokio::time::sleep(lifetime).await,
            None => std::future::pending().await,
        }
    };
    let ended = futures::future::select(registration, Box::pin(expired));
    let stream = BroadcastStream::new(app.bus.subscribe()).filter_map(move |item| match item {
        Ok(change) => change.visible_to(&principal).then(|| Ok(to_event(&change))),
        Err(BroadcastStreamRecvError::Lagged(_)) => Some(Ok(Event::default().event("resync").data("{}"))),
    });
    let stream = futures::StreamExt::take_until(stream, ended);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

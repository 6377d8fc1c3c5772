//! Live updates over Server-Sent Events: every session and agent change the caller may see.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ErrorBody;
use crate::events::Change;

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
        (status = 200, description = "An event stream: `session` events carry a session, `agent` events an agent (platform administrators), `resync` asks the client to reload (it fell behind)", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody),
    ))]
async fn events(
    State(app): State<AppState>,
    principal: Principal,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(app.bus.subscribe()).filter_map(move |item| match item {
        Ok(change) => change.visible_to(&principal).then(|| Ok(to_event(&change))),
        Err(BroadcastStreamRecvError::Lagged(_)) => Some(Ok(Event::default().event("resync").data("{}"))),
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

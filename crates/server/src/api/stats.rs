//! Numbers for the admin dashboard: sessions by state, agents online, and how long sessions took
//! to start over the last day.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use streamspace_store::{Page, Session, SessionFilter};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::orchestrator::count_by_state;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

/// Start latency of the sessions created within one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LatencyBucket {
    /// The start of the hour.
    pub time: DateTime<Utc>,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Stats {
    /// Active sessions by state, and those that ended within the last day.
    pub sessions_by_state: BTreeMap<String, i64>,
    pub agents_online: i64,
    /// From `POST /sessions` to the streamer answering, per hour of the last day.
    pub session_start_latency: Vec<LatencyBucket>,
}

/// How far back the dashboard looks, and how many sessions it reads at most.
const WINDOW_HOURS: i64 = 24;
const MAX_SESSIONS: usize = 5_000;

/// The value below which `share` of the sorted `values` fall (nearest rank).
fn percentile(sorted: &[i64], share: f64) -> i64 {
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Start latencies of first starts, grouped by the hour the session was created in.
pub fn latency_by_hour(sessions: &[Session]) -> Vec<LatencyBucket> {
    let mut hours: BTreeMap<DateTime<Utc>, Vec<i64>> = BTreeMap::new();
    for session in sessions {
        let (Some(started), Ok(hour)) = (session.started_at, session.created_at.duration_trunc(TimeDelta::hours(1)))
        else {
            continue;
        };
        hours.entry(hour).or_default().push((started - session.created_at).num_milliseconds());
    }
    hours
        .into_iter()
        .map(|(time, mut values)| {
            values.sort_unstable();
            LatencyBucket {
                time,
                p50_ms: percentile(&values, 0.5),
                p95_ms: percentile(&values, 0.95),
                count: values.len() as i64,
            }
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    responses((status = 200, body = Stats), (status = 403, body = ErrorBody)))]
async fn stats(State(app): State<AppState>, principal: Principal) -> ApiResult<axum::Json<Stats>> {
    principal.require_admin()?;
    let scope = principal.scope();
    let since = app.clock.now() - TimeDelta::hours(WINDOW_HOURS);
    // Ids are UUIDv7, ordered by creation time: the first id of the window is a cursor.
    let seconds = u64::try_from(since.timestamp()).unwrap_or(0);
    let mut after = Some(Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, 0)));
    let mut recent = Vec::new();
    while let Some(cursor) = after.filter(|_| recent.len() < MAX_SESSIONS) {
        let page = app
            .store
            .list_sessions(scope, SessionFilter::default(), Page { after: Some(cursor), ..Page::first(500) })
            .await?;
        after = page.next;
        recent.extend(page.items);
    }
    let active: Vec<Session> =
        app.store.list_active_sessions().await?.into_iter().filter(|s| scope.allows(s.org_id)).collect();
    let mut by_state: BTreeMap<String, i64> = count_by_state(&active)
        .into_iter()
        .filter(|(state, _)| !state.is_terminal())
        .map(|(state, count)| (state.as_str().to_owned(), count as i64))
        .collect();
    for ended in recent.iter().filter(|s| s.state.is_terminal()) {
        *by_state.entry(ended.state.as_str().to_owned()).or_default() += 1;
    }
    let agents_online = app.store.list_agents().await?.iter().filter(|a| app.agent_online(a)).count() as i64;
    Ok(axum::Json(Stats {
        sessions_by_state: by_state,
        agents_online,
        session_start_latency: latency_by_hour(&recent),
    }))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use streamspace_proto::SessionState;

    use super::*;

    fn session(created: DateTime<Utc>, start_ms: Option<i64>) -> Session {
        Session {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            owner_id: Uuid::nil(),
            template_id: Uuid::nil(),
            state: SessionState::Running,
            agent_id: None,
            endpoint: None,
            phase: None,
            progress: None,
            failure_reason: None,
            cpu_millis: 0,
            memory_mb: 0,
            created_at: created,
            updated_at: created,
            started_at: start_ms.map(|ms| created + TimeDelta::milliseconds(ms)),
            stopped_at: None,
            last_activity_at: None,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!((percentile(&values, 0.5), percentile(&values, 0.95)), (50, 95));
        assert_eq!(percentile(&[7], 0.95), 7);
    }

    #[test]
    fn latencies_group_by_creation_hour_and_skip_sessions_that_never_started() {
        let ten = Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap();
        let eleven = Utc.with_ymd_and_hms(2026, 12, 1, 11, 59, 0).unwrap();
        let sessions =
            [session(ten, Some(2000)), session(ten, Some(4000)), session(ten, None), session(eleven, Some(900))];
        let buckets = latency_by_hour(&sessions);
        assert_eq!(buckets.len(), 2);
        assert_eq!((buckets[0].time.format("%H:%M").to_string(), buckets[0].count), ("10:00".to_owned(), 2));
        assert_eq!((buckets[0].p50_ms, buckets[0].p95_ms), (2000, 4000));
        assert_eq!((buckets[1].p50_ms, buckets[1].count), (900, 1));
    }
}

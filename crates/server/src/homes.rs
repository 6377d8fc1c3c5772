//! Persistent homes (ADR 0032): which home a session mounts, where it must run to find it, and
//! deleting homes (a user's reset, an administrator's delete, a deleted user's after the grace).

use streamspace_proto::hub::{Command, CommandKind, HomeUsage, HomeVolume};
use streamspace_store::{Home, HomeScope, NewHome, Session, Template};
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiResult;
use crate::scheduler::Candidate;

/// The home `session` mounts as its template asks, created on first use; `None`: a home that lives
/// and dies with the session.
pub async fn home_of(app: &App, session: &Session, template: &Template) -> ApiResult<Option<Home>> {
    let template_id = match template.home.scope {
        HomeScope::None => return Ok(None),
        HomeScope::User => None,
        HomeScope::Template => Some(template.id),
    };
    let new =
        NewHome { org_id: session.org_id, user_id: session.owner_id, template_id, size_mb: template.home.size_mb };
    Ok(Some(app.store.home_for(new, app.clock.now()).await?))
}

/// What the agent mounts for `home`, recorded as used by `agent_id` (its volume lives there).
pub async fn volume_for(app: &App, home: &Home, agent_id: Option<Uuid>) -> ApiResult<HomeVolume> {
    if let Some(agent_id) = agent_id {
        app.store.record_home_use(home.id, agent_id, app.clock.now()).await?;
    }
    Ok(HomeVolume { id: home.id, size_mb: home.size_mb })
}

/// The most home measurements one heartbeat may store: more than any one host holds, and a bound on
/// the writes a hostile agent's heartbeat can cause.
const MAX_USAGE_REPORTS: usize = 1_000;

/// Stores the used space `agent_id` measured for the homes it holds. A report about a home another
/// agent holds (or one that is gone) changes nothing: an agent speaks only for its own volumes.
pub async fn record_usage(app: &App, agent_id: Uuid, usage: &[HomeUsage]) -> ApiResult<()> {
    let now = app.clock.now();
    for report in usage.iter().take(MAX_USAGE_REPORTS).filter(|report| report.used_bytes >= 0) {
        if !app.store.record_home_usage(report.home_id, agent_id, report.used_bytes, now).await? {
            tracing::debug!(agent = %agent_id, home = %report.home_id, "ignoring usage of a home the agent does not hold");
        }
    }
    Ok(())
}

/// A home's volume is on one agent's host: a session that mounts it runs there or not at all
/// (anywhere else it would find an empty home and split the user's files in two).
pub fn near_home(home: Option<&Home>, candidates: Vec<Candidate>) -> Vec<Candidate> {
    match home.and_then(|home| home.agent_id) {
        Some(agent_id) => candidates.into_iter().filter(|candidate| candidate.id == agent_id).collect(),
        None => candidates,
    }
}

/// Deletes a home: its record at once (the next session gets a new, empty one) and its volume by a
/// durable command to the agent that holds it.
pub async fn remove(app: &App, home: &Home) -> ApiResult<()> {
    if let Some(agent_id) = home.agent_id {
        let command = Command {
            id: Uuid::now_v7(),
            kind: CommandKind::RemoveHome,
            session_id: home.id,
            spec: None,
            traceparent: None,
        };
        app.dispatch(agent_id, command).await?;
    }
    app.store.delete_home(home.id).await?;
    Ok(())
}

/// Whether a session that has not ended may mount `home` (its container, kept while it
/// hibernates, holds the volume).
pub async fn in_use(app: &App, home: &Home) -> ApiResult<bool> {
    let active = app.store.list_active_sessions().await?;
    for session in active.iter().filter(|session| session.owner_id == home.user_id) {
        let Some(template) = app.store.get_template(streamspace_store::Scope::Platform, session.template_id).await?
        else {
            continue;
        };
        let mounts = match template.home.scope {
            HomeScope::None => false,
            HomeScope::User => home.template_id.is_none(),
            HomeScope::Template => home.template_id == Some(template.id),
        };
        if mounts {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes the homes whose grace period is over: those of deleted users.
pub async fn remove_due(app: &App) {
    let due = match app.store.due_homes(app.clock.now()).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the homes due for deletion");
            return;
        }
    };
    for home in due {
        if let Err(err) = remove(app, &home).await {
            tracing::warn!(home = %home.id, error = err.message, "cannot delete a home");
        }
    }
}

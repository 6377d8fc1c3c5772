//! Sharing a session (ADR 0033): its owner invites members of the org as viewers or
//! collaborators, or makes an expiring link that signed-in members of the org join through;
//! every share can be revoked, and the guests' open connections end with it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use streamspace_store::{NewShare, Scope, Session, Share, ShareRole, User};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::Json;
use super::Path;
use super::sessions::visible_session;
use crate::app::{App, AppState};
use crate::audit::{Actor, Record};
use crate::auth::Principal;
use crate::auth::policy::{SessionRole, session_role};
use crate::auth::secrets::{random_token, sha256_hex};
use crate::connections::Kind;
use crate::context::RequestMeta;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::views::{Names, SessionView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shares, create_share))
        .routes(routes!(revoke_share))
        .routes(routes!(join_share))
        .routes(routes!(shared_sessions))
}

/// Links live at most a week; invitations may also be open-ended.
const MAX_SHARE_MINUTES: i64 = 7 * 24 * 60;
/// A link made without saying how long it lives.
const DEFAULT_LINK_MINUTES: i64 = 60;
const LINK_PREFIX: &str = "sss_";

#[derive(Serialize, ToSchema)]
pub struct ShareView {
    pub id: Uuid,
    /// `user`: an invitation; `link`: an expiring link; `joined`: someone who joined through a link.
    pub kind: ShareKind,
    pub role: ShareRole,
    /// The guest (invitations and joined guests).
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    /// The link a joined guest came through: revoking it revokes them.
    pub link_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ShareKind {
    User,
    Link,
    Joined,
}

/// A guest who has the session open right now.
#[derive(Serialize, ToSchema)]
pub struct Watcher {
    pub user_id: Uuid,
    pub username: String,
    pub role: ShareRole,
}

#[derive(Serialize, ToSchema)]
pub struct SessionShares {
    pub shares: Vec<ShareView>,
    /// Guests streaming the session now (through this control plane replica).
    pub watching: Vec<Watcher>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewShareRequest {
    /// The guest, by username or id, a member of the session's org. Without it: a link.
    pub user: Option<String>,
    pub role: ShareRole,
    /// How long the share lasts, at most a week. Links default to an hour; invitations without
    /// it last until revoked.
    pub expires_in_minutes: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedShare {
    #[serde(flatten)]
    pub view: ShareView,
    /// A link's address, to send to the guests. Shown only now; only the token's hash is kept.
    pub url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct JoinRequest {
    /// The token from the link (after `#`).
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct JoinedShare {
    pub session_id: Uuid,
    pub role: ShareRole,
}

#[derive(Serialize, ToSchema)]
pub struct SharedSession {
    pub session: SessionView,
    pub role: ShareRole,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The part a guest takes, as the share names it.
fn share_role(role: SessionRole) -> ShareRole {
    match role {
        SessionRole::Viewer => ShareRole::Viewer,
        SessionRole::Owner | SessionRole::Collaborator => ShareRole::Collaborator,
    }
}

/// The session the caller may open, with the part they take in it: their own, or one shared with
/// them. Administrators who may see it but are not invited get 403 `not_owner`; anyone else 404.
pub async fn openable_session(app: &App, principal: &Principal, id: Uuid) -> ApiResult<(Session, SessionRole)> {
    let session = app.store.get_session(principal.scope(), id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    match role_in(app, principal, &session).await? {
        Some(role) => Ok((session, role)),
        None if principal.may_see_session(session.org_id, session.owner_id) => {
            let message = "only the session's owner and the people they share it with can open it";
            Err(ApiError::new(StatusCode::FORBIDDEN, "not_owner", message))
        }
        None => Err(ApiError::not_found("session")),
    }
}

async fn role_in(app: &App, principal: &Principal, session: &Session) -> ApiResult<Option<SessionRole>> {
    let share = if principal.may_open_session(session.owner_id) {
        None
    } else {
        app.store.guest_share(session.id, principal.user_id).await?
    };
    Ok(session_role(principal.user_id, principal.org_id, session, share.as_ref(), app.clock.now()))
}

/// A session the caller sees as its owner or an administrator, or as a guest.
pub async fn seen_session(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Session> {
    match visible_session(app, principal, id).await {
        Ok(session) => Ok(session),
        Err(not_visible) => openable_session(app, principal, id).await.map(|(session, _)| session).or(Err(not_visible)),
    }
}

/// The caller's own session: only its owner shares it. Administrators who see it get 403.
async fn owned_session(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Session> {
    let session = visible_session(app, principal, id).await?;
    if !principal.may_open_session(session.owner_id) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_owner", "only the session's owner shares it"));
    }
    Ok(session)
}

async fn view(app: &App, names: &mut Names, share: Share) -> ApiResult<ShareView> {
    let username = match share.user_id {
        Some(user_id) => Some(names.username(app, user_id).await?),
        None => None,
    };
    let kind = match (share.is_link(), share.link_id) {
        (true, _) => ShareKind::Link,
        (false, Some(_)) => ShareKind::Joined,
        (false, None) => ShareKind::User,
    };
    Ok(ShareView {
        id: share.id,
        kind,
        role: share.role,
        user_id: share.user_id,
        username,
        link_id: share.link_id,
        expires_at: share.expires_at,
        created_at: share.created_at,
    })
}

/// Guests with a tunnel into the session on this replica, one entry per guest.
async fn watching(app: &App, names: &mut Names, session_id: Uuid) -> ApiResult<Vec<Watcher>> {
    let guests: BTreeMap<Uuid, SessionRole> = app
        .connections
        .snapshot()
        .into_iter()
        .filter_map(|open| match open.kind {
            Kind::Tunnel { session_id: id, role, .. } if id == session_id && role != SessionRole::Owner => {
                Some((open.user_id, role))
            }
            _ => None,
        })
        .collect();
    let mut watchers = Vec::with_capacity(guests.len());
    for (user_id, role) in guests {
        watchers.push(Watcher { user_id, username: names.username(app, user_id).await?, role: share_role(role) });
    }
    Ok(watchers)
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/shares", tag = "sharing", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The session's shares and who is watching now", body = SessionShares),
        (status = 403, description = "`not_owner`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn list_shares(
    State(app): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<SessionShares>> {
    owned_session(&app, &principal, id).await?;
    let mut names = Names::for_caller(&principal);
    let mut shares = Vec::new();
    for share in app.store.list_shares(id).await? {
        shares.push(view(&app, &mut names, share).await?);
    }
    let watching = watching(&app, &mut names, id).await?;
    Ok(axum::Json(SessionShares { shares, watching }))
}

/// When a share made now for `minutes` ends; links always end.
fn expiry(now: DateTime<Utc>, minutes: Option<i64>, link: bool) -> ApiResult<Option<DateTime<Utc>>> {
    let minutes = if link { Some(minutes.unwrap_or(DEFAULT_LINK_MINUTES)) } else { minutes };
    match minutes {
        Some(minutes) if !(1..=MAX_SHARE_MINUTES).contains(&minutes) => {
            Err(ApiError::validation(format!("expires_in_minutes must be 1-{MAX_SHARE_MINUTES}")))
        }
        minutes => Ok(minutes.map(|minutes| now + Duration::minutes(minutes))),
    }
}

/// The guest named by username or id, among the members of the session's org.
async fn guest(app: &App, session: &Session, reference: &str) -> ApiResult<User> {
    let user = match Uuid::parse_str(reference) {
        Ok(id) => app.store.get_user(Scope::Org(session.org_id), id).await?,
        Err(_) => app.store.get_user_by_username(reference).await?.filter(|user| user.org_id == session.org_id),
    };
    let user = user.filter(|user| !user.disabled).ok_or_else(|| ApiError::not_found("user"))?;
    if user.id == session.owner_id {
        return Err(ApiError::validation("the session is yours already"));
    }
    Ok(user)
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/shares", tag = "sharing", params(("id" = Uuid, Path)),
    request_body = NewShareRequest,
    responses(
        (status = 201, description = "Shared; a link's URL is shown only now", body = CreatedShare),
        (status = 403, description = "`not_owner`", body = ErrorBody),
        (status = 404, description = "No such session, or no such user in the session's org", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session has ended", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn create_share(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<NewShareRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedShare>)> {
    let session = owned_session(&app, &principal, id).await?;
    if session.state.is_terminal() {
        return Err(ApiError::new(StatusCode::CONFLICT, "invalid_state", format!("the session is {}", session.state)));
    }
    let guest = match body.user.as_deref().map(str::trim) {
        Some(reference) => Some(guest(&app, &session, reference).await?),
        None => None,
    };
    let expires_at = expiry(app.clock.now(), body.expires_in_minutes, guest.is_none())?;
    let token = guest.is_none().then(|| random_token(LINK_PREFIX, 32));
    let share = app
        .store
        .put_share(NewShare {
            session_id: id,
            user_id: guest.as_ref().map(|guest| guest.id),
            role: body.role,
            token_hash: token.as_deref().map(sha256_hex),
            link_id: None,
            expires_at,
            created_by: principal.user_id,
        })
        .await?;
    let details = json!({
        "share": share.id,
        "guest": guest.as_ref().map(|guest| &guest.username),
        "link": share.is_link(),
        "role": share.role,
        "expires_at": share.expires_at,
    });
    let record = Record::new("session.share", format!("session:{id}")).org(session.org_id).details(details);
    app.audit(&meta, &Actor::from(&principal), record).await?;
    let url = token.map(|token| format!("{}/join#{token}", app.urls.public_url));
    let view = view(&app, &mut Names::default(), share).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedShare { view, url })))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}/shares/{share_id}", tag = "sharing",
    params(("id" = Uuid, Path), ("share_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked: the guests' open connections end within seconds"),
        (status = 403, description = "`not_owner`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn revoke_share(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Path((id, share_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let session = owned_session(&app, &principal, id).await?;
    let revoked = app.store.delete_share(id, share_id).await?;
    if revoked.is_empty() {
        return Err(ApiError::not_found("share"));
    }
    crate::connections::access::shares_revoked(&app, id, &revoked);
    let guests: Vec<Uuid> = revoked.iter().filter_map(|share| share.user_id).collect();
    let details = json!({"share": share_id, "guests": guests});
    let record = Record::new("session.share_revoke", format!("session:{id}")).org(session.org_id).details(details);
    app.audit(&meta, &Actor::from(&principal), record).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/shares/join", tag = "sharing", request_body = JoinRequest,
    responses(
        (status = 200, description = "The caller is a guest of the session now (or its owner)", body = JoinedShare),
        (status = 404, description = "No such link, expired, revoked, or for another org's session", body = ErrorBody),
    ))]
async fn join_share(
    State(app): State<AppState>,
    meta: RequestMeta,
    principal: Principal,
    Json(body): Json<JoinRequest>,
) -> ApiResult<axum::Json<JoinedShare>> {
    let now = app.clock.now();
    let link = app.store.find_share_link(&sha256_hex(body.token.trim())).await?.filter(|link| link.live_at(now));
    let link = link.ok_or_else(|| ApiError::not_found("link"))?;
    let session = app.store.get_session(Scope::Org(principal.org_id), link.session_id).await?;
    let session = session.filter(|session| !session.state.is_terminal()).ok_or_else(|| ApiError::not_found("link"))?;
    if principal.may_open_session(session.owner_id) {
        return Ok(axum::Json(JoinedShare { session_id: session.id, role: ShareRole::Collaborator }));
    }
    // A live invitation of the guest's own stays as it is: the link gives nothing on top.
    let invited = app.store.guest_share(session.id, principal.user_id).await?;
    let share = match invited.filter(|share| share.link_id.is_none() && share.live_at(now)) {
        Some(invited) => invited,
        None => app.store.put_share(joined(&link, principal.user_id)).await?,
    };
    let details = json!({"share": share.id, "link": link.id, "role": share.role});
    let record = Record::new("session.share_join", format!("session:{}", session.id)).org(session.org_id);
    app.audit(&meta, &Actor::from(&principal), record.details(details)).await?;
    Ok(axum::Json(JoinedShare { session_id: session.id, role: share.role }))
}

/// The share of a guest joining through `link`: its role and end, revoked with it.
fn joined(link: &Share, user_id: Uuid) -> NewShare {
    NewShare {
        session_id: link.session_id,
        user_id: Some(user_id),
        role: link.role,
        token_hash: None,
        link_id: Some(link.id),
        expires_at: link.expires_at,
        created_by: link.created_by,
    }
}

#[utoipa::path(get, path = "/api/v1/shared-sessions", tag = "sharing",
    responses((status = 200, description = "Sessions shared with the caller that have not ended", body = Vec<SharedSession>)))]
async fn shared_sessions(
    State(app): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Vec<SharedSession>>> {
    let now = app.clock.now();
    let mut names = Names::for_caller(&principal);
    let mut shared = Vec::new();
    for share in app.store.shares_for_guest(principal.user_id).await?.into_iter().filter(|share| share.live_at(now)) {
        let session = app.store.get_session(Scope::Org(principal.org_id), share.session_id).await?;
        if let Some(session) = session.filter(|session| !session.state.is_terminal()) {
            let session = names.view(&app, session).await?;
            shared.push(SharedSession { session, role: share.role, expires_at: share.expires_at });
        }
    }
    Ok(axum::Json(shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_always_end_and_shares_last_at_most_a_week() {
        let now = Utc::now();
        assert_eq!(expiry(now, None, true).unwrap(), Some(now + Duration::minutes(DEFAULT_LINK_MINUTES)));
        assert_eq!(expiry(now, None, false).unwrap(), None, "an invitation may last until revoked");
        assert_eq!(expiry(now, Some(5), false).unwrap(), Some(now + Duration::minutes(5)));
        assert!(expiry(now, Some(0), true).is_err());
        assert!(expiry(now, Some(MAX_SHARE_MINUTES + 1), false).is_err());
    }
}

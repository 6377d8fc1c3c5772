//! Who may still use what. The session proxy asks before each request; the sweep and the change
//! handlers cut open connections whose access ended.
//!
//! The store is the source of truth, so a change made on another replica takes effect here too:
//! it signals this one to forget the user's answers, answers are reused for at most [`FRESH_FOR`]
//! should a signal be lost, and the sweep (once a second) reads the users and sessions behind
//! every open connection. A change made on this replica takes effect at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use streamspace_proto::SessionState;
use streamspace_store::{Role, Scope, Session, Share, Store, StoreError, Timestamp, User};
use uuid::Uuid;

use super::{Kind, Open};
use crate::app::{App, AppState};
use crate::auth::policy::{SessionRole, may_open_session, session_role};
use crate::bus::Change;
use crate::recent::{Recent, Ticket};

/// How long the proxy reuses an answer, and the API who a caller is.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Session cookies issued at or after this (Unix seconds) are good; earlier ones were revoked.
/// Cookies carry their time in whole seconds, so those of the revocation's second are refused too.
fn cookies_good_since(user: &User) -> i64 {
    user.sessions_revoked_at.map_or(i64::MIN, |at| at.timestamp() + 1)
}

/// Since when the user's session cookies for this session are good, and the part they take in
/// it: the session's owner, or a guest with a live share, while enabled and while the session has
/// not ended. `None`: no cookie is.
fn usable_since(
    user: Option<&User>,
    session: Option<&Session>,
    share: Option<&Share>,
    now: Timestamp,
) -> Option<(i64, SessionRole)> {
    let (user, session) = (user?, session?);
    if user.disabled || session.state.is_terminal() {
        return None;
    }
    let role = session_role(user.id, user.org_id, session, share, now)?;
    Some((cookies_good_since(user), role))
}

type Answer = Option<(i64, SessionRole)>;

/// The proxy's recent answers to "since when may this user use this session?", by user and session.
pub struct SessionAccess(Recent<(Uuid, Uuid), Answer>);

impl Default for SessionAccess {
    fn default() -> Self {
        SessionAccess(Recent::new(FRESH_FOR))
    }
}

impl SessionAccess {
    /// The part a session cookie of `user_id` for `session_id`, issued at `granted_at` (Unix
    /// seconds), gives in the session at `now` (`None` when it no longer opens the session), and
    /// until when that answer is reused.
    pub async fn allows(
        &self,
        store: &dyn Store,
        user_id: Uuid,
        session_id: Uuid,
        granted_at: i64,
        now: Timestamp,
    ) -> Result<(Option<SessionRole>, Instant), StoreError> {
        let (answer, fresh_until) = match self.0.get_fresh(&(user_id, session_id)) {
            Some(fresh) => fresh,
            None => {
                let read_at = Instant::now();
                // Boxed: the proxy asks on every request, and its future need not hold a user and a session.
                (Box::pin(self.read(store, user_id, session_id, now)).await?, read_at + FRESH_FOR)
            }
        };
        Ok((answer.filter(|(since, _)| granted_at >= *since).map(|(_, role)| role), fresh_until))
    }

    /// Taken before asking: an answer given after it is still true while the ticket is the current one.
    pub fn ticket(&self) -> Ticket {
        self.0.ticket()
    }

    async fn read(
        &self,
        store: &dyn Store,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<(i64, SessionRole)>, StoreError> {
        let ticket = self.0.ticket();
        let user = store.get_user(Scope::Platform, user_id).await?;
        let session = store.get_session(Scope::Platform, session_id).await?;
        let share = match &session {
            Some(session) if !may_open_session(user_id, session.owner_id) => {
                store.guest_share(session_id, user_id).await?
            }
            _ => None,
        };
        let answer = usable_since(user.as_ref(), session.as_ref(), share.as_ref(), now);
        self.0.keep(ticket, (user_id, session_id), answer);
        Ok(answer)
    }

    pub fn forget_user(&self, user_id: Uuid) {
        self.0.forget_where(|(user, _), _| *user == user_id);
    }

    pub fn forget_session(&self, session_id: Uuid) {
        self.0.forget_where(|(_, session), _| *session == session_id);
    }

    pub fn forget_guest(&self, user_id: Uuid, session_id: Uuid) {
        self.0.forget(&(user_id, session_id));
    }
}

/// A user was changed (`after`) or deleted (`None`) on this replica: cut what the change ends, and
/// have every replica read the user again.
pub async fn user_changed(app: &App, before: &User, after: Option<&User>) {
    app.session_access.forget_user(before.id);
    cut_what_the_change_ended(app, before, after);
    app.forget_caller(before.id).await;
}

fn cut_what_the_change_ended(app: &App, before: &User, after: Option<&User>) {
    let Some(user) = after.filter(|user| !user.disabled) else {
        app.connections.cut_user(before.id);
        return;
    };
    // Another role sees other things: its streams reconnect and are filtered anew.
    if user.role != before.role {
        app.connections.cut_user_events(user.id);
    }
    if user.sessions_revoked_at != before.sessions_revoked_at {
        app.connections.cut_user_tunnels(user.id);
    }
}

/// An API key stopped working (deleted, or revoked with the others): its streams end now.
pub fn api_keys_revoked(app: &App, user_id: Uuid, key: Option<Uuid>) {
    app.connections.cut(|open| {
        open.user_id == user_id
            && matches!(open.kind, Kind::Events { api_key: Some(id), .. } if key.is_none_or(|key| key == id))
    });
}

/// Shares of a session ended on this replica (revoked): their guests lose the session at once.
pub fn shares_revoked(app: &App, session_id: Uuid, revoked: &[Share]) {
    for guest in revoked.iter().filter_map(|share| share.user_id) {
        app.session_access.forget_guest(guest, session_id);
        app.connections.cut(|open| {
            open.user_id == guest && matches!(open.kind, Kind::Tunnel { session_id: id, .. } if id == session_id)
        });
    }
}

/// Cuts the tunnels of sessions as soon as they leave `running` on this replica.
pub async fn follow_session_changes(app: AppState) {
    let mut changes = app.bus.subscribe();
    loop {
        match changes.recv().await {
            Ok(Change::Session(session)) if session.state != SessionState::Running => {
                app.session_access.forget_session(session.id);
                app.connections.cut_session(session.id);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

struct Standing {
    role: Role,
    org_id: Uuid,
    /// See [`cookies_good_since`].
    cookies_good_since: i64,
}

/// What the store says now about the users behind open connections.
#[derive(Default)]
struct Facts {
    /// Users who still exist and are enabled; `None`: neither.
    users: HashMap<Uuid, Option<Standing>>,
    /// The API keys that still exist, of users with streams opened by key.
    api_keys: HashSet<Uuid>,
    /// Running sessions.
    running: HashMap<Uuid, Session>,
    /// The shares of guests with open tunnels, by session and guest (`None`: none any more).
    shares: HashMap<(Uuid, Uuid), Option<Share>>,
    now: Timestamp,
}

impl Facts {
    /// Whether `open` outlived its access. Users the store could not answer for are kept: a
    /// database blip must not disconnect everyone.
    fn ended(&self, open: &Open) -> bool {
        let Some(standing) = self.users.get(&open.user_id) else { return false };
        let Some(standing) = standing else { return true };
        match open.kind {
            Kind::Events { role, api_key } => {
                role != standing.role || api_key.is_some_and(|key| !self.api_keys.contains(&key))
            }
            Kind::Tunnel { session_id, granted_at, role } => {
                let share = self.shares.get(&(session_id, open.user_id)).and_then(Option::as_ref);
                let now_role = self
                    .running
                    .get(&session_id)
                    .and_then(|session| session_role(open.user_id, standing.org_id, session, share, self.now));
                now_role != Some(role) || granted_at < standing.cookies_good_since
            }
        }
    }
}

/// Cuts the connections opened up to `watermark` whose access has ended: their user is gone,
/// disabled or has another role, the API key that opened a stream is gone, a tunnel's session is
/// no longer running, no longer theirs or no longer shared with them in the same role, or its
/// cookie was revoked. `active` is every non-terminal session, read after
/// the watermark was taken (a tunnel opened later may be into a session `active` saw starting).
pub async fn sweep(app: &App, watermark: u64, active: &[Session]) {
    let open: Vec<Open> = app.connections.snapshot().into_iter().filter(|open| open.id <= watermark).collect();
    if open.is_empty() {
        return;
    }
    let mut facts = Facts {
        running: active.iter().filter(|s| s.state == SessionState::Running).map(|s| (s.id, s.clone())).collect(),
        now: app.clock.now(),
        ..Facts::default()
    };
    let users: HashSet<Uuid> = open.iter().map(|open| open.user_id).collect();
    let key_users: HashSet<Uuid> = open
        .iter()
        .filter(|open| matches!(open.kind, Kind::Events { api_key: Some(_), .. }))
        .map(|open| open.user_id)
        .collect();
    for user_id in users {
        if let Err(err) = learn_about(app, user_id, key_users.contains(&user_id), &mut facts).await {
            tracing::warn!(%user_id, error = %err, "cannot check a user's open connections");
        }
    }
    let guests: HashSet<(Uuid, Uuid)> = open
        .iter()
        .filter_map(|open| match open.kind {
            Kind::Tunnel { session_id, role, .. } if role != SessionRole::Owner => Some((session_id, open.user_id)),
            _ => None,
        })
        .collect();
    for (session_id, user_id) in guests {
        match app.store.guest_share(session_id, user_id).await {
            Ok(share) => drop(facts.shares.insert((session_id, user_id), share)),
            // Unknown: the guest's tunnels stay, as for users the store could not answer for.
            Err(err) => {
                tracing::warn!(%user_id, %session_id, error = %err, "cannot check a guest's share");
                facts.users.remove(&user_id);
            }
        }
    }
    for (user_id, _) in facts.users.iter().filter(|(_, standing)| standing.is_none()) {
        app.session_access.forget_user(*user_id);
        app.callers.forget(user_id);
    }
    let cut = app.connections.cut(|o| o.id <= watermark && facts.ended(o));
    if cut > 0 {
        tracing::info!(cut, "closed connections whose access ended");
    }
}

async fn learn_about(app: &App, user_id: Uuid, with_keys: bool, facts: &mut Facts) -> Result<(), StoreError> {
    let user = app.store.get_user(Scope::Platform, user_id).await?;
    if with_keys {
        facts.api_keys.extend(app.store.list_api_keys(user_id).await?.into_iter().map(|key| key.id));
    }
    let standing = user.filter(|user| !user.disabled).map(|user| Standing {
        role: user.role,
        org_id: user.org_id,
        cookies_good_since: cookies_good_since(&user),
    });
    facts.users.insert(user_id, standing);
    Ok(())
}

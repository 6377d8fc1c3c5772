//! Sharing a session (ADR 0033): who besides its owner may watch it or work in it, and the
//! expiring links org members join through.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::sql::{Columns, micros};
use crate::{Result, StoreError, Timestamp};

/// What a guest may do in a shared session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareRole {
    /// Sees the session; no keyboard, mouse, clipboard or file transfer.
    Viewer,
    /// Sees the session and works in it beside its owner.
    Collaborator,
}

impl ShareRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareRole::Viewer => "viewer",
            ShareRole::Collaborator => "collaborator",
        }
    }

    pub fn parse(s: &str) -> Option<ShareRole> {
        [ShareRole::Viewer, ShareRole::Collaborator].into_iter().find(|role| role.as_str() == s)
    }
}

/// An invitation of one guest (`user_id` set), an expiring link (`token_hash` set), or a guest
/// who joined through a link (both `user_id` and `link_id` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: Uuid,
    pub session_id: Uuid,
    pub user_id: Option<Uuid>,
    pub role: ShareRole,
    pub token_hash: Option<String>,
    pub link_id: Option<Uuid>,
    pub expires_at: Option<Timestamp>,
    pub created_by: Uuid,
    pub created_at: Timestamp,
}

impl Share {
    pub fn is_link(&self) -> bool {
        self.token_hash.is_some()
    }

    /// Whether the share still holds at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now)
    }
}

/// A share to create. For a guest (`user_id`), it replaces the guest's earlier share of the
/// session, if any.
#[derive(Debug, Clone)]
pub struct NewShare {
    pub session_id: Uuid,
    pub user_id: Option<Uuid>,
    pub role: ShareRole,
    pub token_hash: Option<String>,
    pub link_id: Option<Uuid>,
    pub expires_at: Option<Timestamp>,
    pub created_by: Uuid,
}

macro_rules! share_columns {
    () => {
        "id, session_id, user_id, role, token_hash, link_id, expires_at, created_by, created_at"
    };
}
pub(crate) use share_columns;

pub(crate) const NO_SUCH_SESSION_USER_OR_LINK: &str = "the session, the guest or the link does not exist";
pub(crate) const LINK_TAKEN: &str = "a link with that token already exists";

pub(crate) fn share(row: &impl Columns) -> Result<Share> {
    let role = row.text("role")?;
    Ok(Share {
        id: row.uuid("id")?,
        session_id: row.uuid("session_id")?,
        user_id: row.opt_uuid("user_id")?,
        role: ShareRole::parse(&role).ok_or_else(|| StoreError::Database(format!("unknown share role {role:?}")))?,
        token_hash: row.opt_text("token_hash")?,
        link_id: row.opt_uuid("link_id")?,
        expires_at: row.opt_time("expires_at")?.map(micros),
        created_by: row.uuid("created_by")?,
        created_at: micros(row.time("created_at")?),
    })
}

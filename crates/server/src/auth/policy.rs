//! Who may see or act on what, in one place: the REST routes, the live-update stream and the
//! session proxy all ask here.
//!
//! Platform administrators see every organization, org administrators their own, members their
//! own org's shared things and their own sessions. Another org's object is not there at all (the
//! routes answer 404). An API key acts with its user's role: keys carry no scopes of their own.

use streamspace_store::{Role, Scope, Session, Share, ShareRole, Timestamp};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Opening a session (streaming it) is for its owner alone; administrators may stop or
/// hibernate it, not look into it. Others take part only as guests the owner invited
/// ([`session_role`]).
pub fn may_open_session(user_id: Uuid, owner_id: Uuid) -> bool {
    user_id == owner_id
}

/// How someone takes part in a session they opened: the owner and collaborators drive it,
/// viewers only watch (ADR 0033).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionRole {
    Owner,
    Collaborator,
    Viewer,
}

impl SessionRole {
    /// Keyboard, mouse, clipboard and file transfers.
    pub fn has_input(self) -> bool {
        self != SessionRole::Viewer
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionRole::Owner => "owner",
            SessionRole::Collaborator => "collaborator",
            SessionRole::Viewer => "viewer",
        }
    }
}

/// The part `user` (a member of `user_org`) takes in `session` at `now`: its owner's, or the one
/// their live share gives, if they belong to the session's org. `None`: they may not open it.
pub fn session_role(
    user_id: Uuid,
    user_org: Uuid,
    session: &Session,
    share: Option<&Share>,
    now: Timestamp,
) -> Option<SessionRole> {
    if may_open_session(user_id, session.owner_id) {
        return Some(SessionRole::Owner);
    }
    let share = share.filter(|share| {
        share.session_id == session.id
            && share.user_id == Some(user_id)
            && share.live_at(now)
            && user_org == session.org_id
    })?;
    Some(match share.role {
        ShareRole::Viewer => SessionRole::Viewer,
        ShareRole::Collaborator => SessionRole::Collaborator,
    })
}

impl Principal {
    /// What this caller's reads are confined to: everything for platform admins, their org otherwise.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::PlatformAdmin => Scope::Platform,
            Role::OrgAdmin | Role::Member => Scope::Org(self.org_id),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::PlatformAdmin | Role::OrgAdmin)
    }

    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::PlatformAdmin
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::forbidden("this action needs an administrator")) }
    }

    pub fn require_platform_admin(&self) -> ApiResult<()> {
        if self.is_platform_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this action needs a platform administrator"))
        }
    }

    /// Sessions: administrators see (and stop or hibernate) those of their scope, members their own.
    pub fn may_see_session(&self, org_id: Uuid, owner_id: Uuid) -> bool {
        self.scope().allows(org_id) && (self.is_admin() || owner_id == self.user_id)
    }

    /// Whose sessions a listing shows: administrators choose (or see all), members their own.
    pub fn session_owner_filter(&self, asked: Option<Uuid>) -> Option<Uuid> {
        if self.is_admin() { asked } else { Some(self.user_id) }
    }

    pub fn may_open_session(&self, owner_id: Uuid) -> bool {
        may_open_session(self.user_id, owner_id)
    }

    /// Agents are the platform's.
    pub fn may_see_agents(&self) -> bool {
        self.is_platform_admin()
    }

    /// Global templates and those of the caller's scope; disabled ones only for those who manage
    /// templates.
    pub fn may_see_template(&self, template_org: Option<Uuid>, enabled: bool) -> bool {
        template_org.is_none_or(|org_id| self.scope().allows(org_id)) && (enabled || self.is_admin())
    }

    /// Of the templates the caller sees, org administrators manage their org's; global ones belong
    /// to platform administrators.
    pub fn require_template_manager(&self, template_org: Option<Uuid>) -> ApiResult<()> {
        self.require_admin()?;
        if template_org.is_none() {
            self.require_platform_admin()?;
        }
        Ok(())
    }

    /// The org a new template goes in: platform administrators choose (none: global), org
    /// administrators always their own.
    pub fn new_template_org(&self, asked: Option<Uuid>) -> Option<Uuid> {
        if self.is_platform_admin() { asked } else { Some(self.org_id) }
    }

    /// Users: administrators see their scope's, everyone sees themselves.
    pub fn may_see_user(&self, org_id: Uuid, user_id: Uuid) -> bool {
        self.scope().allows(org_id) && (self.is_admin() || user_id == self.user_id)
    }

    /// Only platform administrators hand out or touch the platform administrator role.
    pub fn require_role_grant(&self, role: Role) -> ApiResult<()> {
        if role == Role::PlatformAdmin { self.require_platform_admin() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::principal::Credential;

    const ORG: Uuid = Uuid::from_u128(1);
    const OTHER_ORG: Uuid = Uuid::from_u128(2);

    fn caller(id: u128, org_id: Uuid, role: Role, credential: Credential) -> Principal {
        Principal {
            user_id: Uuid::from_u128(id),
            org_id,
            username: format!("user{id}"),
            role,
            mfa: false,
            org_mfa_required: false,
            credential,
            expires_at: None,
        }
    }

    /// One of each kind of caller. The member (user 13) owns the session and is the user the
    /// table asks about; user 14 is the same member through an API key.
    fn callers() -> [(&'static str, Principal); 6] {
        let key = Credential::ApiKey(Uuid::from_u128(99));
        [
            ("platform admin", caller(11, OTHER_ORG, Role::PlatformAdmin, Credential::AccessToken)),
            ("org admin", caller(12, ORG, Role::OrgAdmin, Credential::AccessToken)),
            ("member, owner", caller(13, ORG, Role::Member, Credential::AccessToken)),
            ("member, owner, API key", caller(13, ORG, Role::Member, key)),
            ("member, not owner", caller(15, ORG, Role::Member, Credential::AccessToken)),
            ("other org admin", caller(16, OTHER_ORG, Role::OrgAdmin, Credential::AccessToken)),
        ]
    }

    /// For each caller, in the order of `callers()`: the expected answer.
    fn check(rule: &str, expected: [bool; 6], answer: impl Fn(&Principal) -> bool) {
        for ((who, principal), expected) in callers().iter().zip(expected) {
            assert_eq!(answer(principal), expected, "{rule}: {who}");
        }
    }

    #[test]
    fn sessions_are_seen_by_their_scopes_admins_and_opened_by_their_owner_only() {
        let owner = Uuid::from_u128(13);
        // Platform admin, org admin, owner, owner by key, another member, another org's admin.
        check("see a session", [true, true, true, true, false, false], |p| p.may_see_session(ORG, owner));
        check("open a session", [false, false, true, true, false, false], |p| p.may_open_session(owner));
        check("list everyone's sessions", [true, true, false, false, false, true], |p| {
            p.session_owner_filter(None).is_none()
        });
        check("be held to one's own sessions", [false, false, true, true, true, false], |p| {
            p.session_owner_filter(Some(Uuid::from_u128(77))) == Some(p.user_id)
        });
    }

    #[test]
    fn agents_and_the_platform_role_are_for_platform_admins() {
        check("see agents", [true, false, false, false, false, false], Principal::may_see_agents);
        check("grant platform admin", [true, false, false, false, false, false], |p| {
            p.require_role_grant(Role::PlatformAdmin).is_ok()
        });
        check("grant org admin", [true; 6], |p| p.require_role_grant(Role::OrgAdmin).is_ok());
        check("act as an admin", [true, true, false, false, false, true], |p| p.require_admin().is_ok());
        check("read everything", [true, false, false, false, false, false], |p| p.scope() == Scope::Platform);
    }

    #[test]
    fn templates_are_global_or_the_orgs_and_disabled_ones_are_for_admins() {
        check("see a global template", [true; 6], |p| p.may_see_template(None, true));
        check("see a disabled org template", [true, true, false, false, false, false], |p| {
            p.may_see_template(Some(ORG), false)
        });
        check("see another org's template", [true, false, false, false, false, true], |p| {
            p.may_see_template(Some(OTHER_ORG), true)
        });
        check("manage a global template", [true, false, false, false, false, false], |p| {
            p.require_template_manager(None).is_ok()
        });
        check("manage an org template", [true, true, false, false, false, false], |p| {
            p.may_see_template(Some(ORG), true) && p.require_template_manager(Some(ORG)).is_ok()
        });
        check("create a global template", [true, false, false, false, false, false], |p| {
            p.new_template_org(None).is_none()
        });
    }

    #[test]
    fn users_see_themselves_and_admins_their_scope() {
        let member = Uuid::from_u128(13);
        check("see a member", [true, true, true, true, false, false], |p| p.may_see_user(ORG, member));
    }
}

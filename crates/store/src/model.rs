//! Domain records. Handlers see these, never SQL rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use streamspace_proto::SessionState;
use streamspace_proto::hub::{Capacity, Command, Platform};
use utoipa::ToSchema;
use uuid::Uuid;

/// Records that derive `ToSchema` spell it `DateTime<Utc>`: utoipa recognises chrono types by name.
pub type Timestamp = DateTime<Utc>;

/// Who may see what. Every query that touches tenant data takes one: `Platform` sees every
/// organization (platform admins, the control plane itself), `Org` sees one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Platform,
    Org(Uuid),
}

impl Scope {
    pub fn allows(self, org_id: Uuid) -> bool {
        match self {
            Scope::Platform => true,
            Scope::Org(id) => id == org_id,
        }
    }
}

/// Keyset pagination: items come in creation order (ids are UUIDv7, so id order is creation
/// order), and the cursor is the last id of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Uuid>,
}

impl Page {
    pub const MAX_LIMIT: u32 = 500;

    pub fn first(limit: u32) -> Page {
        Page { limit: limit.clamp(1, Page::MAX_LIMIT), after: None }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::first(100)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// The cursor for the next page, `None` on the last page.
    pub next: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub mfa_required: bool,
    /// What the org's sessions may exchange with the viewer's browser.
    pub session_policy: crate::SessionPolicy,
    #[serde(flatten)]
    pub quotas: Quotas,
    /// Networks every session of the org may reach although the platform's egress deny list covers them.
    #[schema(value_type = Vec<String>)]
    pub egress_allow: Vec<IpNet>,
    /// Whether an identity provider's assertion of a second factor counts as MFA.
    pub sso_mfa: crate::SsoMfaPolicy,
    pub created_at: DateTime<Utc>,
}

/// Limits on concurrent (non-terminal) sessions and their reserved resources; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quotas {
    pub max_sessions: Option<i64>,
    pub max_sessions_per_user: Option<i64>,
    pub max_cpu_millis: Option<i64>,
    pub max_memory_mb: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub mfa_required: Option<bool>,
    pub session_policy: Option<crate::SessionPolicy>,
    pub quotas: Option<Quotas>,
    pub egress_allow: Option<Vec<IpNet>>,
    pub sso_mfa: Option<crate::SsoMfaPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    OrgAdmin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::OrgAdmin => "org_admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::PlatformAdmin, Role::OrgAdmin, Role::Member].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    /// The TOTP secret, sealed by the server (the store never sees it in the clear).
    pub mfa_secret: Option<String>,
    pub mfa_enabled: bool,
    /// The last TOTP time step accepted, so that no code is accepted twice.
    pub mfa_last_step: Option<i64>,
    /// Session-origin cookies issued before this are refused.
    pub sessions_revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user as the API authenticates them: the user, and what their org asks of every caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: User,
    pub org_mfa_required: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    pub mfa_secret: Option<Option<String>>,
    pub mfa_enabled: Option<bool>,
    pub sessions_revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// The first characters of the key, shown in listings so a person can tell keys apart.
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub key_hash: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// After this the key no longer authenticates; `None`: it does not expire.
    pub expires_at: Option<Timestamp>,
    /// Whether the sign-in that created the key passed a second factor.
    pub mfa: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub expires_at: Option<Timestamp>,
    pub mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: Uuid,
    pub user_id: Uuid,
    /// All tokens rotated from one login share a family; reuse of a spent token revokes it.
    pub family_id: Uuid,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Whether the login that started this family passed MFA.
    pub mfa: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live; it is now spent and the caller may issue its successor.
    Rotated(RefreshToken),
    /// The token was already spent or revoked: the whole family has now been revoked.
    Reused { user_id: Uuid, family_id: Uuid },
    /// Unknown or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub id: Uuid,
    /// `None` for a global template, visible to every organization.
    pub org_id: Option<Uuid>,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub shm_mb: i64,
    pub port: i32,
    pub tags: Vec<String>,
    pub enabled: bool,
    /// Networks this template's sessions may reach although the platform's egress deny list covers them.
    #[schema(value_type = Vec<String>)]
    pub egress_allow: Vec<IpNet>,
    /// What this template's sessions may exchange with the viewer's browser, within the org's policy.
    pub session_policy: crate::SessionPolicy,
    /// Which persistent home its sessions mount.
    pub home: crate::TemplateHome,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    pub org_id: Option<Uuid>,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub shm_mb: i64,
    pub port: i32,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub egress_allow: Vec<IpNet>,
    pub session_policy: crate::SessionPolicy,
    pub home: crate::TemplateHome,
}

/// A change to a template; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub struct TemplatePatch {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub image: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub cpu_millis: Option<i64>,
    pub memory_mb: Option<i64>,
    pub shm_mb: Option<i64>,
    pub port: Option<i32>,
    pub tags: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// Platform administrators only: replaces the networks (CIDRs) the template's sessions may reach although
    /// the platform's egress deny list covers them.
    #[schema(value_type = Option<Vec<String>>)]
    pub egress_allow: Option<Vec<IpNet>>,
    /// Replaces what the template's sessions may exchange with the viewer's browser.
    pub session_policy: Option<crate::SessionPolicy>,
    /// Replaces which persistent home its sessions mount (from their next start).
    pub home: Option<crate::TemplateHome>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub template_id: Uuid,
    pub state: SessionState,
    pub agent_id: Option<Uuid>,
    /// Where the control plane dials the streamer, as reported by the agent (`http://host:port`).
    pub endpoint: Option<String>,
    /// Start progress for people: a phase name and a percentage where one is known.
    pub phase: Option<String>,
    pub progress: Option<i32>,
    pub failure_reason: Option<String>,
    /// Resources reserved for quota accounting, copied from the template at create.
    pub cpu_millis: i64,
    pub memory_mb: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub last_activity_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub template_id: Uuid,
    pub cpu_millis: i64,
    pub memory_mb: i64,
}

/// A change to a session, applied only if the session is still in `expected` state
/// (compare-and-set, so concurrent writers cannot both win a transition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    pub expected: SessionState,
    pub state: SessionState,
    pub agent_id: Option<Option<Uuid>>,
    pub endpoint: Option<Option<String>>,
    pub phase: Option<Option<String>>,
    pub progress: Option<Option<i32>>,
    pub failure_reason: Option<Option<String>>,
    pub started_at: Option<Option<Timestamp>>,
    pub stopped_at: Option<Option<Timestamp>>,
    /// When the change happened, by the caller's clock (the session timers compare it with
    /// theirs); the store's own clock when `None`.
    pub at: Option<Timestamp>,
}

impl SessionUpdate {
    /// A bare transition from `expected` to `state`, changing nothing else.
    pub fn transition(expected: SessionState, state: SessionState) -> SessionUpdate {
        SessionUpdate {
            expected,
            state,
            agent_id: None,
            endpoint: None,
            phase: None,
            progress: None,
            failure_reason: None,
            started_at: None,
            stopped_at: None,
            at: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub owner_id: Option<Uuid>,
    pub state: Option<SessionState>,
}

/// What the org and one user hold right now, for quota checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub org_sessions: i64,
    pub user_sessions: i64,
    pub org_cpu_millis: i64,
    pub org_memory_mb: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in the hash chain, from 1.
    pub seq: i64,
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub org_id: Option<Uuid>,
    pub action: String,
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub result: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub time: Timestamp,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub org_id: Option<Uuid>,
    pub action: String,
    pub target: String,
    pub result: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub result: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Free-text search over actor, action, target and details.
    pub text: Option<String>,
}

/// Audit listings page by sequence number, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPage {
    pub limit: u32,
    /// Return events with `seq` below this.
    pub before_seq: Option<i64>,
}

/// A registered agent. Its token is stored as a SHA-256 hash only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub platform: Platform,
    /// Set at registration by an administrator.
    pub labels: BTreeMap<String, String>,
    /// Announced by the agent in its hello (the control plane drops reserved keys first).
    pub reported_labels: BTreeMap<String, String>,
    pub token_hash: String,
    /// Reported by the agent in its hello.
    pub version: Option<String>,
    /// What the agent may hold: its last report, capped by `capacity_limit`.
    pub capacity: Capacity,
    /// Set at registration: the most the agent may claim.
    pub capacity_limit: CapacityLimit,
    /// Set at registration: networks (CIDR notation) its session endpoints must lie in; empty for any.
    pub endpoint_cidrs: Vec<String>,
    pub last_heartbeat_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The control-plane replica holding its connection, if one does (ADR 0030).
    pub connected_replica: Option<Uuid>,
}

impl Agent {
    /// The labels the scheduler matches: the agent's own, overridden by the administrator's.
    pub fn effective_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.reported_labels.clone();
        labels.extend(self.labels.clone());
        labels
    }
}

/// Upper bounds on what an agent may report of itself; `None` where the registration did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityLimit {
    pub max_sessions: Option<i64>,
    pub cpu_millis: Option<i64>,
    pub memory_mb: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    pub token_hash: String,
    pub capacity_limit: CapacityLimit,
    pub endpoint_cidrs: Vec<String>,
}

/// A command for an agent, kept until the agent acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub session_id: Uuid,
    /// The whole command as sent on the wire.
    pub command: Command,
    pub created_at: Timestamp,
    /// How often it was sent so far.
    pub attempts: i32,
    pub last_sent_at: Option<Timestamp>,
    pub acked_at: Option<Timestamp>,
    /// The agent's error, when it acknowledged a failure.
    pub error: Option<String>,
}

/// A single-use, short-lived ticket that opens one session for one user (its SHA-256 is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub token_hash: String,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: Timestamp,
}

/// An org's audit retention and scheduled compliance reports (ADR 0029). The store keeps the
/// settings as given; the control plane validates them and seals the webhook secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComplianceSettings {
    pub org_id: Uuid,
    /// Days the org's audit events are kept; `None` keeps them forever.
    pub retention_days: Option<i64>,
    /// `daily`, `weekly` or `monthly`; `None` delivers no reports.
    pub report_schedule: Option<String>,
    /// `directory` or `webhook`.
    pub report_destination: Option<String>,
    pub webhook_url: Option<String>,
    /// Sealed.
    pub webhook_secret: Option<String>,
    pub delivery: DeliveryState,
}

/// Where scheduled delivery stands for one org.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryState {
    /// The end of the last period delivered.
    pub delivered_until: Option<Timestamp>,
    /// Failed attempts at the next period since the last success.
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// Which IP allow-list: the platform's, which everyone is held to, or one org's, which its users are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowList {
    Platform,
    Org(Uuid),
}

impl AllowList {
    /// The key of the list's row.
    pub fn key(self) -> String {
        match self {
            AllowList::Platform => "platform".to_owned(),
            AllowList::Org(id) => format!("org:{id}"),
        }
    }

    pub fn org_id(self) -> Option<Uuid> {
        match self {
            AllowList::Platform => None,
            AllowList::Org(id) => Some(id),
        }
    }
}

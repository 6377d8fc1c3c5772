//! The StreamSpace store: the source of truth for desired state.
//!
//! One [`Store`] trait and one SQL implementation of it, [`SqlStore`], over two backends (SQLite,
//! the embedded default, and PostgreSQL), each with its own migrations, and one conformance suite
//! (`conformance`, compiled only with the feature of that name, for tests) that both must pass.
//! See ADR 0001.

pub mod audit;
pub mod cluster;
#[cfg(feature = "conformance")]
pub mod conformance;
mod home;
mod model;
mod policy;
mod pools;
mod postgres;
mod readers;
mod sharing;
mod sql;
mod sql_compliance;
mod sql_homes;
mod sql_store;
mod sqlite;
mod sso;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
pub use home::{Home, HomeScope, NewHome, TemplateHome};
use ipnet::IpNet;
pub use model::*;
pub use policy::{ClipboardPolicy, SessionPolicy};
pub use pools::{PoolMember, TemplatePool};
pub use postgres::PostgresStore;
pub use sharing::{NewShare, Share, ShareRole};
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;
pub use sso::{
    ExternalIdentity, IdentityProvider, IdentityProviderPatch, NewExternalIdentity, NewIdentityProvider, ProviderKind,
    SsoMfaPolicy, SsoPending, SsoPendingKind, SsoSignIn,
};
use streamspace_proto::hub::{Capacity, Command};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule would be broken (the message names which).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The operation refers to something that does not exist or is still in use.
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the control plane keeps. Getters answer `None` for objects outside `scope`,
/// exactly as for objects that do not exist, so callers cannot tell the two apart.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip, for readiness probes.
    async fn ping(&self) -> Result<()>;

    // Organizations.
    async fn create_org(&self, name: &str, quotas: Quotas) -> Result<Org>;
    async fn get_org(&self, scope: Scope, id: Uuid) -> Result<Option<Org>>;
    async fn get_org_by_name(&self, name: &str) -> Result<Option<Org>>;
    async fn list_orgs(&self, scope: Scope, page: Page) -> Result<Paged<Org>>;
    async fn update_org(&self, scope: Scope, id: Uuid, patch: OrgPatch) -> Result<Option<Org>>;
    /// Fails with `Invalid` while the org still has users.
    async fn delete_org(&self, scope: Scope, id: Uuid) -> Result<bool>;

    // Users. Usernames are unique across the platform (compared case-insensitively).
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn get_user(&self, scope: Scope, id: Uuid) -> Result<Option<User>>;
    /// The user with their org's rules for every caller, in one read: the API reads it on every request.
    async fn get_caller(&self, id: Uuid) -> Result<Option<Caller>>;
    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self, scope: Scope, page: Page) -> Result<Paged<User>>;
    async fn update_user(&self, scope: Scope, id: Uuid, patch: UserPatch) -> Result<Option<User>>;
    /// Deletes the user with their API keys, refresh tokens and recovery codes. Fails with
    /// `Invalid` while they own sessions that are not terminal.
    async fn delete_user(&self, scope: Scope, id: Uuid) -> Result<bool>;
    /// Records that TOTP time step `step` was used; `false` if it (or a later one) already was.
    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool>;
    /// Replaces the user's recovery codes (SHA-256 hashes, hex).
    async fn replace_recovery_codes(&self, user_id: Uuid, code_hashes: &[String]) -> Result<()>;
    /// Spends a recovery code; `false` if unknown or already spent.
    async fn use_recovery_code(&self, user_id: Uuid, code_hash: &str) -> Result<bool>;
    async fn remaining_recovery_codes(&self, user_id: Uuid) -> Result<i64>;

    // API keys.
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey>;
    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>>;
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    async fn touch_api_key(&self, id: Uuid, at: Timestamp) -> Result<()>;
    async fn delete_api_key(&self, user_id: Uuid, id: Uuid) -> Result<bool>;
    /// Deletes every API key of the user; returns how many there were.
    async fn delete_user_api_keys(&self, user_id: Uuid) -> Result<u64>;

    // Refresh tokens.
    async fn insert_refresh_token(&self, token: RefreshToken) -> Result<()>;
    /// Atomically spends a live token. Presenting a spent or revoked one revokes its family.
    async fn rotate_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<RefreshOutcome>;
    /// Revokes the family of the given token (logout); `false` if the token is unknown.
    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool>;
    async fn revoke_user_refresh_tokens(&self, user_id: Uuid) -> Result<()>;

    // Templates. An org scope sees its own templates and the global ones.
    async fn create_template(&self, template: NewTemplate) -> Result<Template>;
    async fn get_template(&self, scope: Scope, id: Uuid) -> Result<Option<Template>>;
    /// By name, preferring the org's own template over a global one of the same name.
    async fn get_template_by_name(&self, scope: Scope, name: &str) -> Result<Option<Template>>;
    async fn list_templates(&self, scope: Scope, page: Page) -> Result<Paged<Template>>;
    async fn update_template(&self, scope: Scope, id: Uuid, patch: TemplatePatch) -> Result<Option<Template>>;
    async fn delete_template(&self, scope: Scope, id: Uuid) -> Result<bool>;

    // Sessions.
    async fn create_session(&self, session: NewSession) -> Result<Session>;
    async fn get_session(&self, scope: Scope, id: Uuid) -> Result<Option<Session>>;
    async fn list_sessions(&self, scope: Scope, filter: SessionFilter, page: Page) -> Result<Paged<Session>>;
    /// Compare-and-set on the session state: `None` when the session is gone or no longer in
    /// `update.expected`.
    async fn update_session(&self, id: Uuid, update: SessionUpdate) -> Result<Option<Session>>;
    /// [`Store::update_session`] with `event` appended to the audit chain (as
    /// [`Store::append_audit`] does) in the same transaction: the change is stored with its audit
    /// record or not at all, and nothing is appended when the session was not in `update.expected`.
    async fn update_session_audited(
        &self,
        id: Uuid,
        update: SessionUpdate,
        key: &audit::AuditKey,
        event: NewAuditEvent,
    ) -> Result<Option<Session>>;
    async fn touch_session(&self, id: Uuid, at: Timestamp) -> Result<()>;
    /// Non-terminal sessions of the org and of one user, with their reserved resources.
    async fn usage(&self, org_id: Uuid, user_id: Uuid) -> Result<Usage>;

    // Agents. Names are unique.
    async fn create_agent(&self, agent: NewAgent) -> Result<Agent>;
    async fn get_agent(&self, id: Uuid) -> Result<Option<Agent>>;
    /// In creation order.
    async fn list_agents(&self) -> Result<Vec<Agent>>;
    async fn find_agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>>;
    /// Replaces the agent's token hash (the old token stops working); `false` if unknown.
    async fn set_agent_token(&self, id: Uuid, token_hash: &str) -> Result<bool>;
    /// Replaces the networks the agent's session endpoints must lie in; `false` if unknown.
    async fn set_agent_endpoint_cidrs(&self, id: Uuid, endpoint_cidrs: &[String]) -> Result<bool>;
    /// What the agent said when it connected (capacity already capped, reported labels already
    /// filtered); counts as a heartbeat too.
    async fn record_agent_hello(
        &self,
        id: Uuid,
        version: &str,
        capacity: Capacity,
        reported_labels: &BTreeMap<String, String>,
        at: Timestamp,
    ) -> Result<()>;
    async fn record_agent_heartbeat(&self, id: Uuid, at: Timestamp) -> Result<()>;
    /// Deletes the agent with its commands. Its sessions keep their `agent_id`.
    async fn delete_agent(&self, id: Uuid) -> Result<bool>;

    // Agent commands: stored before they are sent, kept until acknowledged.
    async fn enqueue_command(&self, agent_id: Uuid, command: Command, at: Timestamp) -> Result<AgentCommand>;
    /// The agent's unacknowledged commands, oldest first.
    async fn pending_commands(&self, agent_id: Uuid) -> Result<Vec<AgentCommand>>;
    /// Counts one send: `attempts + 1`, `last_sent_at = at`.
    async fn mark_command_sent(&self, id: Uuid, at: Timestamp) -> Result<()>;
    /// Records the answer of `agent_id`. Returns the command on its first acknowledgement only
    /// (`None` when unknown, already acknowledged or sent to another agent), so a re-sent command's
    /// late duplicate answer is not acted on twice, and no agent answers for another.
    async fn ack_command(
        &self,
        agent_id: Uuid,
        id: Uuid,
        error: Option<String>,
        at: Timestamp,
    ) -> Result<Option<AgentCommand>>;

    // Sessions across orgs, for the control plane's own work.
    /// Non-terminal sessions placed on the agent, oldest first.
    async fn list_agent_sessions(&self, agent_id: Uuid) -> Result<Vec<Session>>;
    /// Every non-terminal session, oldest first.
    async fn list_active_sessions(&self) -> Result<Vec<Session>>;

    // Connect tickets: single use, short-lived.
    async fn create_ticket(&self, ticket: Ticket) -> Result<()>;
    /// Spends the ticket: it is returned if it existed and had not expired at `now`, and can
    /// never be redeemed again either way.
    async fn redeem_ticket(&self, token_hash: &str, now: Timestamp) -> Result<Option<Ticket>>;

    // Audit.
    /// Appends to the chain, linked by HMAC under `key`, and moves the sealed head with it in the
    /// same transaction (concurrent appends, also from other replicas, serialise on the head).
    /// Fails with `Invalid` when the head does not hold under `key` (see
    /// [`audit::ChainHead::sealed_with`]).
    async fn append_audit(&self, key: &audit::AuditKey, event: NewAuditEvent) -> Result<AuditEvent>;
    /// Seals the chain head with `key` where [`audit::ChainHead::sealed_with`] allows it, and
    /// answers the head; fails with `Invalid` where it refuses.
    async fn seal_audit_head(&self, key: &audit::AuditKey, adopt_unkeyed: bool) -> Result<audit::ChainHead>;
    /// The chain head as stored.
    async fn audit_head(&self) -> Result<audit::ChainHead>;
    /// Newest first. An org scope sees the events of that org.
    async fn list_audit(&self, scope: Scope, filter: AuditFilter, page: AuditPage) -> Result<Vec<AuditEvent>>;
    /// The whole chain in sequence order from `after_seq + 1`, for verification.
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>>;

    // Persistent homes (ADR 0032).
    /// The user's home of `new`'s scope, created on first call (a home marked for deletion stays marked).
    async fn home_for(&self, new: NewHome, now: Timestamp) -> Result<Home>;
    /// Records that a session on `agent_id` mounts the home: that is where its volume lives. A home that
    /// moves to another agent forgets its usage, which described the volume it left behind.
    async fn record_home_use(&self, id: Uuid, agent_id: Uuid, at: Timestamp) -> Result<()>;
    /// Stores home `id`'s used space as `agent_id` measured it at `at`, only if that agent holds it (a report
    /// about another agent's home changes nothing); answers whether it was stored.
    async fn record_home_usage(&self, id: Uuid, agent_id: Uuid, used_bytes: i64, at: Timestamp) -> Result<bool>;
    async fn get_home(&self, scope: Scope, id: Uuid) -> Result<Option<Home>>;
    /// Homes in `scope`, of one user or of everyone in it, oldest first.
    async fn list_homes(&self, scope: Scope, user_id: Option<Uuid>) -> Result<Vec<Home>>;
    async fn delete_home(&self, id: Uuid) -> Result<bool>;
    /// Marks the user's homes for deletion at `after` (their user is gone); answers how many.
    async fn mark_user_homes_for_deletion(&self, user_id: Uuid, after: Timestamp) -> Result<u64>;
    /// Homes whose deletion is due at `now`.
    async fn due_homes(&self, now: Timestamp) -> Result<Vec<Home>>;

    // Compliance: audit retention and scheduled reports (ADR 0029).
    /// Removes the org's events older than `before`, a run of consecutive events at a time, each
    /// run replaced by a [`audit::Checkpoint`] sealed under `key` in the same transaction. Fails
    /// with `Invalid`, removing nothing, when the head or a removed event's link does not hold.
    /// Answers how many events it removed (at most a batch; call again until 0).
    async fn prune_audit(&self, key: &audit::AuditKey, org_id: Uuid, before: Timestamp, now: Timestamp) -> Result<u64>;
    /// Checkpoints starting after `after_seq`, in chain order.
    async fn audit_checkpoints(&self, after_seq: i64, limit: u32) -> Result<Vec<audit::Checkpoint>>;
    /// The org's settings; `None` until first saved.
    async fn compliance_settings(&self, org_id: Uuid) -> Result<Option<ComplianceSettings>>;
    /// Every org's saved settings.
    async fn list_compliance_settings(&self) -> Result<Vec<ComplianceSettings>>;
    /// Saves the settings but not the delivery state, which only [`Store::record_delivery`] moves.
    async fn put_compliance_settings(&self, settings: &ComplianceSettings) -> Result<()>;
    async fn record_delivery(&self, org_id: Uuid, delivery: &DeliveryState) -> Result<()>;
    // Single sign-on (ADR 0025). Provider names are unique in their org.
    async fn create_identity_provider(&self, provider: NewIdentityProvider) -> Result<IdentityProvider>;
    async fn get_identity_provider(&self, scope: Scope, id: Uuid) -> Result<Option<IdentityProvider>>;
    /// The providers of one org, in creation order (none for an org outside `scope`).
    async fn list_identity_providers(&self, scope: Scope, org_id: Uuid) -> Result<Vec<IdentityProvider>>;
    /// The enabled providers that list `domain` (lower-case) among their email domains.
    async fn identity_providers_for_domain(&self, domain: &str) -> Result<Vec<IdentityProvider>>;
    async fn update_identity_provider(
        &self,
        scope: Scope,
        id: Uuid,
        patch: IdentityProviderPatch,
    ) -> Result<Option<IdentityProvider>>;
    /// Deletes the provider with its linked identities and pending sign-ins.
    async fn delete_identity_provider(&self, scope: Scope, id: Uuid) -> Result<bool>;
    /// Fails with `Conflict` when the subject is linked already or the user has an identity at that provider.
    async fn create_external_identity(&self, identity: NewExternalIdentity) -> Result<ExternalIdentity>;
    async fn find_external_identity(&self, provider_id: Uuid, subject: &str) -> Result<Option<ExternalIdentity>>;
    /// The user's identities, in creation order.
    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>>;
    /// Records a sign-in with the identity, and the email the provider gave this time (if any).
    async fn touch_external_identity(&self, id: Uuid, email: Option<&str>, at: Timestamp) -> Result<()>;
    async fn delete_external_identity(&self, user_id: Uuid, id: Uuid) -> Result<bool>;
    /// Keeps a pending token; what expired long before it goes.
    async fn create_sso_pending(&self, pending: SsoPending) -> Result<()>;
    /// The pending token of that kind, if it has not expired at `now`; it stays.
    async fn get_sso_pending(
        &self,
        kind: SsoPendingKind,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SsoPending>>;
    /// Spends the pending token: returned if it existed with that kind and had not expired at
    /// `now`, and never again either way.
    async fn take_sso_pending(
        &self,
        kind: SsoPendingKind,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SsoPending>>;
    /// Records `key` (an assertion ID) as used at the provider until `expires_at`; `false` when it
    /// already was (a replay). Expired records are dropped.
    async fn record_sso_replay(
        &self,
        provider_id: Uuid,
        key: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Remembers that a refresh token family came from a provider; expired ones are dropped.
    async fn record_sso_sign_in(&self, sign_in: SsoSignIn) -> Result<()>;
    /// The provider sign-in of the refresh token's family, if it came from one.
    async fn sso_sign_in_for_refresh_token(&self, token_hash: &str) -> Result<Option<SsoSignIn>>;
    // IP allow-lists (network controls).
    /// The networks of one allow-list; empty when it was never set (which allows every address).
    async fn get_ip_allow_list(&self, list: AllowList) -> Result<Vec<IpNet>>;
    /// Replaces one allow-list; `Invalid` when the org does not exist.
    async fn set_ip_allow_list(&self, list: AllowList, cidrs: &[IpNet], at: Timestamp) -> Result<()>;
    // Sharing a session (ADR 0033).
    /// Creates a share; for a guest it replaces their earlier share of the session (role,
    /// expiry, link and creator are the new one's). `Invalid` when the session, guest or link
    /// does not exist.
    async fn put_share(&self, share: NewShare) -> Result<Share>;
    /// The session's shares (links and guests), in creation order.
    async fn list_shares(&self, session_id: Uuid) -> Result<Vec<Share>>;
    /// The guest's share of the session, if any (expired ones too: callers judge expiry).
    async fn guest_share(&self, session_id: Uuid, user_id: Uuid) -> Result<Option<Share>>;
    /// The link with that token hash.
    async fn find_share_link(&self, token_hash: &str) -> Result<Option<Share>>;
    /// The shares the user holds as a guest, in creation order.
    async fn shares_for_guest(&self, user_id: Uuid) -> Result<Vec<Share>>;
    /// Deletes the share of the session and, for a link, the guests who joined through it;
    /// answers what was deleted (empty when there was no such share).
    async fn delete_share(&self, session_id: Uuid, id: Uuid) -> Result<Vec<Share>>;
    // Warm pools (ADR 0034).
    /// Sets how many warm containers each fitting agent keeps for the template (0: none).
    async fn set_template_pool(&self, template_id: Uuid, size: i64, at: Timestamp) -> Result<TemplatePool>;
    /// Every template's pool size that was ever set.
    async fn list_template_pools(&self) -> Result<Vec<TemplatePool>>;
    async fn add_pool_member(&self, member: &PoolMember) -> Result<()>;
    /// Every warm container, oldest first.
    async fn list_pool_members(&self) -> Result<Vec<PoolMember>>;
    /// Records that the member's streamer answers at `endpoint`; `false` when it is no member of
    /// that agent's pool (anymore).
    async fn pool_member_ready(&self, id: Uuid, agent_id: Uuid, endpoint: &str, at: Timestamp) -> Result<bool>;
    /// Drops a member that failed, vanished or is no longer wanted; `false` when it was claimed or
    /// dropped already.
    async fn remove_pool_member(&self, id: Uuid) -> Result<bool>;
    /// Takes the oldest ready member of the template's pool running a spec with that digest and
    /// makes it the running session `session` describes, under the member's id, in one
    /// transaction: a member is claimed once and never returns to the pool. `None` when no such
    /// member is ready.
    async fn claim_pool_member(
        &self,
        template_id: Uuid,
        spec_digest: &str,
        session: NewSession,
        at: Timestamp,
    ) -> Result<Option<Session>>;

    // Control-plane replicas (ADR 0030).
    /// Records `replica` as holding the agent's connection; a newer connection, on any replica,
    /// takes it over.
    async fn claim_agent_connection(&self, agent_id: Uuid, replica: Uuid) -> Result<()>;
    /// Forgets the holder if it is still `replica`; `false` when another one holds it now (the
    /// agent has reconnected elsewhere already).
    async fn release_agent_connection(&self, agent_id: Uuid, replica: Uuid) -> Result<bool>;
    /// Records each `(name, fingerprint)` not recorded yet, and answers the names recorded with
    /// another fingerprint: keys this process does not share with the others.
    async fn check_key_fingerprints(&self, fingerprints: &[(String, String)], at: Timestamp) -> Result<Vec<String>>;

    // Agent HA fencing (ADR 0031): the newest leader term each agent's HA group announced.
    /// Records `epoch` as the agent's newest leader term unless a newer one is recorded; `false` when `epoch` is
    /// older (a stale leader) or the agent is unknown. Repeating the newest epoch is `true` (a reconnect).
    async fn advance_agent_epoch(&self, id: Uuid, epoch: i64) -> Result<bool>;
    /// The newest leader term recorded for the agent; 0 when none was (or the agent is unknown).
    async fn agent_epoch(&self, id: Uuid) -> Result<i64>;
}

/// Opens the store a URL names (`sqlite://path?mode=rwc` or `postgres://...`) and applies its
/// migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL scheme in {:?}: use sqlite:// or postgres://",
            redact_url(url)
        )))
    }
}

/// A database URL safe to print: the password is replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***{}", &url[..scheme_end], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(redact_url("postgres://ss:secret@db:5432/ss"), "postgres://ss:***@db:5432/ss");
        assert_eq!(redact_url("sqlite:///data/ss.db"), "sqlite:///data/ss.db");
    }
}

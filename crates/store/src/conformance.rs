//! The behaviour every [`Store`] backend must show: one public async function per behaviour, each
//! given a fresh, empty store, panicking when the backend falls short.
//!
//! [`conformance_tests!`](crate::conformance_tests) turns every one of them into a
//! `#[tokio::test]` for a backend:
//!
//! ```ignore
//! async fn fresh() -> Option<(Subject, Guard)> { ... }
//! streamspace_store::conformance_tests!(fresh);
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, SubsecRound, Utc};
use ipnet::IpNet;
use serde_json::json;
use sqlx::Executor;
use streamspace_proto::SessionState;
use streamspace_proto::hub::{Capacity, Command, CommandKind, Platform, SessionSpec};
use uuid::Uuid;

use crate::audit::{
    AuditKey, ChainFault, ChainHead, GENESIS_HASH, RecordedHead, content, event_hash, event_mac, verify_store,
};
use crate::sql::{Backend, RowsAffected};
use crate::{
    Agent, AgentCommand, AllowList, AuditEvent, AuditFilter, AuditPage, Caller, CapacityLimit, ClipboardPolicy,
    ComplianceSettings, DeliveryState, HomeScope, IdentityProvider, IdentityProviderPatch, NewAgent, NewApiKey,
    NewAuditEvent, NewExternalIdentity, NewHome, NewIdentityProvider, NewSession, NewShare, NewTemplate, NewUser, Org,
    OrgPatch, Page, Paged, PoolMember, ProviderKind, Quotas, RefreshOutcome, RefreshToken, Result, Role, Scope,
    Session, SessionFilter, SessionPolicy, SessionUpdate, ShareRole, SqlStore, SsoMfaPolicy, SsoPending,
    SsoPendingKind, SsoSignIn, Store, StoreError, Template, TemplateHome, TemplatePatch, Ticket, Timestamp, User,
    UserPatch,
};

/// A backend under test: the store, plus a back door to its database to play an attacker who
/// edits rows directly.
#[async_trait]
pub trait TestStore: Store {
    /// Runs one SQL statement on the database, bypassing the store; answers the rows affected.
    async fn execute_raw(&self, sql: &str) -> Result<u64>;
}

#[async_trait]
impl<DB: Backend> TestStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).execute(self.pool()).await?.rows_affected())
    }
}

/// One `#[tokio::test]` per conformance check. `$fresh` is an async fn answering
/// `Option<(Subject, G)>`: a store on a database of its own, and a guard that disposes
/// of the database when dropped (after the test, passed or failed); `None` skips the test.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each $fresh;
            ping_answers,
            orgs_round_trip,
            org_names_are_unique,
            orgs_cannot_see_each_other,
            orgs_with_users_cannot_be_deleted,
            users_round_trip,
            usernames_are_unique_case_insensitively,
            users_need_an_existing_org,
            users_are_scoped_to_their_org,
            users_with_live_sessions_cannot_be_deleted,
            listings_page_by_id,
            totp_steps_cannot_be_replayed,
            recovery_codes_are_single_use,
            api_keys_round_trip,
            refresh_tokens_rotate_and_detect_reuse,
            expired_refresh_tokens_are_invalid,
            refresh_families_can_be_revoked,
            racing_refresh_rotations_spend_once,
            templates_round_trip,
            template_names_are_unique_per_scope,
            orgs_see_their_own_and_global_templates,
            templates_in_use_cannot_be_deleted,
            homes_are_one_per_user_and_scope,
            home_usage_comes_only_from_the_agent_holding_the_home,
            homes_are_scoped_and_deleted_after_their_user,
            sessions_round_trip,
            sessions_are_scoped_to_their_org,
            session_updates_compare_and_set,
            a_session_change_and_its_audit_record_are_stored_together,
            racing_session_transitions_have_one_winner,
            session_activity_only_moves_forward,
            usage_counts_live_sessions,
            audit_events_chain_and_list,
            audit_is_scoped_to_the_org,
            audit_details_read_back_bit_identical,
            concurrent_audit_appends_form_one_chain,
            audit_tampering_is_detected,
            audit_deletion_is_detected,
            audit_tail_truncation_is_detected,
            audit_head_moved_back_without_the_key_is_detected,
            audit_chain_rewritten_without_the_key_is_detected,
            audit_chain_verified_with_another_key_says_so,
            unkeyed_audit_chains_are_sealed_only_when_adopted,
            audit_rollback_shows_only_against_a_recorded_head,
            retention_prunes_behind_checkpoints_and_the_chain_still_verifies,
            a_tampered_retention_checkpoint_is_detected,
            a_gap_without_a_checkpoint_is_detected,
            retention_refuses_to_vouch_for_an_altered_event,
            compliance_settings_round_trip,
            agents_round_trip,
            agent_names_are_unique,
            agent_tokens_rotate,
            agent_endpoint_networks_are_replaced,
            agent_hellos_and_heartbeats_are_recorded,
            agent_epochs_only_move_forward,
            deleting_an_agent_deletes_its_commands,
            agent_commands_are_pending_until_acked,
            failed_command_acks_keep_the_error,
            racing_command_acks_have_one_winner,
            agent_and_active_session_listings_skip_ended_sessions,
            tickets_are_single_use,
            expired_tickets_are_spent_and_pruned,
            racing_ticket_redemptions_have_one_winner,
            identity_providers_round_trip,
            identity_provider_names_are_unique_per_org,
            identity_providers_are_found_by_domain_when_enabled,
            external_identities_link_one_subject_to_one_user,
            deleting_a_provider_or_user_removes_their_identities,
            sso_pending_tokens_are_single_use_and_expire,
            sso_replays_are_refused_until_they_expire,
            sso_sign_ins_are_found_by_refresh_token,
            ip_allow_lists_round_trip,
            ip_allow_lists_go_with_their_org,
            shares_round_trip_and_replace_per_guest,
            revoking_a_link_revokes_who_joined_through_it,
            pool_members_become_ready_and_are_claimed_once,
            racing_pool_claims_take_distinct_members,
            agent_connections_are_claimed_and_released_by_replica,
            key_fingerprints_are_recorded_once_and_compared,
        );
    };
    (@each $fresh:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                // `_database` lives to the end of the test, then disposes of the database.
                if let Some((store, _database)) = $fresh().await {
                    $crate::conformance::$check(store).await;
                }
            }
        )+
    };
}

/// What each check runs against: shared, so that checks can race the store from several tasks.
pub type Subject = Arc<dyn TestStore>;

// Fixtures.

async fn org(store: &Subject, name: &str) -> Org {
    store.create_org(name, Quotas::default()).await.unwrap()
}

async fn user(store: &Subject, org: &Org, username: &str) -> User {
    let new =
        NewUser { org_id: org.id, username: username.into(), password_hash: "$argon2id$x".into(), role: Role::Member };
    store.create_user(new).await.unwrap()
}

fn new_template(org: Option<&Org>, name: &str) -> NewTemplate {
    NewTemplate {
        org_id: org.map(|o| o.id),
        name: name.into(),
        display_name: format!("{name} (display)"),
        description: "A desktop".into(),
        icon: "icon.svg".into(),
        image: "streamspace/xfce:1".into(),
        env: BTreeMap::from([("LANG".into(), "C.UTF-8".into()), ("A".into(), "1".into())]),
        cpu_millis: 500,
        memory_mb: 1024,
        shm_mb: 256,
        port: 8080,
        tags: vec!["linux".into(), "desktop".into()],
        enabled: true,
        egress_allow: vec!["10.20.30.0/24".parse().unwrap(), "203.0.113.0/24".parse().unwrap()],
        session_policy: SessionPolicy {
            clipboard: ClipboardPolicy::Out,
            microphone: false,
            ..SessionPolicy::default()
        },
        home: TemplateHome { scope: HomeScope::Template, size_mb: Some(2048) },
    }
}

async fn template(store: &Subject, org: Option<&Org>, name: &str) -> Template {
    store.create_template(new_template(org, name)).await.unwrap()
}

async fn session(store: &Subject, owner: &User, template: &Template) -> Session {
    store.create_session(new_session_for(owner, template)).await.unwrap()
}

async fn transition(store: &Subject, session: &Session, from: SessionState, to: SessionState) -> Option<Session> {
    store.update_session(session.id, SessionUpdate::transition(from, to)).await.unwrap()
}

/// An agent whose token hash is `token-<name>`.
fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        platform: Platform::Docker,
        labels: BTreeMap::from([("zone".into(), "eu-1".into())]),
        token_hash: format!("token-{name}"),
        capacity_limit: CapacityLimit::default(),
        endpoint_cidrs: Vec::new(),
    }
}

async fn agent(store: &Subject, name: &str) -> Agent {
    store.create_agent(new_agent(name)).await.unwrap()
}

/// Places a pending session on `agent_id` (scheduled).
async fn place(store: &Subject, session: &Session, agent_id: Uuid) -> Session {
    let update = SessionUpdate {
        agent_id: Some(Some(agent_id)),
        ..SessionUpdate::transition(SessionState::Pending, SessionState::Scheduled)
    };
    store.update_session(session.id, update).await.unwrap().unwrap()
}

/// A command carrying everything a command can, to show it reads back whole.
fn start_command(session: &Session) -> Command {
    Command {
        id: Uuid::now_v7(),
        kind: CommandKind::Start,
        session_id: session.id,
        spec: Some(SessionSpec {
            session_id: session.id,
            org_id: session.org_id,
            owner_id: session.owner_id,
            image: "streamspace/xfce:1".into(),
            env: BTreeMap::from([("LANG".into(), "C.UTF-8".into()), ("QUOTE".into(), "\"é\"".into())]),
            cpu_millis: session.cpu_millis,
            memory_mb: session.memory_mb,
            shm_mb: 256,
            port: 8080,
            egress_allow: vec!["203.0.113.0/24".parse().unwrap()],
            home: None,
        }),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

fn stop_command(session_id: Uuid) -> Command {
    Command { id: Uuid::now_v7(), kind: CommandKind::Stop, session_id, spec: None, traceparent: None }
}

fn event(action: &str, org: Option<&Org>) -> NewAuditEvent {
    NewAuditEvent {
        time: Utc::now(),
        actor_id: None,
        actor_name: "alice".into(),
        org_id: org.map(|o| o.id),
        action: action.into(),
        target: "user:1".into(),
        result: "success".into(),
        client_ip: Some("192.0.2.7".into()),
        user_agent: Some("curl/8".into()),
        trace_id: None,
        details: json!({}),
    }
}

fn refresh_token(user: &User, family_id: Uuid, token_hash: &str, expires_in: Duration) -> RefreshToken {
    let now = micros_now();
    RefreshToken {
        id: Uuid::now_v7(),
        user_id: user.id,
        family_id,
        token_hash: token_hash.into(),
        mfa: true,
        created_at: now,
        expires_at: now + expires_in,
    }
}

/// What the store keeps of the current time.
fn micros_now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

fn is_conflict<T>(result: Result<T>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

fn is_invalid<T>(result: Result<T>) -> bool {
    matches!(result, Err(StoreError::Invalid(_)))
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    items.iter().map(id).collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// Every page of a listing, following the cursors.
async fn pages<T>(limit: u32, list: impl AsyncFn(Page) -> Result<Paged<T>>) -> Vec<Paged<T>> {
    let mut page = Page::first(limit);
    let mut pages = Vec::new();
    loop {
        let paged = list(page).await.unwrap();
        let next = paged.next;
        pages.push(paged);
        match next {
            Some(after) => page.after = Some(after),
            None => return pages,
        }
    }
}

/// Runs `count` copies of `task` at once and answers their results.
async fn race<T, F>(count: usize, mut task: impl FnMut() -> F) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = (0..count).map(|_| tokio::spawn(task())).collect();
    let mut results = Vec::with_capacity(count);
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

/// The key the checks write the audit chain with.
fn key() -> AuditKey {
    AuditKey::new(*b"conformance-audit-key-32-bytes!!")
}

/// Verifies the whole audit chain as `streamspace admin audit verify` does.
async fn verify_chain(store: &Subject) -> Result<i64, ChainFault> {
    verify_with(store, &key()).await
}

async fn verify_with(store: &Subject, key: &AuditKey) -> Result<i64, ChainFault> {
    verify_against(store, key, None).await
}

async fn verify_against(store: &Subject, key: &AuditKey, recorded: Option<&RecordedHead>) -> Result<i64, ChainFault> {
    let store: &dyn Store = store.as_ref();
    verify_store(store, key, recorded).await.unwrap().map(|verified| verified.events)
}

async fn append(store: &Subject, count: usize) {
    for _ in 0..count {
        store.append_audit(&key(), event("user.update", None)).await.unwrap();
    }
}

fn link_fault_at(result: Result<i64, ChainFault>) -> i64 {
    match result {
        Err(ChainFault::Link(broken)) => broken.seq,
        other => panic!("expected a broken link, got {other:?}"),
    }
}

/// Plays someone who holds the database but not the key: relinks every event from `from_seq`
/// on with plain SHA-256 (as before keyed links) and moves the head's link along.
pub async fn relink_with_sha256(store: &Subject, from_seq: i64) {
    let events = store.audit_chain(0, 1000).await.unwrap();
    let mut prev = events.iter().find(|e| e.seq == from_seq - 1).map_or(GENESIS_HASH.to_owned(), |e| e.hash.clone());
    for event in events.iter().filter(|e| e.seq >= from_seq) {
        let hash = event_hash(event.seq, event.id, &content(event), &prev);
        let relinked = store
            .execute_raw(&format!(
                "UPDATE audit_events SET prev_hash = '{prev}', hash = '{hash}' WHERE seq = {}",
                event.seq
            ))
            .await
            .unwrap();
        assert_eq!(relinked, 1);
        prev = hash;
    }
    store.execute_raw(&format!("UPDATE audit_chain_head SET hash = '{prev}'")).await.unwrap();
}

pub const STRIP_THE_SEAL: &str = "UPDATE audit_chain_head SET keyed_from = NULL, key_check = NULL, mac = NULL";

async fn audit(store: &Subject, scope: Scope, filter: AuditFilter) -> Vec<i64> {
    let events = store.list_audit(scope, filter, AuditPage { limit: 100, before_seq: None }).await.unwrap();
    events.iter().map(|e| e.seq).collect()
}

// Checks.

pub async fn ping_answers(store: Subject) {
    store.ping().await.unwrap();
}

pub async fn orgs_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    assert_eq!(acme.name, "acme");
    assert!(!acme.mfa_required);
    assert_eq!(acme.session_policy, SessionPolicy::default(), "everything is allowed until an admin says otherwise");
    assert_eq!(acme.quotas, Quotas::default());
    assert_eq!(store.get_org(Scope::Platform, acme.id).await.unwrap().as_ref(), Some(&acme));
    assert_eq!(store.get_org(Scope::Org(acme.id), acme.id).await.unwrap().as_ref(), Some(&acme));
    assert_eq!(store.get_org_by_name("acme").await.unwrap().as_ref(), Some(&acme));
    assert_eq!(store.get_org_by_name("nobody").await.unwrap(), None);
    assert_eq!(store.get_org(Scope::Platform, Uuid::now_v7()).await.unwrap(), None);

    let quotas = Quotas {
        max_sessions: Some(10),
        max_sessions_per_user: Some(2),
        max_cpu_millis: Some(8000),
        max_memory_mb: None,
    };
    assert_eq!(acme.egress_allow, Vec::<IpNet>::new(), "a new org allows nothing extra");
    let egress_allow: Vec<IpNet> = vec!["10.20.0.0/16".parse().unwrap(), "fd12:3456::/48".parse().unwrap()];
    let limited = store.create_org("limited", quotas).await.unwrap();
    assert_eq!(limited.quotas, quotas, "created with its quotas");
    assert_eq!(store.get_org(Scope::Platform, limited.id).await.unwrap(), Some(limited));
    let patch = OrgPatch {
        name: Some("acme-2".into()),
        mfa_required: Some(true),
        session_policy: Some(SessionPolicy {
            clipboard: ClipboardPolicy::In,
            audio: false,
            ..SessionPolicy::default()
        }),
        quotas: Some(quotas),
        egress_allow: Some(egress_allow.clone()),
        sso_mfa: Some(SsoMfaPolicy::TrustIdp),
    };
    assert_eq!(acme.sso_mfa, SsoMfaPolicy::RequireTotp, "nothing external counts as MFA until an admin says so");
    let updated = store.update_org(Scope::Platform, acme.id, patch).await.unwrap().unwrap();
    let expected = Org {
        name: "acme-2".into(),
        mfa_required: true,
        session_policy: SessionPolicy { clipboard: ClipboardPolicy::In, audio: false, ..SessionPolicy::default() },
        quotas,
        egress_allow,
        sso_mfa: SsoMfaPolicy::TrustIdp,
        ..acme.clone()
    };
    assert_eq!(updated, expected);
    // An empty patch changes nothing; quotas are replaced as a whole (`None` is unlimited).
    assert_eq!(store.update_org(Scope::Platform, acme.id, OrgPatch::default()).await.unwrap().as_ref(), Some(&updated));
    let unlimited = OrgPatch { quotas: Some(Quotas::default()), ..OrgPatch::default() };
    let cleared = store.update_org(Scope::Org(acme.id), acme.id, unlimited).await.unwrap().unwrap();
    assert_eq!(cleared.quotas, Quotas::default());
    assert_eq!(store.get_org(Scope::Platform, acme.id).await.unwrap(), Some(cleared));

    assert!(store.delete_org(Scope::Platform, acme.id).await.unwrap());
    assert_eq!(store.get_org(Scope::Platform, acme.id).await.unwrap(), None);
    assert!(!store.delete_org(Scope::Platform, acme.id).await.unwrap());
    assert_eq!(store.update_org(Scope::Platform, acme.id, OrgPatch::default()).await.unwrap(), None);
}

pub async fn org_names_are_unique(store: Subject) {
    org(&store, "acme").await;
    assert!(is_conflict(store.create_org("acme", Quotas::default()).await));
    let other = org(&store, "other").await;
    let rename = OrgPatch { name: Some("acme".into()), ..OrgPatch::default() };
    assert!(is_conflict(store.update_org(Scope::Platform, other.id, rename).await));
    assert_eq!(store.get_org(Scope::Platform, other.id).await.unwrap(), Some(other));
}

pub async fn orgs_cannot_see_each_other(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    let in_a = Scope::Org(a.id);
    assert_eq!(store.get_org(in_a, b.id).await.unwrap(), None);
    assert_eq!(store.list_orgs(in_a, Page::default()).await.unwrap(), Paged { items: vec![a.clone()], next: None });
    assert_eq!(store.list_orgs(Scope::Platform, Page::default()).await.unwrap().items, vec![a, b.clone()]);
    let patch = OrgPatch { mfa_required: Some(true), ..OrgPatch::default() };
    assert_eq!(store.update_org(in_a, b.id, patch).await.unwrap(), None);
    assert!(!store.delete_org(in_a, b.id).await.unwrap());
    assert_eq!(store.get_org(Scope::Platform, b.id).await.unwrap(), Some(b));
}

pub async fn orgs_with_users_cannot_be_deleted(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let own = template(&store, Some(&acme), "desktop").await;
    assert!(is_invalid(store.delete_org(Scope::Platform, acme.id).await));
    assert!(store.get_org(Scope::Platform, acme.id).await.unwrap().is_some());
    assert!(store.delete_user(Scope::Platform, alice.id).await.unwrap());
    assert!(store.delete_org(Scope::Platform, acme.id).await.unwrap());
    // The org's templates go with it.
    assert_eq!(store.get_template(Scope::Platform, own.id).await.unwrap(), None);
}

pub async fn users_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "Alice").await;
    assert_eq!((alice.org_id, alice.username.as_str(), alice.role), (acme.id, "Alice", Role::Member));
    assert_eq!(alice.password_hash, "$argon2id$x");
    assert!(!alice.disabled && !alice.mfa_enabled);
    assert_eq!((alice.mfa_secret.as_deref(), alice.mfa_last_step), (None, None));
    assert_eq!(alice.created_at, alice.updated_at);
    assert_eq!(store.get_user(Scope::Platform, alice.id).await.unwrap().as_ref(), Some(&alice));
    assert_eq!(store.get_user(Scope::Org(acme.id), alice.id).await.unwrap().as_ref(), Some(&alice));
    let caller = store.get_caller(alice.id).await.unwrap();
    assert_eq!(caller, Some(Caller { user: alice.clone(), org_mfa_required: false }));
    let requires_mfa = OrgPatch { mfa_required: Some(true), ..OrgPatch::default() };
    store.update_org(Scope::Platform, acme.id, requires_mfa).await.unwrap();
    assert!(store.get_caller(alice.id).await.unwrap().unwrap().org_mfa_required);
    assert_eq!(store.get_caller(Uuid::from_u128(7)).await.unwrap(), None);
    for name in ["Alice", "alice", "ALICE"] {
        assert_eq!(store.get_user_by_username(name).await.unwrap().as_ref(), Some(&alice), "{name}");
    }
    assert_eq!(store.get_user_by_username("bob").await.unwrap(), None);

    let patch = UserPatch {
        role: Some(Role::OrgAdmin),
        disabled: Some(true),
        password_hash: Some("$argon2id$y".into()),
        mfa_secret: Some(Some("sealed".into())),
        mfa_enabled: Some(true),
        sessions_revoked_at: Some(micros_now()),
    };
    let patch_time = patch.sessions_revoked_at;
    assert_eq!(alice.sessions_revoked_at, None);
    let updated = store.update_user(Scope::Org(acme.id), alice.id, patch).await.unwrap().unwrap();
    assert!(updated.updated_at >= alice.updated_at);
    let expected = User {
        role: Role::OrgAdmin,
        disabled: true,
        password_hash: "$argon2id$y".into(),
        mfa_secret: Some("sealed".into()),
        mfa_enabled: true,
        sessions_revoked_at: patch_time,
        updated_at: updated.updated_at,
        ..alice.clone()
    };
    assert_eq!(updated, expected);
    // `None` leaves a field alone, `Some(None)` clears a nullable one.
    let unchanged = store.update_user(Scope::Platform, alice.id, UserPatch::default()).await.unwrap().unwrap();
    assert_eq!(unchanged, User { updated_at: unchanged.updated_at, ..updated.clone() });
    let clear = UserPatch { mfa_secret: Some(None), ..UserPatch::default() };
    let cleared = store.update_user(Scope::Platform, alice.id, clear).await.unwrap().unwrap();
    assert_eq!(cleared, User { mfa_secret: None, updated_at: cleared.updated_at, ..updated });
    assert_eq!(store.get_user(Scope::Platform, alice.id).await.unwrap(), Some(cleared));
    assert_eq!(store.update_user(Scope::Platform, Uuid::now_v7(), UserPatch::default()).await.unwrap(), None);
}

pub async fn usernames_are_unique_case_insensitively(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    user(&store, &a, "alice").await;
    for (org, name) in [(&a, "alice"), (&b, "ALICE"), (&b, "Alice")] {
        let new = NewUser { org_id: org.id, username: name.into(), password_hash: "h".into(), role: Role::Member };
        assert!(is_conflict(store.create_user(new).await), "{name}");
    }
    // Case folding is Unicode-aware on every backend.
    user(&store, &a, "Émile").await;
    let new = NewUser { org_id: b.id, username: "émile".into(), password_hash: "h".into(), role: Role::Member };
    assert!(is_conflict(store.create_user(new).await));
    assert_eq!(store.get_user_by_username("ÉMILE").await.unwrap().unwrap().username, "Émile");
}

pub async fn users_need_an_existing_org(store: Subject) {
    let new =
        NewUser { org_id: Uuid::now_v7(), username: "ghost".into(), password_hash: "h".into(), role: Role::Member };
    assert!(is_invalid(store.create_user(new).await));
}

pub async fn users_are_scoped_to_their_org(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    let alice = user(&store, &a, "alice").await;
    let bob = user(&store, &b, "bob").await;
    let in_a = Scope::Org(a.id);
    assert_eq!(store.get_user(in_a, bob.id).await.unwrap(), None);
    assert_eq!(store.list_users(in_a, Page::default()).await.unwrap().items, vec![alice.clone()]);
    let patch = UserPatch { disabled: Some(true), ..UserPatch::default() };
    assert_eq!(store.update_user(in_a, bob.id, patch).await.unwrap(), None);
    assert!(!store.delete_user(in_a, bob.id).await.unwrap());
    assert_eq!(store.get_user(Scope::Org(b.id), bob.id).await.unwrap(), Some(bob.clone()));
    assert_eq!(store.list_users(Scope::Platform, Page::default()).await.unwrap().items, vec![alice, bob]);
}

pub async fn users_with_live_sessions_cannot_be_deleted(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, Some(&acme), "desktop").await;
    let running = session(&store, &alice, &desktop).await;
    let key = NewApiKey {
        user_id: alice.id,
        org_id: acme.id,
        name: "ci".into(),
        prefix: "ssk_1".into(),
        key_hash: "key-hash".into(),
        expires_at: None,
        mfa: false,
    };
    store.create_api_key(key).await.unwrap();
    store.insert_refresh_token(refresh_token(&alice, Uuid::now_v7(), "token", Duration::hours(1))).await.unwrap();
    store.replace_recovery_codes(alice.id, &["code".into()]).await.unwrap();

    assert!(is_invalid(store.delete_user(Scope::Platform, alice.id).await));
    assert!(store.get_user(Scope::Platform, alice.id).await.unwrap().is_some());
    transition(&store, &running, SessionState::Pending, SessionState::Stopped).await.unwrap();
    assert!(store.delete_user(Scope::Org(acme.id), alice.id).await.unwrap());
    assert_eq!(store.get_user(Scope::Platform, alice.id).await.unwrap(), None);
    // Their API keys, refresh tokens and recovery codes went with them.
    assert_eq!(store.find_api_key("key-hash").await.unwrap(), None);
    assert_eq!(store.rotate_refresh_token("token", Utc::now()).await.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 0);
    assert!(!store.delete_user(Scope::Platform, alice.id).await.unwrap());
}

pub async fn listings_page_by_id(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let mut users = Vec::new();
    for i in 0..7 {
        users.push(user(&store, &acme, &format!("user{i}")).await);
        user(&store, &other, &format!("other{i}")).await;
    }
    let expected = sorted(ids(&users, |u| u.id));
    let scope = Scope::Org(acme.id);

    let paged = pages(3, async |page| store.list_users(scope, page).await).await;
    let sizes: Vec<usize> = paged.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    for page in &paged[..2] {
        assert_eq!(page.next, page.items.last().map(|u| u.id), "the cursor is the last id of a page");
    }
    let listed: Vec<Uuid> = paged.iter().flat_map(|p| ids(&p.items, |u| u.id)).collect();
    assert_eq!(listed, expected);
    // A page that ends the listing exactly has no cursor.
    let exact = pages(7, async |page| store.list_users(scope, page).await).await;
    assert_eq!((exact.len(), exact[0].items.len()), (1, 7));
    assert!(
        store.list_users(scope, Page { limit: 2, after: expected.last().copied() }).await.unwrap().items.is_empty()
    );

    // Sessions and templates page the same way, with filters applied before the limit.
    let desktop = template(&store, None, "desktop").await;
    let mut sessions = Vec::new();
    for owner in &users {
        sessions.push(session(&store, owner, &desktop).await);
    }
    for stopped in &sessions[..3] {
        transition(&store, stopped, SessionState::Pending, SessionState::Stopped).await.unwrap();
    }
    let pending = SessionFilter { owner_id: None, state: Some(SessionState::Pending) };
    let paged = pages(2, async |page| store.list_sessions(scope, pending.clone(), page).await).await;
    let listed: Vec<Uuid> = paged.iter().flat_map(|p| ids(&p.items, |s| s.id)).collect();
    assert_eq!(listed, sorted(ids(&sessions[3..], |s| s.id)));
    let mut templates = vec![desktop];
    for i in 0..4 {
        templates.push(template(&store, Some(&acme), &format!("t{i}")).await);
    }
    let paged = pages(2, async |page| store.list_templates(scope, page).await).await;
    let listed: Vec<Uuid> = paged.iter().flat_map(|p| ids(&p.items, |t| t.id)).collect();
    assert_eq!(listed, sorted(ids(&templates, |t| t.id)));
    let paged = pages(1, async |page| store.list_orgs(Scope::Platform, page).await).await;
    assert_eq!(paged.iter().flat_map(|p| ids(&p.items, |o| o.id)).collect::<Vec<_>>(), sorted(vec![acme.id, other.id]));
}

pub async fn totp_steps_cannot_be_replayed(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    assert!(store.claim_totp_step(alice.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(alice.id, 100).await.unwrap(), "the same step twice");
    assert!(!store.claim_totp_step(alice.id, 99).await.unwrap(), "an earlier step");
    assert!(store.claim_totp_step(alice.id, 101).await.unwrap());
    assert_eq!(store.get_user(Scope::Platform, alice.id).await.unwrap().unwrap().mfa_last_step, Some(101));
    assert!(!store.claim_totp_step(Uuid::now_v7(), 1).await.unwrap());

    let claims = race(10, || {
        let store = store.clone();
        async move { store.claim_totp_step(alice.id, 200).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|won| **won).count(), 1, "one of racing claims of a step wins");
}

pub async fn recovery_codes_are_single_use(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let codes: Vec<String> = ["a", "b", "c"].map(String::from).into();
    store.replace_recovery_codes(alice.id, &codes).await.unwrap();
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 3);
    assert!(store.use_recovery_code(alice.id, "b").await.unwrap());
    assert!(!store.use_recovery_code(alice.id, "b").await.unwrap(), "spent");
    assert!(!store.use_recovery_code(alice.id, "zzz").await.unwrap(), "unknown");
    assert!(!store.use_recovery_code(bob.id, "a").await.unwrap(), "another user's");
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 2);

    // Replacing discards the old codes; duplicates count once.
    store.replace_recovery_codes(alice.id, &["x".into(), "x".into(), "y".into()]).await.unwrap();
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 2);
    assert!(!store.use_recovery_code(alice.id, "a").await.unwrap());
    let uses = race(10, || {
        let store = store.clone();
        async move { store.use_recovery_code(alice.id, "x").await.unwrap() }
    })
    .await;
    assert_eq!(uses.iter().filter(|used| **used).count(), 1, "one of racing uses of a code wins");
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 1);
    store.replace_recovery_codes(alice.id, &[]).await.unwrap();
    assert_eq!(store.remaining_recovery_codes(alice.id).await.unwrap(), 0);
    assert!(is_invalid(store.replace_recovery_codes(Uuid::now_v7(), &["a".into()]).await));
}

pub async fn api_keys_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let new_key = |name: &str, hash: &str| NewApiKey {
        user_id: alice.id,
        org_id: acme.id,
        name: name.into(),
        prefix: format!("ssk_{name}"),
        key_hash: hash.into(),
        expires_at: None,
        mfa: false,
    };
    let ci = store.create_api_key(new_key("ci", "hash-ci")).await.unwrap();
    assert_eq!((ci.user_id, ci.org_id, ci.name.as_str(), ci.prefix.as_str()), (alice.id, acme.id, "ci", "ssk_ci"));
    assert_eq!((ci.key_hash.as_str(), ci.last_used_at, ci.expires_at, ci.mfa), ("hash-ci", None, None, false));
    let expiry = micros_now() + Duration::days(30);
    let laptop = NewApiKey { expires_at: Some(expiry), mfa: true, ..new_key("laptop", "hash-laptop") };
    let laptop = store.create_api_key(laptop).await.unwrap();
    assert_eq!((laptop.expires_at, laptop.mfa), (Some(expiry), true), "expiry and MFA are kept");
    assert_eq!(store.list_api_keys(alice.id).await.unwrap(), [ci.clone(), laptop.clone()]);
    assert!(store.list_api_keys(bob.id).await.unwrap().is_empty());
    assert_eq!(store.find_api_key("hash-ci").await.unwrap().as_ref(), Some(&ci));
    assert_eq!(store.find_api_key("nope").await.unwrap(), None);
    assert!(is_conflict(store.create_api_key(new_key("again", "hash-ci")).await));
    let wrong_org = NewApiKey { org_id: other.id, ..new_key("x", "hash-x") };
    assert!(is_invalid(store.create_api_key(wrong_org).await), "a key's org is its user's");

    // Last use only moves forward.
    let t1 = micros_now();
    store.touch_api_key(ci.id, t1).await.unwrap();
    store.touch_api_key(ci.id, t1 - Duration::minutes(1)).await.unwrap();
    assert_eq!(store.find_api_key("hash-ci").await.unwrap().unwrap().last_used_at, Some(t1));
    let t2 = t1 + Duration::seconds(1);
    store.touch_api_key(ci.id, t2).await.unwrap();
    assert_eq!(store.find_api_key("hash-ci").await.unwrap().unwrap().last_used_at, Some(t2));

    assert!(!store.delete_api_key(bob.id, ci.id).await.unwrap(), "only its user deletes a key");
    assert!(store.delete_api_key(alice.id, ci.id).await.unwrap());
    assert!(!store.delete_api_key(alice.id, ci.id).await.unwrap());
    assert_eq!(store.find_api_key("hash-ci").await.unwrap(), None);
    assert_eq!(store.list_api_keys(alice.id).await.unwrap(), [laptop]);

    // Revoking all of a user's keys leaves other users' keys alone.
    store.create_api_key(new_key("tablet", "hash-tablet")).await.unwrap();
    let bobs = store.create_api_key(NewApiKey { user_id: bob.id, ..new_key("bob", "hash-bob") }).await.unwrap();
    assert_eq!(store.delete_user_api_keys(alice.id).await.unwrap(), 2);
    assert!(store.list_api_keys(alice.id).await.unwrap().is_empty());
    assert_eq!(store.find_api_key("hash-laptop").await.unwrap(), None);
    assert_eq!(store.list_api_keys(bob.id).await.unwrap(), [bobs]);
    assert_eq!(store.delete_user_api_keys(alice.id).await.unwrap(), 0);
}

pub async fn refresh_tokens_rotate_and_detect_reuse(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let family = Uuid::now_v7();
    let first = refresh_token(&alice, family, "t1", Duration::hours(1));
    store.insert_refresh_token(first.clone()).await.unwrap();
    assert!(is_conflict(store.insert_refresh_token(first.clone()).await));
    assert_eq!(store.rotate_refresh_token("t1", Utc::now()).await.unwrap(), RefreshOutcome::Rotated(first));
    let second = refresh_token(&alice, family, "t2", Duration::hours(1));
    store.insert_refresh_token(second.clone()).await.unwrap();
    let elsewhere = refresh_token(&alice, Uuid::now_v7(), "other-login", Duration::hours(1));
    store.insert_refresh_token(elsewhere.clone()).await.unwrap();

    // Replaying the spent token revokes its whole family, successor included.
    let reused = RefreshOutcome::Reused { user_id: alice.id, family_id: family };
    assert_eq!(store.rotate_refresh_token("t1", Utc::now()).await.unwrap(), reused);
    assert_eq!(store.rotate_refresh_token("t2", Utc::now()).await.unwrap(), reused);
    // A successor issued after the replay is born revoked.
    store.insert_refresh_token(refresh_token(&alice, family, "t3", Duration::hours(1))).await.unwrap();
    assert_eq!(store.rotate_refresh_token("t3", Utc::now()).await.unwrap(), reused);
    // Other logins are untouched.
    assert_eq!(
        store.rotate_refresh_token("other-login", Utc::now()).await.unwrap(),
        RefreshOutcome::Rotated(elsewhere)
    );
    assert_eq!(store.rotate_refresh_token("unknown", Utc::now()).await.unwrap(), RefreshOutcome::Invalid);
    let ghost = RefreshToken { user_id: Uuid::now_v7(), ..refresh_token(&alice, family, "t4", Duration::hours(1)) };
    assert!(is_invalid(store.insert_refresh_token(ghost).await));
}

pub async fn expired_refresh_tokens_are_invalid(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let token = refresh_token(&alice, Uuid::now_v7(), "t1", Duration::minutes(5));
    store.insert_refresh_token(token.clone()).await.unwrap();
    assert_eq!(store.rotate_refresh_token("t1", token.expires_at).await.unwrap(), RefreshOutcome::Invalid);
    let later = token.expires_at + Duration::days(1);
    assert_eq!(store.rotate_refresh_token("t1", later).await.unwrap(), RefreshOutcome::Invalid);
    // Expiry is not reuse: the family survives, and the token still works before it expires.
    let before = token.expires_at - Duration::microseconds(1);
    assert_eq!(store.rotate_refresh_token("t1", before).await.unwrap(), RefreshOutcome::Rotated(token));
}

pub async fn refresh_families_can_be_revoked(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let family = Uuid::now_v7();
    for hash in ["a1", "a2"] {
        store.insert_refresh_token(refresh_token(&alice, family, hash, Duration::hours(1))).await.unwrap();
    }
    let other_family = Uuid::now_v7();
    store.insert_refresh_token(refresh_token(&alice, other_family, "b1", Duration::hours(1))).await.unwrap();
    let bobs = refresh_token(&bob, Uuid::now_v7(), "c1", Duration::hours(1));
    store.insert_refresh_token(bobs.clone()).await.unwrap();

    // Logout: the family is revoked, and presenting a revoked token counts as reuse.
    assert!(store.revoke_refresh_family("a1").await.unwrap());
    assert!(!store.revoke_refresh_family("unknown").await.unwrap());
    let reused = RefreshOutcome::Reused { user_id: alice.id, family_id: family };
    assert_eq!(store.rotate_refresh_token("a2", Utc::now()).await.unwrap(), reused);

    // Every token of the user, whatever the family; other users untouched.
    store.revoke_user_refresh_tokens(alice.id).await.unwrap();
    let reused = RefreshOutcome::Reused { user_id: alice.id, family_id: other_family };
    assert_eq!(store.rotate_refresh_token("b1", Utc::now()).await.unwrap(), reused);
    assert_eq!(store.rotate_refresh_token("c1", Utc::now()).await.unwrap(), RefreshOutcome::Rotated(bobs));
}

pub async fn racing_refresh_rotations_spend_once(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let token = refresh_token(&alice, Uuid::now_v7(), "t1", Duration::hours(1));
    store.insert_refresh_token(token.clone()).await.unwrap();
    let outcomes = race(10, || {
        let store = store.clone();
        async move { store.rotate_refresh_token("t1", Utc::now()).await.unwrap() }
    })
    .await;
    let rotated = outcomes.iter().filter(|o| matches!(o, RefreshOutcome::Rotated(_))).count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    let reused = RefreshOutcome::Reused { user_id: alice.id, family_id: token.family_id };
    assert!(outcomes.iter().all(|o| matches!(o, RefreshOutcome::Rotated(_)) || *o == reused), "{outcomes:?}");
}

pub async fn templates_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let new = new_template(Some(&acme), "desktop");
    let created = store.create_template(new.clone()).await.unwrap();
    let expected = Template {
        id: created.id,
        org_id: new.org_id,
        name: new.name,
        display_name: new.display_name,
        description: new.description,
        icon: new.icon,
        image: new.image,
        env: new.env,
        cpu_millis: new.cpu_millis,
        memory_mb: new.memory_mb,
        shm_mb: new.shm_mb,
        port: new.port,
        tags: new.tags,
        enabled: new.enabled,
        egress_allow: new.egress_allow,
        session_policy: new.session_policy,
        home: new.home,
        created_at: created.created_at,
        updated_at: created.created_at,
    };
    assert_eq!(created, expected);
    assert_eq!(store.get_template(Scope::Platform, created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get_template(Scope::Org(acme.id), created.id).await.unwrap().as_ref(), Some(&created));

    let patch = TemplatePatch {
        display_name: Some("Desktop".into()),
        description: Some("Changed".into()),
        icon: Some("new.svg".into()),
        image: Some("streamspace/xfce:2".into()),
        env: Some(BTreeMap::from([("B".into(), "2".into())])),
        cpu_millis: Some(1000),
        memory_mb: Some(2048),
        shm_mb: Some(512),
        port: Some(3000),
        tags: Some(vec![]),
        enabled: Some(false),
        egress_allow: Some(vec![]),
        session_policy: Some(SessionPolicy { file_download: false, ..SessionPolicy::default() }),
        home: Some(TemplateHome::default()),
    };
    let updated = store.update_template(Scope::Org(acme.id), created.id, patch.clone()).await.unwrap().unwrap();
    assert!(updated.updated_at >= created.updated_at);
    let expected = Template {
        display_name: "Desktop".into(),
        description: "Changed".into(),
        icon: "new.svg".into(),
        image: "streamspace/xfce:2".into(),
        env: patch.env.unwrap(),
        cpu_millis: 1000,
        memory_mb: 2048,
        shm_mb: 512,
        port: 3000,
        tags: vec![],
        enabled: false,
        egress_allow: vec![],
        session_policy: SessionPolicy { file_download: false, ..SessionPolicy::default() },
        home: TemplateHome::default(),
        updated_at: updated.updated_at,
        ..created.clone()
    };
    assert_eq!(updated, expected);
    let unchanged =
        store.update_template(Scope::Platform, created.id, TemplatePatch::default()).await.unwrap().unwrap();
    assert_eq!(unchanged, Template { updated_at: unchanged.updated_at, ..updated });

    assert!(store.delete_template(Scope::Org(acme.id), created.id).await.unwrap());
    assert_eq!(store.get_template(Scope::Platform, created.id).await.unwrap(), None);
    assert!(!store.delete_template(Scope::Platform, created.id).await.unwrap());
    assert_eq!(store.update_template(Scope::Platform, created.id, TemplatePatch::default()).await.unwrap(), None);
    let orphan = NewTemplate { org_id: Some(Uuid::now_v7()), ..new_template(None, "orphan") };
    assert!(is_invalid(store.create_template(orphan).await));
}

pub async fn template_names_are_unique_per_scope(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    template(&store, None, "desktop").await;
    assert!(is_conflict(store.create_template(new_template(None, "desktop")).await), "among globals");
    template(&store, Some(&a), "desktop").await;
    assert!(is_conflict(store.create_template(new_template(Some(&a), "desktop")).await), "within an org");
    template(&store, Some(&b), "desktop").await;
}

pub async fn orgs_see_their_own_and_global_templates(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    let c = org(&store, "c").await;
    let global = template(&store, None, "desktop").await;
    let a_desktop = template(&store, Some(&a), "desktop").await;
    let a_ide = template(&store, Some(&a), "ide").await;
    let b_desktop = template(&store, Some(&b), "desktop").await;
    let (in_a, in_b, in_c) = (Scope::Org(a.id), Scope::Org(b.id), Scope::Org(c.id));

    assert_eq!(store.get_template(in_a, global.id).await.unwrap().as_ref(), Some(&global));
    assert_eq!(store.get_template(in_a, a_ide.id).await.unwrap().as_ref(), Some(&a_ide));
    assert_eq!(store.get_template(in_a, b_desktop.id).await.unwrap(), None);

    // By name, an org's own template shadows a global one.
    let by_name =
        async |scope: Scope, name: &'static str| store.get_template_by_name(scope, name).await.unwrap().map(|t| t.id);
    assert_eq!(by_name(in_a, "desktop").await, Some(a_desktop.id));
    assert_eq!(by_name(in_b, "desktop").await, Some(b_desktop.id));
    assert_eq!(by_name(in_c, "desktop").await, Some(global.id));
    assert_eq!(by_name(Scope::Platform, "desktop").await, Some(global.id));
    assert_eq!(by_name(in_a, "ide").await, Some(a_ide.id));
    assert_eq!(by_name(in_b, "ide").await, None);

    let listed = store.list_templates(in_a, Page::default()).await.unwrap().items;
    assert_eq!(ids(&listed, |t| t.id), sorted(vec![global.id, a_desktop.id, a_ide.id]));
    let listed = store.list_templates(Scope::Platform, Page::default()).await.unwrap().items;
    assert_eq!(listed.len(), 4);

    // An org changes its own templates only: not another org's, nor the global ones.
    let patch = TemplatePatch { enabled: Some(false), ..TemplatePatch::default() };
    assert_eq!(store.update_template(in_a, b_desktop.id, patch.clone()).await.unwrap(), None);
    assert_eq!(store.update_template(in_a, global.id, patch.clone()).await.unwrap(), None);
    assert!(!store.delete_template(in_a, b_desktop.id).await.unwrap());
    assert!(!store.delete_template(in_a, global.id).await.unwrap());
    assert_eq!(store.get_template(Scope::Platform, b_desktop.id).await.unwrap(), Some(b_desktop));
    assert_eq!(store.get_template(Scope::Platform, global.id).await.unwrap().as_ref(), Some(&global));
    assert!(!store.update_template(Scope::Platform, global.id, patch).await.unwrap().unwrap().enabled);
}

pub async fn homes_are_one_per_user_and_scope(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, Some(&acme), "desktop").await;
    let now = Utc::now().trunc_subsecs(6);
    let new =
        |template_id: Option<Uuid>| NewHome { org_id: acme.id, user_id: alice.id, template_id, size_mb: Some(512) };
    let own = store.home_for(new(None), now).await.unwrap();
    assert_eq!((own.user_id, own.template_id, own.agent_id, own.size_mb), (alice.id, None, None, Some(512)));
    assert_eq!((own.created_at, own.last_used_at, own.delete_after), (now, None, None));
    let later = now + Duration::minutes(5);
    assert_eq!(store.home_for(new(None), later).await.unwrap(), own, "found again, not created twice");
    let for_desktop = store.home_for(new(Some(desktop.id)), now).await.unwrap();
    assert_ne!(for_desktop.id, own.id, "a template's home is another home");
    assert_eq!(for_desktop.template_id, Some(desktop.id));

    let docker = agent(&store, "docker-1").await;
    store.record_home_use(own.id, docker.id, later).await.unwrap();
    let used = store.get_home(Scope::Platform, own.id).await.unwrap().unwrap();
    assert_eq!((used.agent_id, used.last_used_at), (Some(docker.id), Some(later)));
    assert_eq!(
        store.list_homes(Scope::Platform, Some(alice.id)).await.unwrap(),
        vec![used.clone(), for_desktop.clone()]
    );

    assert!(store.delete_home(own.id).await.unwrap());
    assert!(!store.delete_home(own.id).await.unwrap(), "deleted once");
    let fresh = store.home_for(new(None), later).await.unwrap();
    assert_ne!(fresh.id, own.id, "after a reset the next session gets a new, empty home");
    assert_eq!(fresh.agent_id, None);
}

pub async fn home_usage_comes_only_from_the_agent_holding_the_home(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let now = Utc::now().trunc_subsecs(6);
    let new = NewHome { org_id: acme.id, user_id: alice.id, template_id: None, size_mb: None };
    let home = store.home_for(new, now).await.unwrap();
    assert_eq!((home.used_bytes, home.usage_measured_at), (None, None), "not measured until reported");
    let holder = agent(&store, "docker-1").await;
    let other = agent(&store, "docker-2").await;
    assert!(
        !store.record_home_usage(home.id, holder.id, 1, now).await.unwrap(),
        "a home no session mounted yet is held by no agent"
    );
    store.record_home_use(home.id, holder.id, now).await.unwrap();

    let measured = now + Duration::seconds(60);
    assert!(store.record_home_usage(home.id, holder.id, 5 << 20, measured).await.unwrap());
    assert!(!store.record_home_usage(home.id, other.id, 1, measured + Duration::seconds(1)).await.unwrap());
    assert!(!store.record_home_usage(Uuid::now_v7(), holder.id, 1, measured).await.unwrap(), "no such home");
    let stored = store.get_home(Scope::Org(acme.id), home.id).await.unwrap().unwrap();
    assert_eq!((stored.used_bytes, stored.usage_measured_at), (Some(5 << 20), Some(measured)));
    assert_eq!(store.list_homes(Scope::Org(acme.id), Some(alice.id)).await.unwrap(), vec![stored.clone()]);

    store.record_home_use(home.id, holder.id, measured + Duration::minutes(1)).await.unwrap();
    let again = store.get_home(Scope::Platform, home.id).await.unwrap().unwrap();
    assert_eq!(again.used_bytes, Some(5 << 20), "mounted again where it is: its usage stands");
    store.record_home_use(home.id, other.id, measured + Duration::minutes(2)).await.unwrap();
    let moved = store.get_home(Scope::Platform, home.id).await.unwrap().unwrap();
    assert_eq!((moved.used_bytes, moved.usage_measured_at), (None, None), "a new volume elsewhere is not measured");
    assert!(store.record_home_usage(home.id, other.id, 7, measured + Duration::minutes(3)).await.unwrap());
    assert!(!store.record_home_usage(home.id, holder.id, 1, measured + Duration::minutes(3)).await.unwrap());
}

pub async fn homes_are_scoped_and_deleted_after_their_user(store: Subject) {
    let acme = org(&store, "acme").await;
    let globex = org(&store, "globex").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let now = Utc::now().trunc_subsecs(6);
    let home_of = |user: &User| NewHome { org_id: user.org_id, user_id: user.id, template_id: None, size_mb: None };
    let alices = store.home_for(home_of(&alice), now).await.unwrap();
    let bobs = store.home_for(home_of(&bob), now).await.unwrap();
    assert_eq!(
        store.get_home(Scope::Org(globex.id), alices.id).await.unwrap(),
        None,
        "another org's home is not found"
    );
    assert!(store.list_homes(Scope::Org(globex.id), None).await.unwrap().is_empty());
    assert_eq!(store.list_homes(Scope::Org(acme.id), None).await.unwrap().len(), 2);

    let grace_over = now + Duration::days(7);
    assert!(store.delete_user(Scope::Platform, alice.id).await.unwrap());
    assert_eq!(store.mark_user_homes_for_deletion(alice.id, grace_over).await.unwrap(), 1);
    assert_eq!(
        store.mark_user_homes_for_deletion(alice.id, grace_over + Duration::days(1)).await.unwrap(),
        0,
        "marked once"
    );
    let kept = store.get_home(Scope::Platform, alices.id).await.unwrap().unwrap();
    assert_eq!(kept.delete_after, Some(grace_over), "a deleted user's home outlives them for the grace period");
    assert!(store.due_homes(grace_over - Duration::seconds(1)).await.unwrap().is_empty());
    assert_eq!(store.due_homes(grace_over).await.unwrap(), vec![kept]);
    assert!(store.get_home(Scope::Platform, bobs.id).await.unwrap().unwrap().delete_after.is_none());
}

pub async fn templates_in_use_cannot_be_deleted(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, Some(&acme), "desktop").await;
    let live = session(&store, &alice, &desktop).await;
    assert!(is_invalid(store.delete_template(Scope::Platform, desktop.id).await));
    transition(&store, &live, SessionState::Pending, SessionState::Failed).await.unwrap();
    assert!(store.delete_template(Scope::Org(acme.id), desktop.id).await.unwrap());
    // The session's record outlives its template.
    assert_eq!(store.get_session(Scope::Platform, live.id).await.unwrap().unwrap().template_id, desktop.id);
}

pub async fn sessions_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let desktop = template(&store, None, "desktop").await;
    let created = session(&store, &alice, &desktop).await;
    let expected = Session {
        id: created.id,
        org_id: acme.id,
        owner_id: alice.id,
        template_id: desktop.id,
        state: SessionState::Pending,
        agent_id: None,
        endpoint: None,
        phase: None,
        progress: None,
        failure_reason: None,
        cpu_millis: 500,
        memory_mb: 1024,
        created_at: created.created_at,
        updated_at: created.created_at,
        started_at: None,
        stopped_at: None,
        last_activity_at: None,
    };
    assert_eq!(created, expected);
    assert_eq!(store.get_session(Scope::Platform, created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get_session(Scope::Org(acme.id), created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get_session(Scope::Platform, Uuid::now_v7()).await.unwrap(), None);

    let bobs = session(&store, &bob, &desktop).await;
    let running = transition(&store, &bobs, SessionState::Pending, SessionState::Running).await.unwrap();
    let list = async |filter: SessionFilter| {
        store.list_sessions(Scope::Org(acme.id), filter, Page::default()).await.unwrap().items
    };
    assert_eq!(list(SessionFilter::default()).await, [created.clone(), running.clone()]);
    assert_eq!(list(SessionFilter { owner_id: Some(alice.id), state: None }).await, [created]);
    assert_eq!(list(SessionFilter { owner_id: None, state: Some(SessionState::Running) }).await, [running]);
    let both = SessionFilter { owner_id: Some(alice.id), state: Some(SessionState::Running) };
    assert!(list(both).await.is_empty());

    let like = |org_id, owner_id| NewSession { org_id, owner_id, template_id: desktop.id, cpu_millis: 1, memory_mb: 1 };
    assert!(is_invalid(store.create_session(like(acme.id, Uuid::now_v7())).await));
    let other = org(&store, "other").await;
    assert!(is_invalid(store.create_session(like(other.id, alice.id)).await), "a session's org is its owner's");
}

pub async fn sessions_are_scoped_to_their_org(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    let alice = user(&store, &a, "alice").await;
    let bob = user(&store, &b, "bob").await;
    let desktop = template(&store, None, "desktop").await;
    let alices = session(&store, &alice, &desktop).await;
    let bobs = session(&store, &bob, &desktop).await;
    let in_a = Scope::Org(a.id);
    assert_eq!(store.get_session(in_a, bobs.id).await.unwrap(), None);
    let list = async |scope: Scope, filter: SessionFilter| {
        store.list_sessions(scope, filter, Page::default()).await.unwrap().items
    };
    assert_eq!(list(in_a, SessionFilter::default()).await, std::slice::from_ref(&alices));
    assert!(list(in_a, SessionFilter { owner_id: Some(bob.id), state: None }).await.is_empty());
    assert_eq!(list(Scope::Platform, SessionFilter::default()).await, [alices, bobs]);
}

pub async fn session_updates_compare_and_set(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let pending = session(&store, &alice, &desktop).await;
    assert_eq!(transition(&store, &pending, SessionState::Running, SessionState::Stopped).await, None, "wrong state");
    assert_eq!(store.get_session(Scope::Platform, pending.id).await.unwrap().as_ref(), Some(&pending));

    let agent = Uuid::now_v7();
    let starting = SessionUpdate {
        agent_id: Some(Some(agent)),
        phase: Some(Some("pulling image".into())),
        progress: Some(Some(40)),
        ..SessionUpdate::transition(SessionState::Pending, SessionState::Starting)
    };
    let starting = store.update_session(pending.id, starting).await.unwrap().unwrap();
    assert!(starting.updated_at >= pending.updated_at);
    let expected = Session {
        state: SessionState::Starting,
        agent_id: Some(agent),
        phase: Some("pulling image".into()),
        progress: Some(40),
        updated_at: starting.updated_at,
        ..pending.clone()
    };
    assert_eq!(starting, expected);

    // `None` leaves a field alone; `Some(None)` clears it.
    let started_at = Utc::now();
    let running = SessionUpdate {
        endpoint: Some(Some("http://10.0.0.5:8080".into())),
        phase: Some(None),
        progress: Some(None),
        started_at: Some(Some(started_at)),
        ..SessionUpdate::transition(SessionState::Starting, SessionState::Running)
    };
    let running = store.update_session(pending.id, running).await.unwrap().unwrap();
    let expected = Session {
        state: SessionState::Running,
        endpoint: Some("http://10.0.0.5:8080".into()),
        phase: None,
        progress: None,
        started_at: Some(started_at.trunc_subsecs(6)),
        updated_at: running.updated_at,
        ..starting
    };
    assert_eq!(running, expected);

    let failed = SessionUpdate {
        agent_id: Some(None),
        failure_reason: Some(Some("the container exited".into())),
        stopped_at: Some(Some(started_at + Duration::minutes(5))),
        ..SessionUpdate::transition(SessionState::Running, SessionState::Failed)
    };
    let failed = store.update_session(pending.id, failed).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.agent_id), (SessionState::Failed, None));
    assert_eq!(failed.failure_reason.as_deref(), Some("the container exited"));
    assert_eq!(failed.stopped_at, Some((started_at + Duration::minutes(5)).trunc_subsecs(6)));
    assert_eq!((failed.endpoint, failed.started_at), (running.endpoint, running.started_at));
    assert_eq!(store.get_session(Scope::Platform, pending.id).await.unwrap().unwrap().state, SessionState::Failed);
    let update = SessionUpdate::transition(SessionState::Pending, SessionState::Running);
    assert_eq!(store.update_session(Uuid::now_v7(), update).await.unwrap(), None, "missing");
}

pub async fn a_session_change_and_its_audit_record_are_stored_together(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let pending = session(&store, &alice, &desktop).await;
    let key = key();
    let audited = |expected| {
        let update = SessionUpdate::transition(expected, SessionState::Stopped);
        store.update_session_audited(pending.id, update, &key, event("session.transition", Some(&acme)))
    };
    let head = store.audit_head().await.unwrap();

    assert_eq!(audited(SessionState::Running).await.unwrap(), None, "not in the expected state");
    assert_eq!(store.audit_head().await.unwrap(), head, "nothing appended for a change that did not happen");

    let stopped = audited(SessionState::Pending).await.unwrap().expect("the change");
    assert_eq!(stopped.state, SessionState::Stopped);
    let appended = store.audit_chain(head.seq, 10).await.unwrap();
    assert_eq!(appended.iter().map(|event| event.action.as_str()).collect::<Vec<_>>(), ["session.transition"]);
    assert_eq!(verify_chain(&store).await, Ok(head.seq + 1));
}

pub async fn racing_session_transitions_have_one_winner(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    for _ in 0..3 {
        let pending = session(&store, &alice, &desktop).await;
        // Half the racers start the session, half fail it: whichever wins, it wins alone.
        let targets = [SessionState::Starting, SessionState::Failed];
        let mut turn = 0;
        let results = race(10, || {
            let (store, id) = (store.clone(), pending.id);
            turn += 1;
            let update = SessionUpdate::transition(SessionState::Pending, targets[turn % 2]);
            async move { store.update_session(id, update).await.unwrap() }
        })
        .await;
        let winners: Vec<Session> = results.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        let stored = store.get_session(Scope::Platform, pending.id).await.unwrap().unwrap();
        assert_eq!(stored.state, winners[0].state);
    }
}

pub async fn session_activity_only_moves_forward(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let live = session(&store, &alice, &desktop).await;
    let t1 = micros_now();
    store.touch_session(live.id, t1).await.unwrap();
    store.touch_session(live.id, t1 - Duration::seconds(30)).await.unwrap();
    let touched = store.get_session(Scope::Platform, live.id).await.unwrap().unwrap();
    assert_eq!(touched.last_activity_at, Some(t1));
    let t2 = t1 + Duration::milliseconds(1);
    store.touch_session(live.id, t2).await.unwrap();
    let touched = store.get_session(Scope::Platform, live.id).await.unwrap().unwrap();
    assert_eq!(touched.last_activity_at, Some(t2));
    store.touch_session(Uuid::now_v7(), t2).await.unwrap();
}

pub async fn usage_counts_live_sessions(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let carol = user(&store, &other, "carol").await;
    let small = NewTemplate { cpu_millis: 250, memory_mb: 512, ..new_template(None, "small") };
    let small = store.create_template(small).await.unwrap();
    let big = template(&store, None, "big").await;
    assert_eq!(store.usage(acme.id, alice.id).await.unwrap(), Default::default());

    let running = session(&store, &alice, &big).await;
    transition(&store, &running, SessionState::Pending, SessionState::Running).await.unwrap();
    let stopped = session(&store, &alice, &big).await;
    transition(&store, &stopped, SessionState::Pending, SessionState::Stopped).await.unwrap();
    let failed = session(&store, &bob, &big).await;
    transition(&store, &failed, SessionState::Pending, SessionState::Failed).await.unwrap();
    let hibernated = session(&store, &bob, &small).await;
    transition(&store, &hibernated, SessionState::Pending, SessionState::Hibernated).await.unwrap();
    session(&store, &bob, &small).await;
    session(&store, &carol, &big).await;

    let usage = store.usage(acme.id, alice.id).await.unwrap();
    assert_eq!((usage.org_sessions, usage.user_sessions), (3, 1));
    assert_eq!((usage.org_cpu_millis, usage.org_memory_mb), (500 + 250 + 250, 1024 + 512 + 512));
    assert_eq!(store.usage(acme.id, bob.id).await.unwrap().user_sessions, 2);
    let elsewhere = store.usage(other.id, carol.id).await.unwrap();
    assert_eq!((elsewhere.org_sessions, elsewhere.user_sessions, elsewhere.org_cpu_millis), (1, 1, 500));
}

pub async fn audit_events_chain_and_list(store: Subject) {
    let acme = org(&store, "acme").await;
    let first = store.append_audit(&key(), event("user.create", Some(&acme))).await.unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
    let content = NewAuditEvent { time: first.time, ..event("user.create", Some(&acme)) };
    assert_eq!(first.hash, event_mac(&key(), 1, first.id, &content, GENESIS_HASH));

    let since = micros_now();
    let mut denied = event("auth.login", Some(&acme));
    denied.result = "denied".into();
    denied.actor_name = "mallory".into();
    denied.target = "user:mallory".into();
    denied.details = json!({"reason": "Wrong PASSWORD", "attempt": 3});
    let second = store.append_audit(&key(), denied).await.unwrap();
    assert_eq!((second.seq, second.prev_hash.as_str()), (2, first.hash.as_str()));
    let mut wildcard = event("template.update", None);
    wildcard.details = json!({"note": "100% done"});
    let third = store.append_audit(&key(), wildcard).await.unwrap();
    let fourth = store.append_audit(&key(), event("org.update", Some(&acme))).await.unwrap();
    assert_eq!(verify_chain(&store).await, Ok(4));

    let newest_first =
        store.list_audit(Scope::Platform, AuditFilter::default(), AuditPage { limit: 10, before_seq: None });
    assert_eq!(newest_first.await.unwrap(), [fourth.clone(), third.clone(), second.clone(), first.clone()]);
    let filter = |f: fn(&mut AuditFilter)| {
        let mut filter = AuditFilter::default();
        f(&mut filter);
        filter
    };
    let all = Scope::Platform;
    assert_eq!(audit(&store, all, filter(|f| f.actor = Some("mallory".into()))).await, [2]);
    assert_eq!(audit(&store, all, filter(|f| f.action = Some("user.create".into()))).await, [1]);
    assert_eq!(audit(&store, all, filter(|f| f.target = Some("user:mallory".into()))).await, [2]);
    assert_eq!(audit(&store, all, filter(|f| f.result = Some("denied".into()))).await, [2]);
    assert_eq!(audit(&store, all, filter(|f| f.result = Some("success".into()))).await, [4, 3, 1]);
    // Free text matches actor, action, target and details, ignoring case; wildcards are literal.
    assert_eq!(audit(&store, all, filter(|f| f.text = Some("wrong password".into()))).await, [2]);
    assert_eq!(audit(&store, all, filter(|f| f.text = Some("MALLORY".into()))).await, [2]);
    assert_eq!(audit(&store, all, filter(|f| f.text = Some("TEMPLATE.".into()))).await, [3]);
    assert_eq!(audit(&store, all, filter(|f| f.text = Some("0% d".into()))).await, [3]);
    assert_eq!(audit(&store, all, filter(|f| f.text = Some("%".into()))).await, [3]);
    assert!(audit(&store, all, filter(|f| f.text = Some("_".into()))).await.is_empty());
    let mut window = AuditFilter { since: Some(since), until: Some(third.time), ..AuditFilter::default() };
    assert_eq!(audit(&store, all, window.clone()).await, [3, 2], "since and until are inclusive");
    window.action = Some("auth.login".into());
    assert_eq!(audit(&store, all, window).await, [2], "filters combine");

    let page = |before_seq| AuditPage { limit: 2, before_seq };
    let newest = store.list_audit(all, AuditFilter::default(), page(None)).await.unwrap();
    assert_eq!(newest, [fourth, third]);
    let older = store.list_audit(all, AuditFilter::default(), page(Some(3))).await.unwrap();
    assert_eq!(older, [second.clone(), first.clone()]);
    assert!(store.list_audit(all, AuditFilter::default(), page(Some(1))).await.unwrap().is_empty());
    assert_eq!(store.audit_chain(0, 2).await.unwrap(), [first, second]);
    assert!(store.audit_chain(4, 10).await.unwrap().is_empty());
}

pub async fn audit_is_scoped_to_the_org(store: Subject) {
    let a = org(&store, "a").await;
    let b = org(&store, "b").await;
    for scope in [Some(&a), Some(&b), None, Some(&a)] {
        store.append_audit(&key(), event("session.create", scope)).await.unwrap();
    }
    assert_eq!(audit(&store, Scope::Org(a.id), AuditFilter::default()).await, [4, 1]);
    assert_eq!(audit(&store, Scope::Org(b.id), AuditFilter::default()).await, [2]);
    assert_eq!(audit(&store, Scope::Platform, AuditFilter::default()).await, [4, 3, 2, 1]);
    // The chain itself is one, across orgs.
    assert_eq!(verify_chain(&store).await, Ok(4));
}

pub async fn audit_details_read_back_bit_identical(store: Subject) {
    let acme = org(&store, "acme").await;
    let mut new = event("session.create", Some(&acme));
    // Nanoseconds in the time, and details whose keys are out of order, with floats, extreme
    // integers, escapes and non-ASCII text.
    new.time = Utc::now().trunc_subsecs(6) + Duration::nanoseconds(789);
    new.actor_id = Some(Uuid::now_v7());
    new.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    new.details = json!({
        "zeta": {"b": [1, 2.5, -0.125, 1e-7, 123.0], "a": null},
        "alpha": "quote \" backslash \\ newline \n tab \t",
        "unicode": "Grüße, 東京 🚀",
        "max": u64::MAX,
        "min": i64::MIN,
        "float": 0.1,
        "big": 1e16,
        "empty": {"list": [], "map": {}},
        "flag": false,
    });
    let appended = store.append_audit(&key(), new.clone()).await.unwrap();
    assert_eq!(appended.time, new.time.trunc_subsecs(6), "time is kept to the microsecond");
    assert_eq!(appended.details["unicode"], new.details["unicode"]);
    let listed = store.list_audit(Scope::Platform, AuditFilter::default(), AuditPage { limit: 1, before_seq: None });
    let listed = listed.await.unwrap().remove(0);
    let chained = store.audit_chain(0, 1).await.unwrap().remove(0);
    assert_eq!(listed, appended);
    assert_eq!(chained, appended);
    let text = |e: &AuditEvent| serde_json::to_string(&e.details).unwrap();
    assert_eq!(text(&listed), text(&appended), "the details serialise to the same bytes");
    assert_eq!(verify_chain(&store).await, Ok(1));
}

pub async fn concurrent_audit_appends_form_one_chain(store: Subject) {
    let acme = org(&store, "acme").await;
    let appended = race(50, || {
        let (store, mut new) = (store.clone(), event("session.touch", Some(&acme)));
        new.details = json!({"n": Uuid::now_v7()});
        async move { store.append_audit(&key(), new).await.unwrap() }
    })
    .await;
    let mut seqs: Vec<i64> = appended.iter().map(|e| e.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>(), "every append got its own place");
    assert_eq!(appended.iter().map(|e| e.id).collect::<HashSet<_>>().len(), 50);
    assert_eq!(verify_chain(&store).await, Ok(50));
    let middle: Vec<i64> = store.audit_chain(20, 10).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(middle, (21..=30).collect::<Vec<_>>());
}

pub async fn audit_tampering_is_detected(store: Subject) {
    append(&store, 5).await;
    assert_eq!(verify_chain(&store).await, Ok(5));
    let altered = store.execute_raw("UPDATE audit_events SET target = 'user:mallory' WHERE seq = 3").await.unwrap();
    assert_eq!(altered, 1);
    let Err(ChainFault::Link(broken)) = verify_chain(&store).await else { panic!("the altered event is not found") };
    assert_eq!(broken.seq, 3, "{broken}");
    assert!(broken.reason.contains("altered"), "{broken}");
}

pub async fn audit_deletion_is_detected(store: Subject) {
    append(&store, 5).await;
    // Deleting the newest event is found by the next append: the chain head remembers it.
    assert_eq!(store.execute_raw("DELETE FROM audit_events WHERE seq = 5").await.unwrap(), 1);
    let sixth = store.append_audit(&key(), event("user.update", None)).await.unwrap();
    assert_eq!(sixth.seq, 6);
    let Err(ChainFault::Link(broken)) = verify_chain(&store).await else { panic!("the gap is not found") };
    assert_eq!(broken.seq, 6, "{broken}");
    assert!(broken.reason.contains("missing"), "{broken}");
    // An event deleted from the middle breaks the link after it.
    assert_eq!(store.execute_raw("DELETE FROM audit_events WHERE seq = 2").await.unwrap(), 1);
    assert_eq!(link_fault_at(verify_chain(&store).await), 3);
}

pub async fn audit_tail_truncation_is_detected(store: Subject) {
    append(&store, 5).await;
    assert_eq!(store.execute_raw("DELETE FROM audit_events WHERE seq > 3").await.unwrap(), 2);
    let fault = verify_chain(&store).await.unwrap_err();
    assert_eq!(fault, ChainFault::Truncated { after: 3, head: 5 });
    assert!(fault.to_string().contains("truncated after #3"), "{fault}");
    // All of it, too.
    assert_eq!(store.execute_raw("DELETE FROM audit_events").await.unwrap(), 3);
    assert_eq!(verify_chain(&store).await, Err(ChainFault::Truncated { after: 0, head: 5 }));
}

pub async fn audit_head_moved_back_without_the_key_is_detected(store: Subject) {
    append(&store, 5).await;
    store.execute_raw("DELETE FROM audit_events WHERE seq > 3").await.unwrap();
    let moved = "UPDATE audit_chain_head SET seq = 3, hash = (SELECT hash FROM audit_events WHERE seq = 3)";
    assert_eq!(store.execute_raw(moved).await.unwrap(), 1);
    assert_eq!(verify_chain(&store).await, Err(ChainFault::SealBroken { seq: 3 }));
    // The control plane does not build on it (that would seal the truncation), nor start on it.
    let refused = store.append_audit(&key(), event("user.update", None)).await;
    assert!(is_invalid(refused), "an append on a moved head is refused");
    assert!(is_invalid(store.seal_audit_head(&key(), false).await));
    assert_eq!(verify_chain(&store).await, Err(ChainFault::SealBroken { seq: 3 }));
}

pub async fn audit_chain_rewritten_without_the_key_is_detected(store: Subject) {
    append(&store, 4).await;
    store.execute_raw("UPDATE audit_events SET target = 'user:mallory' WHERE seq = 2").await.unwrap();
    relink_with_sha256(&store, 2).await;
    assert_eq!(link_fault_at(verify_chain(&store).await), 2, "a SHA-256 link where a MAC belongs");
    // Stripping the seal as well leaves no head to vouch for the chain, and keyed links fail as
    // SHA-256 links from the first one.
    store.execute_raw(STRIP_THE_SEAL).await.unwrap();
    assert_eq!(link_fault_at(verify_chain(&store).await), 1);
    assert!(is_invalid(store.append_audit(&key(), event("user.update", None)).await));
    assert!(is_invalid(store.seal_audit_head(&key(), false).await), "a stripped seal is not laundered");
}

pub async fn audit_chain_verified_with_another_key_says_so(store: Subject) {
    append(&store, 3).await;
    let other = AuditKey::new(*b"another-audit-key-of-32-bytes!!!");
    let fault = verify_with(&store, &other).await.unwrap_err();
    assert_eq!(fault, ChainFault::WrongKey);
    // A replica configured with another key cannot fork the chain.
    assert!(is_invalid(store.append_audit(&other, event("user.update", None)).await));
    assert!(is_invalid(store.seal_audit_head(&other, false).await));
    assert_eq!(verify_chain(&store).await, Ok(3));
}

pub async fn unkeyed_audit_chains_are_sealed_only_when_adopted(store: Subject) {
    // An empty chain is sealed at once: a new installation.
    let fresh = store.seal_audit_head(&key(), false).await.unwrap();
    assert_eq!((fresh.seq, fresh.seal.map(|s| s.keyed_from)), (0, Some(1)));
    // A chain as ADR 0004 wrote it: SHA-256 links, no seal.
    append(&store, 3).await;
    relink_with_sha256(&store, 1).await;
    store.execute_raw(STRIP_THE_SEAL).await.unwrap();
    assert_eq!(verify_chain(&store).await, Err(ChainFault::Unsealed { seq: 3 }), "its links hold, its head is bare");
    assert!(is_invalid(store.append_audit(&key(), event("user.update", None)).await));
    assert!(is_invalid(store.seal_audit_head(&key(), false).await));
    let adopted: ChainHead = store.seal_audit_head(&key(), true).await.unwrap();
    assert_eq!((adopted.seq, adopted.seal.as_ref().map(|s| s.keyed_from)), (3, Some(4)));
    assert_eq!(store.audit_head().await.unwrap(), adopted);
    append(&store, 2).await;
    assert_eq!(verify_chain(&store).await, Ok(5));
    // Adopting again changes nothing.
    assert_eq!(store.seal_audit_head(&key(), true).await.unwrap().seal, store.audit_head().await.unwrap().seal);
}

pub async fn agents_round_trip(store: Subject) {
    let before = micros_now();
    let capacity_limit = CapacityLimit { max_sessions: Some(20), cpu_millis: None, memory_mb: Some(65_536) };
    let endpoint_cidrs = vec!["10.213.0.0/16".to_owned(), "fd00::/8".to_owned()];
    let new = NewAgent {
        platform: Platform::Kubernetes,
        capacity_limit,
        endpoint_cidrs: endpoint_cidrs.clone(),
        ..new_agent("edge-1")
    };
    let edge = store.create_agent(new.clone()).await.unwrap();
    let expected = Agent {
        id: edge.id,
        name: "edge-1".into(),
        platform: Platform::Kubernetes,
        labels: new.labels,
        reported_labels: BTreeMap::new(),
        token_hash: "token-edge-1".into(),
        version: None,
        capacity: Capacity::default(),
        capacity_limit,
        endpoint_cidrs,
        last_heartbeat_at: None,
        created_at: edge.created_at,
        connected_replica: None,
    };
    assert_eq!(edge, expected);
    assert!(edge.created_at >= before);
    assert_eq!(store.get_agent(edge.id).await.unwrap().as_ref(), Some(&edge));
    assert_eq!(store.get_agent(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(store.find_agent_by_token("token-edge-1").await.unwrap().as_ref(), Some(&edge));
    assert_eq!(store.find_agent_by_token("token-nobody").await.unwrap(), None);

    let docker = agent(&store, "docker-1").await;
    assert_eq!((docker.platform, docker.labels.len()), (Platform::Docker, 1));
    assert_eq!(store.list_agents().await.unwrap(), [edge.clone(), docker.clone()], "in creation order");

    assert!(store.delete_agent(edge.id).await.unwrap());
    assert!(!store.delete_agent(edge.id).await.unwrap());
    assert_eq!(store.get_agent(edge.id).await.unwrap(), None);
    assert_eq!(store.find_agent_by_token("token-edge-1").await.unwrap(), None);
    assert_eq!(store.list_agents().await.unwrap(), [docker]);
}

pub async fn agent_names_are_unique(store: Subject) {
    let edge = agent(&store, "edge").await;
    let again = NewAgent { token_hash: "another-token".into(), ..new_agent("edge") };
    assert!(is_conflict(store.create_agent(again).await));
    assert_eq!(store.list_agents().await.unwrap(), std::slice::from_ref(&edge));
    // The name is free again once its agent is gone.
    assert!(store.delete_agent(edge.id).await.unwrap());
    agent(&store, "edge").await;
}

pub async fn agent_tokens_rotate(store: Subject) {
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    assert!(store.set_agent_token(edge.id, "rotated").await.unwrap());
    assert_eq!(store.find_agent_by_token("token-edge").await.unwrap(), None, "the old token stops working");
    let found = store.find_agent_by_token("rotated").await.unwrap();
    assert_eq!(found, Some(Agent { token_hash: "rotated".into(), ..edge.clone() }));
    assert!(!store.set_agent_token(Uuid::now_v7(), "ghost").await.unwrap());
    // Two agents never share a token.
    assert!(is_conflict(store.set_agent_token(edge.id, "token-other").await));
    let taken = NewAgent { token_hash: "rotated".into(), ..new_agent("third") };
    assert!(is_conflict(store.create_agent(taken).await));
    assert_eq!(store.find_agent_by_token("token-other").await.unwrap(), Some(other));
    assert_eq!(store.get_agent(edge.id).await.unwrap().unwrap().token_hash, "rotated");
}

pub async fn agent_endpoint_networks_are_replaced(store: Subject) {
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    let networks = vec!["10.244.0.0/16".to_owned(), "fd00:10:244::/56".to_owned()];
    assert!(store.set_agent_endpoint_cidrs(edge.id, &networks).await.unwrap());
    let found = store.get_agent(edge.id).await.unwrap().unwrap();
    assert_eq!(found, Agent { endpoint_cidrs: networks, ..edge.clone() });
    assert_eq!(store.get_agent(other.id).await.unwrap(), Some(other), "other agents keep theirs");
    assert!(store.set_agent_endpoint_cidrs(edge.id, &[]).await.unwrap());
    assert_eq!(store.get_agent(edge.id).await.unwrap(), Some(edge));
    assert!(!store.set_agent_endpoint_cidrs(Uuid::now_v7(), &[]).await.unwrap());
}

pub async fn agent_hellos_and_heartbeats_are_recorded(store: Subject) {
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    let t1 = micros_now();
    let capacity = Capacity { max_sessions: 10, cpu_millis: 8000, memory_mb: 16384 };
    let labels = BTreeMap::from([("gpu".into(), "nvidia".into()), ("zone".into(), "eu-2".into())]);
    store.record_agent_hello(edge.id, "1.2.3", capacity, &labels, t1 + Duration::nanoseconds(789)).await.unwrap();
    let hello = store.get_agent(edge.id).await.unwrap().unwrap();
    let expected = Agent {
        version: Some("1.2.3".into()),
        capacity,
        reported_labels: labels.clone(),
        last_heartbeat_at: Some(t1),
        ..edge.clone()
    };
    assert_eq!(hello, expected, "kept to the microsecond");
    assert_eq!(hello.labels, edge.labels, "the registered labels stay apart");
    let effective = BTreeMap::from([("gpu".into(), "nvidia".into()), ("zone".into(), "eu-1".into())]);
    assert_eq!(hello.effective_labels(), effective, "registered labels win over reported ones");

    // Heartbeats change the heartbeat only, and only forwards.
    store.record_agent_heartbeat(edge.id, t1 - Duration::seconds(30)).await.unwrap();
    assert_eq!(store.get_agent(edge.id).await.unwrap().as_ref(), Some(&hello));
    let t2 = t1 + Duration::milliseconds(1);
    store.record_agent_heartbeat(edge.id, t2).await.unwrap();
    let beat = store.get_agent(edge.id).await.unwrap().unwrap();
    assert_eq!(beat, Agent { last_heartbeat_at: Some(t2), ..hello });

    // A later hello replaces what the agent reports (labels included), without moving the
    // heartbeat back.
    store.record_agent_hello(edge.id, "1.3.0", Capacity::default(), &BTreeMap::new(), t1).await.unwrap();
    let again = store.get_agent(edge.id).await.unwrap().unwrap();
    let expected = Agent {
        version: Some("1.3.0".into()),
        capacity: Capacity::default(),
        reported_labels: BTreeMap::new(),
        last_heartbeat_at: Some(t2),
        ..edge
    };
    assert_eq!(again, expected);
    assert_eq!(store.get_agent(other.id).await.unwrap(), Some(other), "other agents are untouched");
    // Unknown agents are no error.
    store.record_agent_heartbeat(Uuid::now_v7(), t2).await.unwrap();
    store.record_agent_hello(Uuid::now_v7(), "1", capacity, &labels, t2).await.unwrap();
}

pub async fn agent_epochs_only_move_forward(store: Subject) {
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    assert_eq!(store.agent_epoch(edge.id).await.unwrap(), 0, "no leader announced yet");
    assert!(store.advance_agent_epoch(edge.id, 3).await.unwrap());
    assert!(store.advance_agent_epoch(edge.id, 3).await.unwrap(), "the same leader reconnecting");
    assert!(!store.advance_agent_epoch(edge.id, 2).await.unwrap(), "a stale leader is refused");
    assert_eq!(store.agent_epoch(edge.id).await.unwrap(), 3);
    assert!(store.advance_agent_epoch(edge.id, 4).await.unwrap());
    assert_eq!(store.agent_epoch(edge.id).await.unwrap(), 4);
    assert_eq!(store.agent_epoch(other.id).await.unwrap(), 0, "other agents are untouched");
    let unknown = Uuid::now_v7();
    assert!(!store.advance_agent_epoch(unknown, 1).await.unwrap());
    assert_eq!(store.agent_epoch(unknown).await.unwrap(), 0);
    // Racing leaders' hellos: the newest wins whatever the order.
    let mut epochs = 5..;
    let results = race(8, || {
        let store = Arc::clone(&store);
        let epoch = epochs.next().unwrap();
        async move { store.advance_agent_epoch(edge.id, epoch).await.unwrap() }
    })
    .await;
    assert!(results.iter().any(|advanced| *advanced));
    assert_eq!(store.agent_epoch(edge.id).await.unwrap(), 12);
}

pub async fn deleting_an_agent_deletes_its_commands(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    let placed = session(&store, &alice, &desktop).await;
    let placed = place(&store, &placed, edge.id).await;
    let now = micros_now();
    let acked = store.enqueue_command(edge.id, stop_command(placed.id), now).await.unwrap();
    store.ack_command(edge.id, acked.id, None, now).await.unwrap().unwrap();
    let pending = store.enqueue_command(edge.id, start_command(&placed), now).await.unwrap();
    let others = store.enqueue_command(other.id, stop_command(Uuid::now_v7()), now).await.unwrap();

    assert!(store.delete_agent(edge.id).await.unwrap());
    assert!(store.pending_commands(edge.id).await.unwrap().is_empty());
    assert_eq!(store.ack_command(edge.id, pending.id, None, now).await.unwrap(), None, "gone with its agent");
    assert_eq!(store.pending_commands(other.id).await.unwrap(), [others]);
    // Acknowledged commands went too: only the other agent's is left.
    assert_eq!(store.execute_raw("UPDATE agent_commands SET attempts = attempts").await.unwrap(), 1);
    // The session keeps its agent.
    assert_eq!(store.get_session(Scope::Platform, placed.id).await.unwrap(), Some(placed));
}

pub async fn agent_commands_are_pending_until_acked(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    let live = session(&store, &alice, &desktop).await;
    let t = micros_now();

    // Oldest first by the time given, then by id.
    let start = start_command(&live);
    let late = store.enqueue_command(edge.id, start.clone(), t + Duration::seconds(2)).await.unwrap();
    let expected = AgentCommand {
        id: start.id,
        agent_id: edge.id,
        session_id: live.id,
        command: start.clone(),
        created_at: t + Duration::seconds(2),
        attempts: 0,
        last_sent_at: None,
        acked_at: None,
        error: None,
    };
    assert_eq!(late, expected);
    let early_at = t + Duration::seconds(1) + Duration::nanoseconds(789);
    let early = store.enqueue_command(edge.id, stop_command(live.id), early_at).await.unwrap();
    assert_eq!(early.created_at, early_at.trunc_subsecs(6));
    let tie = store.enqueue_command(edge.id, stop_command(Uuid::now_v7()), early_at).await.unwrap();
    let others = store.enqueue_command(other.id, stop_command(live.id), t).await.unwrap();
    assert_eq!(store.pending_commands(edge.id).await.unwrap(), [early.clone(), tie.clone(), late.clone()]);
    assert_eq!(store.pending_commands(other.id).await.unwrap(), [others]);
    assert!(store.pending_commands(Uuid::now_v7()).await.unwrap().is_empty());
    assert!(is_conflict(store.enqueue_command(other.id, start.clone(), t).await), "command ids are unique");
    assert!(is_invalid(store.enqueue_command(Uuid::now_v7(), stop_command(live.id), t).await), "unknown agent");

    // Every send counts.
    store.mark_command_sent(early.id, t + Duration::seconds(3)).await.unwrap();
    store.mark_command_sent(early.id, t + Duration::seconds(4)).await.unwrap();
    store.mark_command_sent(Uuid::now_v7(), t).await.unwrap();
    let sent = AgentCommand { attempts: 2, last_sent_at: Some(t + Duration::seconds(4)), ..early };
    assert_eq!(store.pending_commands(edge.id).await.unwrap(), [sent.clone(), tie.clone(), late.clone()]);

    // Only the agent it was sent to answers for a command.
    let acked_at = t + Duration::seconds(5);
    assert_eq!(store.ack_command(other.id, sent.id, Some("forged".into()), acked_at).await.unwrap(), None);
    assert_eq!(store.pending_commands(edge.id).await.unwrap(), [sent.clone(), tie.clone(), late.clone()]);
    // The first answer acknowledges it; a late duplicate answer finds nothing to act on.
    let acked = store.ack_command(edge.id, sent.id, None, acked_at).await.unwrap();
    assert_eq!(acked, Some(AgentCommand { acked_at: Some(acked_at), ..sent.clone() }));
    assert_eq!(store.ack_command(edge.id, sent.id, None, acked_at).await.unwrap(), None);
    assert_eq!(store.ack_command(edge.id, sent.id, Some("late".into()), acked_at).await.unwrap(), None);
    assert_eq!(store.ack_command(edge.id, Uuid::now_v7(), None, acked_at).await.unwrap(), None, "unknown");
    assert_eq!(store.pending_commands(edge.id).await.unwrap(), [tie, late]);
}

pub async fn failed_command_acks_keep_the_error(store: Subject) {
    let edge = agent(&store, "edge").await;
    let t = micros_now();
    let command = store.enqueue_command(edge.id, stop_command(Uuid::now_v7()), t).await.unwrap();
    store.mark_command_sent(command.id, t).await.unwrap();
    let error = Some("pulling streamspace/xfce:1: manifest unknown".to_owned());
    let acked = store.ack_command(edge.id, command.id, error.clone(), t + Duration::seconds(1)).await.unwrap().unwrap();
    let expected =
        AgentCommand { attempts: 1, last_sent_at: Some(t), acked_at: Some(t + Duration::seconds(1)), error, ..command };
    assert_eq!(acked, expected);
    assert_eq!(store.ack_command(edge.id, acked.id, None, t).await.unwrap(), None);
    assert!(store.pending_commands(edge.id).await.unwrap().is_empty());
}

pub async fn racing_command_acks_have_one_winner(store: Subject) {
    let edge = agent(&store, "edge").await;
    let command = store.enqueue_command(edge.id, stop_command(Uuid::now_v7()), micros_now()).await.unwrap();
    let mut turn = 0;
    let acks = race(20, || {
        let store = store.clone();
        turn += 1;
        let error = (turn % 2 == 0).then(|| format!("answer {turn}"));
        async move { store.ack_command(edge.id, command.id, error, Utc::now()).await.unwrap() }
    })
    .await;
    let winners: Vec<AgentCommand> = acks.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert!(winners[0].acked_at.is_some());
    assert!(store.pending_commands(edge.id).await.unwrap().is_empty());
}

pub async fn agent_and_active_session_listings_skip_ended_sessions(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let alice = user(&store, &acme, "alice").await;
    let carol = user(&store, &other, "carol").await;
    let desktop = template(&store, None, "desktop").await;
    let edge = agent(&store, "edge").await;
    let far = agent(&store, "far").await;

    let scheduled = place(&store, &session(&store, &alice, &desktop).await, edge.id).await;
    let elsewhere = place(&store, &session(&store, &alice, &desktop).await, far.id).await;
    let placed = place(&store, &session(&store, &carol, &desktop).await, edge.id).await;
    let running = transition(&store, &placed, SessionState::Scheduled, SessionState::Running).await.unwrap();
    let placed = place(&store, &session(&store, &alice, &desktop).await, edge.id).await;
    transition(&store, &placed, SessionState::Scheduled, SessionState::Stopped).await.unwrap();
    let placed = place(&store, &session(&store, &carol, &desktop).await, edge.id).await;
    transition(&store, &placed, SessionState::Scheduled, SessionState::Failed).await.unwrap();
    let unplaced = session(&store, &alice, &desktop).await;
    let placed = place(&store, &session(&store, &carol, &desktop).await, edge.id).await;
    let hibernated = transition(&store, &placed, SessionState::Scheduled, SessionState::Hibernated).await.unwrap();

    let on_edge = [scheduled.clone(), running.clone(), hibernated.clone()];
    assert_eq!(store.list_agent_sessions(edge.id).await.unwrap(), on_edge, "live ones, oldest first");
    assert_eq!(store.list_agent_sessions(far.id).await.unwrap(), std::slice::from_ref(&elsewhere));
    assert!(store.list_agent_sessions(Uuid::now_v7()).await.unwrap().is_empty());
    let active = [scheduled, elsewhere, running, unplaced, hibernated];
    assert_eq!(store.list_active_sessions().await.unwrap(), active, "across orgs and agents, oldest first");
}

pub async fn tickets_are_single_use(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let admin = user(&store, &acme, "admin").await;
    let desktop = template(&store, None, "desktop").await;
    let live = session(&store, &alice, &desktop).await;
    let now = micros_now();
    let expires_at = now + Duration::seconds(60);
    let ticket = |token_hash: &str, user: &User| Ticket {
        token_hash: token_hash.into(),
        session_id: live.id,
        user_id: user.id,
        expires_at: expires_at + Duration::nanoseconds(789),
    };
    store.create_ticket(ticket("t1", &alice)).await.unwrap();
    assert!(is_conflict(store.create_ticket(ticket("t1", &admin)).await));
    store.create_ticket(ticket("t2", &alice)).await.unwrap();
    let redeemed = store.redeem_ticket("t1", now).await.unwrap();
    assert_eq!(redeemed, Some(Ticket { expires_at, ..ticket("t1", &alice) }), "kept to the microsecond");
    assert_eq!(store.redeem_ticket("t1", now).await.unwrap(), None, "spent");
    assert_eq!(store.redeem_ticket("unknown", now).await.unwrap(), None);
    assert!(store.redeem_ticket("t2", now).await.unwrap().is_some(), "tickets are spent one by one");

    let ghost_session = Ticket { session_id: Uuid::now_v7(), ..ticket("t3", &alice) };
    assert!(is_invalid(store.create_ticket(ghost_session).await));
    let ghost_user = Ticket { user_id: Uuid::now_v7(), ..ticket("t4", &alice) };
    assert!(is_invalid(store.create_ticket(ghost_user).await));
    // A deleted user's tickets go with them.
    store.create_ticket(ticket("t5", &admin)).await.unwrap();
    assert!(store.delete_user(Scope::Platform, admin.id).await.unwrap());
    assert_eq!(store.redeem_ticket("t5", now).await.unwrap(), None);
}

pub async fn expired_tickets_are_spent_and_pruned(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let live = session(&store, &alice, &desktop).await;
    let now = micros_now();
    let ticket = |token_hash: &str, expires_at| Ticket {
        token_hash: token_hash.into(),
        session_id: live.id,
        user_id: alice.id,
        expires_at,
    };
    let expiring = ticket("expiring", now + Duration::seconds(60));
    store.create_ticket(expiring.clone()).await.unwrap();
    assert_eq!(store.redeem_ticket("expiring", expiring.expires_at).await.unwrap(), None, "expired at expiry");
    let before = expiring.expires_at - Duration::microseconds(1);
    assert_eq!(store.redeem_ticket("expiring", before).await.unwrap(), None, "and spent all the same");
    let live_ticket = ticket("live", now + Duration::seconds(60));
    store.create_ticket(live_ticket.clone()).await.unwrap();
    assert_eq!(store.redeem_ticket("live", before).await.unwrap(), Some(live_ticket));

    // Creating a ticket deletes those that expired long before, and only those.
    store.create_ticket(ticket("old", now - Duration::days(7))).await.unwrap();
    let recent = ticket("recent", now + Duration::seconds(30));
    store.create_ticket(recent.clone()).await.unwrap();
    store.create_ticket(ticket("new", now + Duration::seconds(60))).await.unwrap();
    assert_eq!(store.redeem_ticket("old", now - Duration::days(8)).await.unwrap(), None, "pruned");
    assert_eq!(store.redeem_ticket("recent", now).await.unwrap(), Some(recent));
}

pub async fn racing_ticket_redemptions_have_one_winner(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let desktop = template(&store, None, "desktop").await;
    let live = session(&store, &alice, &desktop).await;
    let now = micros_now();
    let ticket = Ticket {
        token_hash: "ticket".into(),
        session_id: live.id,
        user_id: alice.id,
        expires_at: now + Duration::seconds(60),
    };
    store.create_ticket(ticket.clone()).await.unwrap();
    let redemptions = race(20, || {
        let store = store.clone();
        async move { store.redeem_ticket("ticket", now).await.unwrap() }
    })
    .await;
    let winners: Vec<Ticket> = redemptions.into_iter().flatten().collect();
    assert_eq!(winners, [ticket]);
}

pub async fn audit_rollback_shows_only_against_a_recorded_head(store: Subject) {
    append(&store, 3).await;
    let earlier = store.audit_head().await.unwrap();
    append(&store, 2).await;
    let recorded = RecordedHead::from(&store.audit_head().await.unwrap());
    assert_eq!(verify_against(&store, &key(), Some(&recorded)).await, Ok(5));

    // Back to the state after the third event, head and all: every link and seal in it is genuine.
    store.execute_raw("DELETE FROM audit_events WHERE seq > 3").await.unwrap();
    let seal = earlier.seal.clone().unwrap();
    let restore = format!(
        "UPDATE audit_chain_head SET seq = {}, hash = '{}', keyed_from = {}, key_check = '{}', mac = '{}'",
        earlier.seq, earlier.hash, seal.keyed_from, seal.key_check, seal.mac
    );
    store.execute_raw(&restore).await.unwrap();
    assert_eq!(verify_chain(&store).await, Ok(3), "a rollback alone is not detected");
    assert_eq!(verify_against(&store, &key(), Some(&recorded)).await, Err(ChainFault::RolledBack { seq: 5 }));
    let older = RecordedHead::from(&earlier);
    assert_eq!(verify_against(&store, &key(), Some(&older)).await, Ok(3), "an older record still holds");
    let forged = RecordedHead { seq: 2, hash: earlier.hash.clone() };
    assert_eq!(verify_against(&store, &key(), Some(&forged)).await, Err(ChainFault::RolledBack { seq: 2 }));
}

// Retention (ADR 0029).

/// Appends an event of `org` (or of the platform) dated `days_ago` days back.
async fn append_dated(store: &Subject, org: Option<&Org>, days_ago: i64) -> AuditEvent {
    let mut new = event("session.connect", org);
    new.time = Utc::now() - Duration::days(days_ago);
    store.append_audit(&key(), new).await.unwrap()
}

/// Two orgs' events interleaved, old and new: A B A A B A(new) B(new).
async fn interleaved(store: &Subject) -> (Org, Org) {
    let (a, b) = (org(store, "retained-a").await, org(store, "retained-b").await);
    for (owner, days_ago) in [(&a, 40), (&b, 40), (&a, 39), (&a, 38), (&b, 37), (&a, 1), (&b, 1)] {
        append_dated(store, Some(owner), days_ago).await;
    }
    (a, b)
}

async fn prune_older_than_30_days(store: &Subject, org: &Org) -> Result<u64> {
    store.prune_audit(&key(), org.id, Utc::now() - Duration::days(30), micros_now()).await
}

pub async fn retention_prunes_behind_checkpoints_and_the_chain_still_verifies(store: Subject) {
    let (a, b) = interleaved(&store).await;
    assert_eq!(prune_older_than_30_days(&store, &a).await.unwrap(), 3);
    assert_eq!(prune_older_than_30_days(&store, &a).await.unwrap(), 0, "nothing is left to remove");
    let left: Vec<(i64, Option<Uuid>)> =
        store.audit_chain(0, 100).await.unwrap().iter().map(|e| (e.seq, e.org_id)).collect();
    assert_eq!(left, vec![(2, Some(b.id)), (5, Some(b.id)), (6, Some(a.id)), (7, Some(b.id))]);
    let runs: Vec<(i64, i64)> =
        store.audit_checkpoints(0, 100).await.unwrap().iter().map(|c| (c.from_seq, c.to_seq)).collect();
    assert_eq!(runs, vec![(1, 1), (3, 4)], "one checkpoint per run of consecutive removed events");
    assert_eq!(verify_chain(&store).await, Ok(7));
    // The other org's turn: its run sits between A's checkpoints; the chain keeps verifying, and
    // keeps growing.
    assert_eq!(prune_older_than_30_days(&store, &b).await.unwrap(), 2);
    append(&store, 1).await;
    assert_eq!(verify_chain(&store).await, Ok(8));
    // Under another key nothing is removed.
    let other = AuditKey::new(*b"another-key-another-key-another!");
    append_dated(&store, Some(&a), 50).await;
    assert!(is_invalid(store.prune_audit(&other, a.id, Utc::now() - Duration::days(30), micros_now()).await));
    assert_eq!(store.audit_chain(8, 10).await.unwrap().len(), 1);
}

pub async fn a_tampered_retention_checkpoint_is_detected(store: Subject) {
    let (a, _) = interleaved(&store).await;
    prune_older_than_30_days(&store, &a).await.unwrap();
    // Claiming the removed run was longer (to hide the deletion of event 5) breaks its MAC.
    store.execute_raw("DELETE FROM audit_events WHERE seq = 5").await.unwrap();
    store.execute_raw("UPDATE audit_checkpoints SET to_seq = 5 WHERE from_seq = 3").await.unwrap();
    let fault = verify_chain(&store).await.unwrap_err();
    assert!(
        matches!(&fault, ChainFault::Checkpoint { from_seq: 3, to_seq: 5, reason } if reason.contains("MAC")),
        "{fault:?}"
    );
    assert!(fault.to_string().contains("retention checkpoint for events #3 to #5"), "{fault}");
}

pub async fn a_gap_without_a_checkpoint_is_detected(store: Subject) {
    let (a, _) = interleaved(&store).await;
    prune_older_than_30_days(&store, &a).await.unwrap();
    assert_eq!(store.execute_raw("DELETE FROM audit_checkpoints WHERE from_seq = 3").await.unwrap(), 1);
    let Err(ChainFault::Link(broken)) = verify_chain(&store).await else { panic!("the gap is not found") };
    assert_eq!(broken.seq, 5);
    assert!(broken.reason.contains("missing"), "{broken}");
}

pub async fn retention_refuses_to_vouch_for_an_altered_event(store: Subject) {
    let (a, _) = interleaved(&store).await;
    store.execute_raw("UPDATE audit_events SET actor_name = 'mallory' WHERE seq = 3").await.unwrap();
    let refused = prune_older_than_30_days(&store, &a).await;
    assert!(matches!(&refused, Err(StoreError::Invalid(message)) if message.contains("#3")), "{refused:?}");
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), 7, "nothing was removed");
    assert!(store.audit_checkpoints(0, 100).await.unwrap().is_empty());
    assert_eq!(link_fault_at(verify_chain(&store).await), 3);
}

pub async fn compliance_settings_round_trip(store: Subject) {
    let acme = org(&store, "compliant").await;
    assert_eq!(store.compliance_settings(acme.id).await.unwrap(), None);
    let mut settings = ComplianceSettings {
        org_id: acme.id,
        retention_days: Some(90),
        report_schedule: Some("weekly".into()),
        report_destination: Some("webhook".into()),
        webhook_url: Some("https://example.test/hook".into()),
        webhook_secret: Some("sealed".into()),
        delivery: DeliveryState::default(),
    };
    store.put_compliance_settings(&settings).await.unwrap();
    assert_eq!(store.compliance_settings(acme.id).await.unwrap().as_ref(), Some(&settings));
    let delivery = DeliveryState {
        delivered_until: Some(micros_now()),
        attempts: 2,
        next_attempt_at: Some(micros_now() + Duration::minutes(4)),
        last_error: Some("the receiver answered 500".into()),
    };
    store.record_delivery(acme.id, &delivery).await.unwrap();
    // Saving the settings again leaves the delivery state alone.
    settings.retention_days = None;
    store.put_compliance_settings(&settings).await.unwrap();
    settings.delivery = delivery;
    assert_eq!(store.list_compliance_settings().await.unwrap(), vec![settings]);
    let unknown = ComplianceSettings { org_id: Uuid::now_v7(), ..ComplianceSettings::default() };
    assert!(is_invalid(store.put_compliance_settings(&unknown).await));
    store.delete_org(Scope::Platform, acme.id).await.unwrap();
    assert!(store.list_compliance_settings().await.unwrap().is_empty());
}

// Single sign-on.

fn new_provider(org: &Org, name: &str, domains: &[&str]) -> NewIdentityProvider {
    NewIdentityProvider {
        org_id: org.id,
        name: name.into(),
        display_name: format!("{name} (display)"),
        kind: ProviderKind::Oidc,
        enabled: true,
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        config: json!({"issuer": "https://idp.example.com", "client_id": "streamspace", "scopes": ["email"]}),
        client_secret: Some("sealed-secret".into()),
        role_mapping: json!({"groups_claim": "groups", "org_admin_groups": ["admins"]}),
    }
}

async fn provider(store: &Subject, org: &Org, name: &str) -> IdentityProvider {
    store.create_identity_provider(new_provider(org, name, &[])).await.unwrap()
}

fn new_identity(user: &User, provider: &IdentityProvider, subject: &str) -> NewExternalIdentity {
    NewExternalIdentity {
        user_id: user.id,
        provider_id: provider.id,
        subject: subject.into(),
        email: Some(format!("{subject}@example.com")),
        provisioned: true,
    }
}

fn pending(token_hash: &str, kind: SsoPendingKind, provider: &IdentityProvider, expires_at: Timestamp) -> SsoPending {
    SsoPending {
        token_hash: token_hash.into(),
        kind,
        provider_id: provider.id,
        user_id: None,
        browser_hash: Some("browser".into()),
        payload: "sealed-payload".into(),
        expires_at,
    }
}

pub async fn identity_providers_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let created = store.create_identity_provider(new_provider(&acme, "okta", &["acme.com"])).await.unwrap();
    assert_eq!((created.name.as_str(), created.kind, created.enabled), ("okta", ProviderKind::Oidc, true));
    assert_eq!(created.domains, vec!["acme.com".to_owned()]);
    assert_eq!(created.config["issuer"], "https://idp.example.com");
    assert_eq!(created.client_secret.as_deref(), Some("sealed-secret"));
    assert_eq!(created.role_mapping["org_admin_groups"], json!(["admins"]));
    assert_eq!(store.get_identity_provider(Scope::Platform, created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get_identity_provider(Scope::Org(acme.id), created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get_identity_provider(Scope::Org(other.id), created.id).await.unwrap(), None, "another org's");
    assert_eq!(store.list_identity_providers(Scope::Org(other.id), acme.id).await.unwrap(), vec![]);
    let second = provider(&store, &acme, "github").await;
    assert_eq!(store.list_identity_providers(Scope::Platform, acme.id).await.unwrap(), vec![created.clone(), second]);

    let patch = IdentityProviderPatch {
        display_name: Some("Okta SSO".into()),
        enabled: Some(false),
        domains: Some(vec!["acme.org".into()]),
        config: Some(json!({"issuer": "https://other.example.com"})),
        client_secret: Some(None),
        role_mapping: Some(json!({})),
        ..IdentityProviderPatch::default()
    };
    assert_eq!(store.update_identity_provider(Scope::Org(other.id), created.id, patch.clone()).await.unwrap(), None);
    let updated = store.update_identity_provider(Scope::Org(acme.id), created.id, patch).await.unwrap().unwrap();
    assert_eq!(updated.display_name, "Okta SSO");
    assert!(!updated.enabled);
    assert_eq!(updated.domains, vec!["acme.org".to_owned()]);
    assert_eq!(updated.config, json!({"issuer": "https://other.example.com"}));
    assert_eq!(updated.client_secret, None, "the secret was removed");
    assert!(updated.updated_at >= created.updated_at);
    let untouched =
        store.update_identity_provider(Scope::Platform, created.id, IdentityProviderPatch::default()).await.unwrap();
    assert_eq!(untouched.map(|p| (p.display_name, p.config)), Some((updated.display_name, updated.config)));
    let secret = IdentityProviderPatch { client_secret: Some(Some("new".into())), ..IdentityProviderPatch::default() };
    let resealed = store.update_identity_provider(Scope::Platform, created.id, secret).await.unwrap().unwrap();
    assert_eq!(resealed.client_secret.as_deref(), Some("new"));

    assert!(!store.delete_identity_provider(Scope::Org(other.id), created.id).await.unwrap());
    assert!(store.delete_identity_provider(Scope::Org(acme.id), created.id).await.unwrap());
    assert_eq!(store.get_identity_provider(Scope::Platform, created.id).await.unwrap(), None);
    assert!(!store.delete_identity_provider(Scope::Platform, created.id).await.unwrap());
}

pub async fn identity_provider_names_are_unique_per_org(store: Subject) {
    let acme = org(&store, "acme").await;
    let other = org(&store, "other").await;
    let okta = provider(&store, &acme, "okta").await;
    assert!(is_conflict(store.create_identity_provider(new_provider(&acme, "okta", &[])).await));
    provider(&store, &other, "okta").await;
    let github = provider(&store, &acme, "github").await;
    let rename = IdentityProviderPatch { name: Some("okta".into()), ..IdentityProviderPatch::default() };
    assert!(is_conflict(store.update_identity_provider(Scope::Platform, github.id, rename).await));
    let ghost = NewIdentityProvider { org_id: Uuid::now_v7(), ..new_provider(&acme, "ghost", &[]) };
    assert!(is_invalid(store.create_identity_provider(ghost).await));
    assert_eq!(store.get_identity_provider(Scope::Platform, okta.id).await.unwrap(), Some(okta));
}

pub async fn identity_providers_are_found_by_domain_when_enabled(store: Subject) {
    let acme = org(&store, "acme").await;
    let okta = store.create_identity_provider(new_provider(&acme, "okta", &["acme.com", "acme.org"])).await.unwrap();
    let off = NewIdentityProvider { enabled: false, ..new_provider(&acme, "off", &["acme.com"]) };
    store.create_identity_provider(off).await.unwrap();
    store.create_identity_provider(new_provider(&acme, "elsewhere", &["elsewhere.com"])).await.unwrap();
    assert_eq!(store.identity_providers_for_domain("acme.org").await.unwrap(), vec![okta.clone()]);
    assert_eq!(store.identity_providers_for_domain("acme.com").await.unwrap(), vec![okta]);
    assert_eq!(store.identity_providers_for_domain("cme.com").await.unwrap(), vec![], "whole domains only");
}

pub async fn external_identities_link_one_subject_to_one_user(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let okta = provider(&store, &acme, "okta").await;
    let github = provider(&store, &acme, "github").await;
    let linked = store.create_external_identity(new_identity(&alice, &okta, "sub-1")).await.unwrap();
    assert_eq!((linked.user_id, linked.provider_id, linked.subject.as_str()), (alice.id, okta.id, "sub-1"));
    assert_eq!(linked.last_sign_in_at, None);
    assert!(is_conflict(store.create_external_identity(new_identity(&bob, &okta, "sub-1")).await), "one subject");
    assert!(
        is_conflict(store.create_external_identity(new_identity(&alice, &okta, "sub-2")).await),
        "one per provider"
    );
    let other = store.create_external_identity(new_identity(&alice, &github, "sub-1")).await.unwrap();
    let ghost = NewExternalIdentity { provider_id: Uuid::now_v7(), ..new_identity(&bob, &okta, "x") };
    assert!(is_invalid(store.create_external_identity(ghost).await));

    assert_eq!(store.find_external_identity(okta.id, "sub-1").await.unwrap().as_ref(), Some(&linked));
    assert_eq!(store.find_external_identity(okta.id, "sub-2").await.unwrap(), None);
    assert_eq!(store.list_external_identities(alice.id).await.unwrap(), vec![linked.clone(), other.clone()]);
    let at = micros_now();
    store.touch_external_identity(linked.id, Some("new@example.com"), at).await.unwrap();
    let touched = store.find_external_identity(okta.id, "sub-1").await.unwrap().unwrap();
    assert_eq!((touched.last_sign_in_at, touched.email.as_deref()), (Some(at), Some("new@example.com")));
    store.touch_external_identity(linked.id, None, at).await.unwrap();
    let kept = store.find_external_identity(okta.id, "sub-1").await.unwrap().unwrap();
    assert_eq!(kept.email.as_deref(), Some("new@example.com"), "a sign-in without an email keeps the last one");

    assert!(!store.delete_external_identity(bob.id, linked.id).await.unwrap(), "only the owner's");
    assert!(store.delete_external_identity(alice.id, linked.id).await.unwrap());
    assert_eq!(store.list_external_identities(alice.id).await.unwrap(), vec![other]);
}

pub async fn deleting_a_provider_or_user_removes_their_identities(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let bob = user(&store, &acme, "bob").await;
    let okta = provider(&store, &acme, "okta").await;
    let github = provider(&store, &acme, "github").await;
    store.create_external_identity(new_identity(&alice, &okta, "alice")).await.unwrap();
    store.create_external_identity(new_identity(&bob, &github, "bob")).await.unwrap();
    let later = micros_now() + Duration::minutes(5);
    store.create_sso_pending(pending("p1", SsoPendingKind::State, &okta, later)).await.unwrap();
    assert!(store.delete_identity_provider(Scope::Platform, okta.id).await.unwrap());
    assert_eq!(store.find_external_identity(okta.id, "alice").await.unwrap(), None);
    assert_eq!(store.take_sso_pending(SsoPendingKind::State, "p1", micros_now()).await.unwrap(), None);
    assert!(store.delete_user(Scope::Platform, bob.id).await.unwrap());
    assert_eq!(store.find_external_identity(github.id, "bob").await.unwrap(), None);
}

pub async fn sso_pending_tokens_are_single_use_and_expire(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let okta = provider(&store, &acme, "okta").await;
    let now = micros_now();
    let later = now + Duration::minutes(10);
    let state = pending("s1", SsoPendingKind::State, &okta, later);
    store.create_sso_pending(state.clone()).await.unwrap();
    assert!(is_conflict(store.create_sso_pending(state.clone()).await));
    let ticket = SsoPending { user_id: Some(alice.id), ..pending("m1", SsoPendingKind::MfaTicket, &okta, later) };
    store.create_sso_pending(ticket.clone()).await.unwrap();

    assert_eq!(store.get_sso_pending(SsoPendingKind::MfaTicket, "s1", now).await.unwrap(), None, "kinds stay apart");
    assert_eq!(store.take_sso_pending(SsoPendingKind::MfaTicket, "s1", now).await.unwrap(), None);
    assert_eq!(store.get_sso_pending(SsoPendingKind::State, "s1", now).await.unwrap().as_ref(), Some(&state));
    assert_eq!(store.take_sso_pending(SsoPendingKind::State, "s1", now).await.unwrap(), Some(state));
    assert_eq!(store.take_sso_pending(SsoPendingKind::State, "s1", now).await.unwrap(), None, "spent");
    assert_eq!(store.get_sso_pending(SsoPendingKind::MfaTicket, "m1", now).await.unwrap().as_ref(), Some(&ticket));
    assert_eq!(store.get_sso_pending(SsoPendingKind::MfaTicket, "m1", later).await.unwrap(), None, "expired");
    assert_eq!(store.take_sso_pending(SsoPendingKind::MfaTicket, "m1", later).await.unwrap(), None, "expired");
    assert_eq!(store.take_sso_pending(SsoPendingKind::MfaTicket, "m1", now).await.unwrap(), None, "spent anyway");

    let ghost = SsoPending { user_id: Some(Uuid::now_v7()), ..pending("g", SsoPendingKind::State, &okta, later) };
    assert!(is_invalid(store.create_sso_pending(ghost).await));
    // The long expired go when a new one is kept.
    let stale = pending("old", SsoPendingKind::State, &okta, now - Duration::days(3));
    store.create_sso_pending(stale).await.unwrap();
    store.create_sso_pending(pending("new", SsoPendingKind::State, &okta, later)).await.unwrap();
    assert_eq!(store.execute_raw("DELETE FROM sso_pending WHERE token_hash = 'old'").await.unwrap(), 0);
}

pub async fn sso_replays_are_refused_until_they_expire(store: Subject) {
    let acme = org(&store, "acme").await;
    let okta = provider(&store, &acme, "okta").await;
    let github = provider(&store, &acme, "github").await;
    let now = micros_now();
    let later = now + Duration::minutes(5);
    assert!(store.record_sso_replay(okta.id, "assertion-1", later, now).await.unwrap());
    assert!(!store.record_sso_replay(okta.id, "assertion-1", later, now).await.unwrap(), "replayed");
    assert!(store.record_sso_replay(github.id, "assertion-1", later, now).await.unwrap(), "per provider");
    assert!(store.record_sso_replay(okta.id, "assertion-1", later, later).await.unwrap(), "after expiry");
    assert!(is_invalid(store.record_sso_replay(Uuid::now_v7(), "x", later, now).await));
    let raced = race(4, || {
        let store = store.clone();
        async move { store.record_sso_replay(okta.id, "raced", later, now).await.unwrap() }
    })
    .await;
    assert_eq!(raced.iter().filter(|fresh| **fresh).count(), 1, "one of racing uses wins");
}

pub async fn sso_sign_ins_are_found_by_refresh_token(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let okta = provider(&store, &acme, "okta").await;
    let now = micros_now();
    let family_id = Uuid::now_v7();
    let token = RefreshToken {
        id: Uuid::now_v7(),
        user_id: alice.id,
        family_id,
        token_hash: "r1".into(),
        mfa: false,
        created_at: now,
        expires_at: now + Duration::days(1),
    };
    store.insert_refresh_token(token.clone()).await.unwrap();
    store
        .insert_refresh_token(RefreshToken {
            id: Uuid::now_v7(),
            family_id: Uuid::now_v7(),
            token_hash: "r2".into(),
            ..token
        })
        .await
        .unwrap();
    let sign_in = SsoSignIn {
        family_id,
        provider_id: okta.id,
        user_id: alice.id,
        payload: "sealed".into(),
        expires_at: now + Duration::days(1),
    };
    store.record_sso_sign_in(sign_in.clone()).await.unwrap();
    assert_eq!(store.sso_sign_in_for_refresh_token("r1").await.unwrap(), Some(sign_in));
    assert_eq!(store.sso_sign_in_for_refresh_token("r2").await.unwrap(), None, "a password sign-in");
    assert_eq!(store.sso_sign_in_for_refresh_token("unknown").await.unwrap(), None);
}

fn nets(cidrs: &[&str]) -> Vec<IpNet> {
    cidrs.iter().map(|cidr| cidr.parse().unwrap()).collect()
}

pub async fn ip_allow_lists_round_trip(store: Subject) {
    let acme = org(&store, "acme").await;
    let globex = org(&store, "globex").await;
    assert_eq!(store.get_ip_allow_list(AllowList::Platform).await.unwrap(), vec![], "never set: empty");
    let platform = nets(&["198.51.100.0/24", "2001:db8::/32"]);
    store.set_ip_allow_list(AllowList::Platform, &platform, Utc::now()).await.unwrap();
    let own = nets(&["203.0.113.7/32"]);
    store.set_ip_allow_list(AllowList::Org(acme.id), &own, Utc::now()).await.unwrap();
    assert_eq!(store.get_ip_allow_list(AllowList::Platform).await.unwrap(), platform);
    assert_eq!(store.get_ip_allow_list(AllowList::Org(acme.id)).await.unwrap(), own);
    assert_eq!(store.get_ip_allow_list(AllowList::Org(globex.id)).await.unwrap(), vec![], "lists are per org");
    let replaced = nets(&["10.0.0.0/8", "fd00::/8"]);
    store.set_ip_allow_list(AllowList::Org(acme.id), &replaced, Utc::now()).await.unwrap();
    assert_eq!(store.get_ip_allow_list(AllowList::Org(acme.id)).await.unwrap(), replaced, "a set replaces the list");
    assert_eq!(store.get_ip_allow_list(AllowList::Platform).await.unwrap(), platform);
    store.set_ip_allow_list(AllowList::Platform, &[], Utc::now()).await.unwrap();
    assert_eq!(store.get_ip_allow_list(AllowList::Platform).await.unwrap(), vec![]);
    assert!(is_invalid(store.set_ip_allow_list(AllowList::Org(Uuid::now_v7()), &own, Utc::now()).await));
}

pub async fn ip_allow_lists_go_with_their_org(store: Subject) {
    let acme = org(&store, "acme").await;
    store.set_ip_allow_list(AllowList::Org(acme.id), &nets(&["10.0.0.0/8"]), Utc::now()).await.unwrap();
    assert!(store.delete_org(Scope::Platform, acme.id).await.unwrap());
    let again = org(&store, "acme").await;
    assert_eq!(store.get_ip_allow_list(AllowList::Org(acme.id)).await.unwrap(), vec![]);
    assert_eq!(store.get_ip_allow_list(AllowList::Org(again.id)).await.unwrap(), vec![]);
}

fn invitation(session: &Session, guest: &User, role: ShareRole) -> NewShare {
    NewShare {
        session_id: session.id,
        user_id: Some(guest.id),
        role,
        token_hash: None,
        link_id: None,
        expires_at: None,
        created_by: session.owner_id,
    }
}

pub async fn shares_round_trip_and_replace_per_guest(store: Subject) {
    let acme = org(&store, "acme").await;
    let (owner, guest) = (user(&store, &acme, "owner").await, user(&store, &acme, "guest").await);
    let desktop = template(&store, None, "desktop").await;
    let (shared, other) = (session(&store, &owner, &desktop).await, session(&store, &owner, &desktop).await);
    let viewer = store.put_share(invitation(&shared, &guest, ShareRole::Viewer)).await.unwrap();
    assert_eq!((viewer.user_id, viewer.role, viewer.is_link()), (Some(guest.id), ShareRole::Viewer, false));
    assert_eq!(store.guest_share(shared.id, guest.id).await.unwrap(), Some(viewer.clone()));
    assert_eq!(store.guest_share(other.id, guest.id).await.unwrap(), None, "shares are per session");
    let until = Utc::now().trunc_subsecs(6) + Duration::hours(1);
    let promoted = NewShare { expires_at: Some(until), ..invitation(&shared, &guest, ShareRole::Collaborator) };
    let collaborator = store.put_share(promoted).await.unwrap();
    assert_eq!((collaborator.role, collaborator.expires_at), (ShareRole::Collaborator, Some(until)));
    assert_eq!(store.list_shares(shared.id).await.unwrap(), vec![collaborator.clone()], "inviting again replaces");
    assert_eq!(store.shares_for_guest(guest.id).await.unwrap(), vec![collaborator.clone()]);
    assert!(collaborator.live_at(until - Duration::seconds(1)) && !collaborator.live_at(until));
    let stranger = User { id: Uuid::now_v7(), ..guest.clone() };
    assert!(is_invalid(store.put_share(invitation(&shared, &stranger, ShareRole::Viewer)).await), "no such guest");
    assert_eq!(store.delete_share(other.id, collaborator.id).await.unwrap(), vec![], "another session's share stays");
    assert_eq!(store.delete_share(shared.id, collaborator.id).await.unwrap(), vec![collaborator]);
    assert_eq!(store.guest_share(shared.id, guest.id).await.unwrap(), None);
}

pub async fn revoking_a_link_revokes_who_joined_through_it(store: Subject) {
    let acme = org(&store, "acme").await;
    let owner = user(&store, &acme, "owner").await;
    let (joined, invited) = (user(&store, &acme, "joined").await, user(&store, &acme, "invited").await);
    let desktop = template(&store, None, "desktop").await;
    let shared = session(&store, &owner, &desktop).await;
    let expires_at = Some(Utc::now().trunc_subsecs(6) + Duration::minutes(30));
    let new_link = NewShare {
        user_id: None,
        token_hash: Some("link-hash".into()),
        expires_at,
        ..invitation(&shared, &owner, ShareRole::Viewer)
    };
    let link = store.put_share(new_link.clone()).await.unwrap();
    assert!(link.is_link() && link.user_id.is_none());
    assert_eq!(store.find_share_link("link-hash").await.unwrap(), Some(link.clone()));
    assert_eq!(store.find_share_link("other").await.unwrap(), None);
    assert!(matches!(store.put_share(new_link).await, Err(StoreError::Conflict(_))), "link tokens are unique");
    let through_link =
        NewShare { link_id: Some(link.id), expires_at, ..invitation(&shared, &joined, ShareRole::Viewer) };
    let guest = store.put_share(through_link).await.unwrap();
    let direct = store.put_share(invitation(&shared, &invited, ShareRole::Collaborator)).await.unwrap();
    let mut revoked = store.delete_share(shared.id, link.id).await.unwrap();
    revoked.sort_by_key(|share| share.id);
    assert_eq!(revoked, vec![link, guest]);
    assert_eq!(store.list_shares(shared.id).await.unwrap(), vec![direct], "a direct invitation stays");
}

// Warm pools (ADR 0034).

fn new_session_for(owner: &User, template: &Template) -> NewSession {
    NewSession {
        org_id: owner.org_id,
        owner_id: owner.id,
        template_id: template.id,
        cpu_millis: template.cpu_millis,
        memory_mb: template.memory_mb,
    }
}

async fn ready_member(store: &Subject, template: &Template, agent: &Agent, digest: &str) -> PoolMember {
    let member = PoolMember::starting(template.id, agent.id, (1000, 512), digest.to_owned(), Utc::now());
    store.add_pool_member(&member).await.unwrap();
    assert!(store.pool_member_ready(member.id, agent.id, "http://10.1.2.3:8080", Utc::now()).await.unwrap());
    member
}

pub async fn pool_members_become_ready_and_are_claimed_once(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let chromium = template(&store, None, "chromium").await;
    let docker = agent(&store, "docker-1").await;
    let pool = store.set_template_pool(chromium.id, 2, Utc::now()).await.unwrap();
    assert_eq!((pool.template_id, pool.size), (chromium.id, 2));
    assert_eq!(store.set_template_pool(chromium.id, 3, Utc::now()).await.unwrap().size, 3);
    assert_eq!(store.list_template_pools().await.unwrap().len(), 1);
    assert!(store.set_template_pool(Uuid::now_v7(), 1, Utc::now()).await.is_err(), "no such template");

    let starting = PoolMember::starting(chromium.id, docker.id, (1000, 512), "a".into(), Utc::now());
    store.add_pool_member(&starting).await.unwrap();
    assert_eq!(store.list_pool_members().await.unwrap(), std::slice::from_ref(&starting));
    let claim = |digest: &'static str| {
        store.claim_pool_member(chromium.id, digest, new_session_for(&alice, &chromium), Utc::now())
    };
    assert_eq!(claim("a").await.unwrap(), None, "a starting member is not handed out");
    let other = agent(&store, "docker-2").await;
    assert!(!store.pool_member_ready(starting.id, other.id, "http://x:1", Utc::now()).await.unwrap(), "not its member");
    assert!(store.pool_member_ready(starting.id, docker.id, "http://10.1.2.3:8080", Utc::now()).await.unwrap());

    assert_eq!(claim("b").await.unwrap(), None, "another spec does not match");
    let session = claim("a").await.unwrap().unwrap();
    assert_eq!((session.id, session.owner_id, session.org_id), (starting.id, alice.id, acme.id));
    assert_eq!((session.state, session.agent_id), (SessionState::Running, Some(docker.id)));
    assert_eq!(session.endpoint.as_deref(), Some("http://10.1.2.3:8080"));
    assert!(session.started_at.is_some() && session.last_activity_at.is_some());
    assert!(store.list_pool_members().await.unwrap().is_empty());
    assert_eq!(claim("a").await.unwrap(), None, "claimed once");
    assert!(!store.remove_pool_member(starting.id).await.unwrap());

    // A claimant outside the member's reach (no such user in that org) leaves the member in the pool.
    let member = ready_member(&store, &chromium, &docker, "a").await;
    let stranger = NewSession { org_id: Uuid::now_v7(), ..new_session_for(&alice, &chromium) };
    assert!(store.claim_pool_member(chromium.id, "a", stranger, Utc::now()).await.is_err());
    assert_eq!(store.list_pool_members().await.unwrap().len(), 1);
    assert!(store.remove_pool_member(member.id).await.unwrap());
    // Deleting the agent takes its members with it.
    ready_member(&store, &chromium, &docker, "a").await;
    assert!(store.delete_agent(docker.id).await.unwrap());
    assert!(store.list_pool_members().await.unwrap().is_empty());
}

pub async fn racing_pool_claims_take_distinct_members(store: Subject) {
    let acme = org(&store, "acme").await;
    let alice = user(&store, &acme, "alice").await;
    let chromium = template(&store, None, "chromium").await;
    let docker = agent(&store, "docker-1").await;
    for _ in 0..3 {
        ready_member(&store, &chromium, &docker, "a").await;
    }
    let claims = race(6, || {
        let (store, new) = (store.clone(), new_session_for(&alice, &chromium));
        async move { store.claim_pool_member(chromium.id, "a", new, Utc::now()).await.unwrap() }
    })
    .await;
    let mut ids: Vec<Uuid> = claims.into_iter().flatten().map(|session| session.id).collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() <= 3 && !ids.is_empty(), "{ids:?}");
    assert_eq!(store.list_pool_members().await.unwrap().len(), 3 - ids.len());
}

pub async fn agent_connections_are_claimed_and_released_by_replica(store: Subject) {
    let edge = agent(&store, "edge").await;
    let other = agent(&store, "other").await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let holder = async |id| store.get_agent(id).await.unwrap().unwrap().connected_replica;
    store.claim_agent_connection(edge.id, first).await.unwrap();
    assert_eq!(holder(edge.id).await, Some(first));
    // The agent reconnects to another replica before the first notices it left.
    store.claim_agent_connection(edge.id, second).await.unwrap();
    assert!(!store.release_agent_connection(edge.id, first).await.unwrap(), "the old holder cannot release it");
    assert_eq!(holder(edge.id).await, Some(second));
    assert!(store.release_agent_connection(edge.id, second).await.unwrap());
    assert_eq!(holder(edge.id).await, None);
    assert_eq!(holder(other.id).await, None, "other agents are untouched");
    store.claim_agent_connection(Uuid::now_v7(), first).await.unwrap();
}

pub async fn key_fingerprints_are_recorded_once_and_compared(store: Subject) {
    let keys = |jwt: &str, seal: &str| vec![("jwt".to_owned(), jwt.to_owned()), ("seal".to_owned(), seal.to_owned())];
    let now = micros_now();
    assert!(store.check_key_fingerprints(&keys("a", "b"), now).await.unwrap().is_empty(), "the first records");
    assert!(store.check_key_fingerprints(&keys("a", "b"), now).await.unwrap().is_empty(), "the same keys agree");
    assert_eq!(store.check_key_fingerprints(&keys("a", "c"), now).await.unwrap(), ["seal"]);
    assert_eq!(store.check_key_fingerprints(&keys("x", "y"), now).await.unwrap(), ["jwt", "seal"]);
    // A differing key is never recorded over the first: the original still agrees.
    assert!(store.check_key_fingerprints(&keys("a", "b"), now).await.unwrap().is_empty());
    let added = vec![("audit".to_owned(), "d".to_owned())];
    assert!(store.check_key_fingerprints(&added, now).await.unwrap().is_empty(), "a new key name is recorded");
}

//! What the SQL store is made of besides its queries: the column lists and row decoding of every
//! record, error mapping, timestamp precision, keyset pages, embedded migrations, and the
//! [`Backend`] trait that states what differs between SQLite and PostgreSQL.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{SubsecRound, TimeDelta, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::error::ErrorKind;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Connection, Database, Decode, Encode, IntoArguments, QueryBuilder, Row, SqlSafeStr, Type};
use streamspace_proto::SessionState;
use streamspace_proto::hub::{Capacity, Platform};
use uuid::Uuid;

use crate::{
    Agent, AgentCommand, ApiKey, AuditEvent, AuditFilter, AuditPage, CapacityLimit, Org, Page, Paged, Quotas,
    RefreshToken, Result, Role, Scope, Session, SessionFilter, StoreError, Template, Ticket, User, audit,
};

// Column lists, as macros so that backends can `concat!` them into `&'static str` queries. Both
// schemas name their columns alike, and the decoders below read exactly these.
macro_rules! org_columns {
    () => {
        "id, name, mfa_required, session_policy, max_sessions, max_sessions_per_user, max_cpu_millis, max_memory_mb, \
         egress_allow, sso_mfa, created_at"
    };
}
macro_rules! user_columns {
    () => {
        "id, org_id, username, password_hash, role, disabled, mfa_secret, mfa_enabled, mfa_last_step, \
         sessions_revoked_at, created_at, updated_at"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, user_id, org_id, name, prefix, key_hash, created_at, last_used_at, expires_at, mfa"
    };
}
macro_rules! refresh_token_columns {
    () => {
        "id, user_id, family_id, token_hash, mfa, created_at, expires_at"
    };
}
macro_rules! template_columns {
    () => {
        "id, org_id, name, display_name, description, icon, image, env, cpu_millis, memory_mb, shm_mb, port, tags, \
         enabled, egress_allow, session_policy, home, created_at, updated_at"
    };
}
macro_rules! session_columns {
    () => {
        "id, org_id, owner_id, template_id, state, agent_id, endpoint, phase, progress, failure_reason, cpu_millis, \
         memory_mb, created_at, updated_at, started_at, stopped_at, last_activity_at"
    };
}
macro_rules! audit_columns {
    () => {
        "seq, id, time, actor_id, actor_name, org_id, action, target, result, client_ip, user_agent, trace_id, \
         details, prev_hash, hash"
    };
}
macro_rules! audit_head_columns {
    () => {
        "seq, hash, keyed_from, key_check, mac"
    };
}
macro_rules! agent_columns {
    () => {
        "id, name, platform, labels, reported_labels, token_hash, version, max_sessions, cpu_millis, memory_mb, \
         limit_sessions, limit_cpu_millis, limit_memory_mb, endpoint_cidrs, last_heartbeat_at, created_at, \
         connected_replica"
    };
}
macro_rules! agent_command_columns {
    () => {
        "id, agent_id, session_id, command, created_at, attempts, last_sent_at, acked_at, error"
    };
}
macro_rules! ticket_columns {
    () => {
        "token_hash, session_id, user_id, expires_at"
    };
}
pub(crate) use {
    agent_columns, agent_command_columns, api_key_columns, audit_columns, audit_head_columns, org_columns,
    refresh_token_columns, session_columns, template_columns, ticket_columns, user_columns,
};

/// Typed column access with decoding errors turned into [`StoreError`], implemented for the rows
/// of every backend whose driver decodes the column types the schemas use.
pub(crate) trait Columns {
    fn uuid(&self, name: &str) -> Result<Uuid>;
    fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>>;
    fn text(&self, name: &str) -> Result<String>;
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    fn int32(&self, name: &str) -> Result<i32>;
    fn opt_int32(&self, name: &str) -> Result<Option<i32>>;
    fn flag(&self, name: &str) -> Result<bool>;
    fn time(&self, name: &str) -> Result<crate::Timestamp>;
    fn opt_time(&self, name: &str) -> Result<Option<crate::Timestamp>>;
    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T>;
}

fn get<'r, R, T>(row: &'r R, name: &str) -> Result<T>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name).map_err(|e| StoreError::Database(format!("reading column {name}: {e}")))
}

impl<R> Columns for R
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> crate::Timestamp: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn uuid(&self, name: &str) -> Result<Uuid> {
        get(self, name)
    }
    fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>> {
        get(self, name)
    }
    fn text(&self, name: &str) -> Result<String> {
        get(self, name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        get(self, name)
    }
    fn int(&self, name: &str) -> Result<i64> {
        get(self, name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        get(self, name)
    }
    fn int32(&self, name: &str) -> Result<i32> {
        get(self, name)
    }
    fn opt_int32(&self, name: &str) -> Result<Option<i32>> {
        get(self, name)
    }
    fn flag(&self, name: &str) -> Result<bool> {
        get(self, name)
    }
    fn time(&self, name: &str) -> Result<crate::Timestamp> {
        get(self, name)
    }
    fn opt_time(&self, name: &str) -> Result<Option<crate::Timestamp>> {
        get(self, name)
    }
    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let Json(value) = get::<_, Json<serde_json::Value>>(self, name)?;
        serde_json::from_value(value).map_err(|e| StoreError::Database(format!("decoding JSON column {name}: {e}")))
    }
}

// Record decoders, one per record, reading the columns listed above.

pub(crate) fn org(row: &impl Columns) -> Result<Org> {
    Ok(Org {
        id: row.uuid("id")?,
        name: row.text("name")?,
        mfa_required: row.flag("mfa_required")?,
        session_policy: row.json("session_policy")?,
        quotas: Quotas {
            max_sessions: row.opt_int("max_sessions")?,
            max_sessions_per_user: row.opt_int("max_sessions_per_user")?,
            max_cpu_millis: row.opt_int("max_cpu_millis")?,
            max_memory_mb: row.opt_int("max_memory_mb")?,
        },
        egress_allow: row.json("egress_allow")?,
        sso_mfa: sso_mfa_policy(&row.text("sso_mfa")?)?,
        created_at: row.time("created_at")?,
    })
}

fn sso_mfa_policy(policy: &str) -> Result<crate::SsoMfaPolicy> {
    crate::SsoMfaPolicy::parse(policy).ok_or_else(|| StoreError::Database(format!("unknown SSO MFA policy {policy:?}")))
}

pub(crate) fn user(row: &impl Columns) -> Result<User> {
    let role = row.text("role")?;
    Ok(User {
        id: row.uuid("id")?,
        org_id: row.uuid("org_id")?,
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Database(format!("unknown role {role:?}")))?,
        disabled: row.flag("disabled")?,
        mfa_secret: row.opt_text("mfa_secret")?,
        mfa_enabled: row.flag("mfa_enabled")?,
        mfa_last_step: row.opt_int("mfa_last_step")?,
        sessions_revoked_at: row.opt_time("sessions_revoked_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn api_key(row: &impl Columns) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.uuid("id")?,
        user_id: row.uuid("user_id")?,
        org_id: row.uuid("org_id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        key_hash: row.text("key_hash")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        expires_at: row.opt_time("expires_at")?,
        mfa: row.flag("mfa")?,
    })
}

pub(crate) fn refresh_token(row: &impl Columns) -> Result<RefreshToken> {
    Ok(RefreshToken {
        id: row.uuid("id")?,
        user_id: row.uuid("user_id")?,
        family_id: row.uuid("family_id")?,
        token_hash: row.text("token_hash")?,
        mfa: row.flag("mfa")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

pub(crate) fn template(row: &impl Columns) -> Result<Template> {
    Ok(Template {
        id: row.uuid("id")?,
        org_id: row.opt_uuid("org_id")?,
        name: row.text("name")?,
        display_name: row.text("display_name")?,
        description: row.text("description")?,
        icon: row.text("icon")?,
        image: row.text("image")?,
        env: row.json("env")?,
        cpu_millis: row.int("cpu_millis")?,
        memory_mb: row.int("memory_mb")?,
        shm_mb: row.int("shm_mb")?,
        port: row.int32("port")?,
        tags: row.json("tags")?,
        enabled: row.flag("enabled")?,
        egress_allow: row.json("egress_allow")?,
        session_policy: row.json("session_policy")?,
        home: row.json("home")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn session(row: &impl Columns) -> Result<Session> {
    let state = row.text("state")?;
    Ok(Session {
        id: row.uuid("id")?,
        org_id: row.uuid("org_id")?,
        owner_id: row.uuid("owner_id")?,
        template_id: row.uuid("template_id")?,
        state: SessionState::parse(&state)
            .ok_or_else(|| StoreError::Database(format!("unknown session state {state:?}")))?,
        agent_id: row.opt_uuid("agent_id")?,
        endpoint: row.opt_text("endpoint")?,
        phase: row.opt_text("phase")?,
        progress: row.opt_int32("progress")?,
        failure_reason: row.opt_text("failure_reason")?,
        cpu_millis: row.int("cpu_millis")?,
        memory_mb: row.int("memory_mb")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        started_at: row.opt_time("started_at")?,
        stopped_at: row.opt_time("stopped_at")?,
        last_activity_at: row.opt_time("last_activity_at")?,
    })
}

pub(crate) fn audit_event(row: &impl Columns) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: row.int("seq")?,
        id: row.uuid("id")?,
        time: row.time("time")?,
        actor_id: row.opt_uuid("actor_id")?,
        actor_name: row.text("actor_name")?,
        org_id: row.opt_uuid("org_id")?,
        action: row.text("action")?,
        target: row.text("target")?,
        result: row.text("result")?,
        client_ip: row.opt_text("client_ip")?,
        user_agent: row.opt_text("user_agent")?,
        trace_id: row.opt_text("trace_id")?,
        details: row.json("details")?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// A head with any part of its seal missing counts as unsealed: verification reports it.
pub(crate) fn audit_head(row: &impl Columns) -> Result<audit::ChainHead> {
    let seal = match (row.opt_int("keyed_from")?, row.opt_text("key_check")?, row.opt_text("mac")?) {
        (Some(keyed_from), Some(key_check), Some(mac)) => Some(audit::HeadSeal { keyed_from, key_check, mac }),
        _ => None,
    };
    Ok(audit::ChainHead { seq: row.int("seq")?, hash: row.text("hash")?, seal })
}

pub(crate) fn agent(row: &impl Columns) -> Result<Agent> {
    let platform = row.text("platform")?;
    Ok(Agent {
        id: row.uuid("id")?,
        name: row.text("name")?,
        platform: Platform::parse(&platform)
            .ok_or_else(|| StoreError::Database(format!("unknown agent platform {platform:?}")))?,
        labels: row.json("labels")?,
        reported_labels: row.json("reported_labels")?,
        token_hash: row.text("token_hash")?,
        version: row.opt_text("version")?,
        capacity: Capacity {
            max_sessions: row.int("max_sessions")?,
            cpu_millis: row.int("cpu_millis")?,
            memory_mb: row.int("memory_mb")?,
        },
        capacity_limit: CapacityLimit {
            max_sessions: row.opt_int("limit_sessions")?,
            cpu_millis: row.opt_int("limit_cpu_millis")?,
            memory_mb: row.opt_int("limit_memory_mb")?,
        },
        endpoint_cidrs: row.json("endpoint_cidrs")?,
        last_heartbeat_at: row.opt_time("last_heartbeat_at")?,
        created_at: row.time("created_at")?,
        connected_replica: row.opt_uuid("connected_replica")?,
    })
}

pub(crate) fn agent_command(row: &impl Columns) -> Result<AgentCommand> {
    Ok(AgentCommand {
        id: row.uuid("id")?,
        agent_id: row.uuid("agent_id")?,
        session_id: row.uuid("session_id")?,
        command: row.json("command")?,
        created_at: row.time("created_at")?,
        attempts: row.int32("attempts")?,
        last_sent_at: row.opt_time("last_sent_at")?,
        acked_at: row.opt_time("acked_at")?,
        error: row.opt_text("error")?,
    })
}

pub(crate) fn ticket(row: &impl Columns) -> Result<Ticket> {
    Ok(Ticket {
        token_hash: row.text("token_hash")?,
        session_id: row.uuid("session_id")?,
        user_id: row.uuid("user_id")?,
        expires_at: row.time("expires_at")?,
    })
}

/// Decodes every row with `decode`.
pub(crate) fn all<R, T>(rows: &[R], decode: impl Fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// Decodes the row, if there is one.
pub(crate) fn optional<R, T>(row: Option<R>, decode: impl Fn(&R) -> Result<T>) -> Result<Option<T>> {
    row.as_ref().map(decode).transpose()
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        match err.as_database_error().map(|e| e.kind()) {
            Some(ErrorKind::UniqueViolation) => StoreError::Conflict(format!("already exists ({err})")),
            Some(ErrorKind::ForeignKeyViolation) => {
                StoreError::Invalid(format!("refers to something that does not exist or is still in use ({err})"))
            }
            _ => StoreError::Database(err.to_string()),
        }
    }
}

// What constraint violations mean, in words for people (the server shows them).
pub(crate) const ORG_TAKEN: &str = "an organization with that name already exists";
pub(crate) const ORG_HAS_USERS: &str = "the organization still has users";
pub(crate) const NO_SUCH_ORG: &str = "the organization does not exist";
pub(crate) const USERNAME_TAKEN: &str = "that username is already taken";
pub(crate) const NO_SUCH_USER: &str = "the user does not exist";
pub(crate) const NO_SUCH_USER_IN_ORG: &str = "the user does not exist in that organization";
pub(crate) const USER_HAS_SESSIONS: &str = "the user still has sessions that have not ended";
pub(crate) const API_KEY_TAKEN: &str = "an API key with that hash already exists";
pub(crate) const REFRESH_TOKEN_TAKEN: &str = "a refresh token with that hash already exists";
pub(crate) const TEMPLATE_TAKEN: &str = "a template with that name already exists";
pub(crate) const TEMPLATE_IN_USE: &str = "the template is used by sessions that have not ended";
pub(crate) const AGENT_TAKEN: &str = "an agent with that name already exists";
pub(crate) const AGENT_TOKEN_TAKEN: &str = "another agent already has that token";
pub(crate) const NO_SUCH_AGENT: &str = "the agent does not exist";
pub(crate) const NO_SUCH_TEMPLATE: &str = "the template does not exist";
pub(crate) const COMMAND_TAKEN: &str = "a command with that id already exists";
pub(crate) const TICKET_TAKEN: &str = "a ticket with that hash already exists";
pub(crate) const NO_SUCH_SESSION_OR_USER: &str = "the session or the user does not exist";

/// Maps a unique violation to `Conflict(message)`, anything else as usual.
pub(crate) fn taken(message: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| violation(err, Some(message), None)
}

/// Maps a foreign-key violation to `Invalid(message)`, anything else as usual.
pub(crate) fn missing(message: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| violation(err, None, Some(message))
}

/// Both of the above.
pub(crate) fn taken_or_missing(taken: &'static str, missing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| violation(err, Some(taken), Some(missing))
}

fn violation(err: sqlx::Error, taken: Option<&str>, missing: Option<&str>) -> StoreError {
    match (err.as_database_error().map(|e| e.kind()), taken, missing) {
        (Some(ErrorKind::UniqueViolation), Some(message), _) => StoreError::Conflict(message.to_owned()),
        (Some(ErrorKind::ForeignKeyViolation), _, Some(message)) => StoreError::Invalid(message.to_owned()),
        _ => err.into(),
    }
}

pub(crate) fn migrate_error(err: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Database(format!("applying migrations: {err}"))
}

/// Timestamps are kept to the microsecond, PostgreSQL's precision, on every backend: truncating
/// before writing makes what is read back equal to what was written.
pub(crate) fn micros(t: crate::Timestamp) -> crate::Timestamp {
    t.trunc_subsecs(6)
}

pub(crate) fn now() -> crate::Timestamp {
    micros(Utc::now())
}

/// How long before a new ticket expires another must have expired for `create_ticket` to delete it.
///
/// The store does not know the issuer's clock (`create_ticket` takes no `now`, and the server's
/// clock may not be the wall clock), but it knows the new ticket was issued before it expires. So
/// a ticket that expired more than this before the new one expires had expired when the new one
/// was issued, as long as tickets live no longer than this (they live for a minute).
const TICKET_PRUNE_MARGIN: TimeDelta = TimeDelta::days(1);

/// Tickets expiring before this are deleted when `ticket` is created.
pub(crate) fn ticket_prune_before(ticket: &Ticket) -> crate::Timestamp {
    prune_before(ticket.expires_at)
}

/// Short-lived tokens expiring before this are deleted when one expiring at `expires_at` is
/// created (the reasoning of [`TICKET_PRUNE_MARGIN`] holds for every token living minutes).
pub(crate) fn prune_before(expires_at: crate::Timestamp) -> crate::Timestamp {
    micros(expires_at) - TICKET_PRUNE_MARGIN
}

/// A ticket just deleted by redemption counts only if it had not expired at `now`.
pub(crate) fn unexpired(ticket: Option<Ticket>, now: crate::Timestamp) -> Option<Ticket> {
    let now = micros(now);
    ticket.filter(|ticket| ticket.expires_at > now)
}

/// The org a scope is limited to, `None` for the platform: bound as `(? IS NULL OR org_id = ?)`.
pub(crate) fn scope_org(scope: Scope) -> Option<Uuid> {
    match scope {
        Scope::Platform => None,
        Scope::Org(id) => Some(id),
    }
}

/// The usernames `Alice` and `alice` are the same account. The key is computed here rather than
/// with SQL `lower()` so that both backends fold case identically (SQLite's is ASCII-only).
pub(crate) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// Every page, audit pages included, holds from 1 to [`Page::MAX_LIMIT`] items.
fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, Page::MAX_LIMIT)
}

/// How many rows to fetch for `page`: one more than the page holds, to learn whether another
/// page follows without a second query.
pub(crate) fn fetch_limit(page: Page) -> i64 {
    i64::from(clamp_limit(page.limit)) + 1
}

/// Cuts the rows fetched with [`fetch_limit`] down to the page; the cursor is set only when the
/// extra row proved that more follow.
pub(crate) fn paged<T>(mut items: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> Paged<T> {
    let limit = clamp_limit(page.limit) as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Paged { items, next }
}

/// One embedded migration file: its version, its description and its SQL.
pub(crate) type MigrationFile = (i64, &'static str, &'static str);

/// A migrator over migrations embedded with `include_str!`. (`sqlx::migrate!` would need sqlx's
/// `macros` feature, which compiles both database drivers a second time for the proc macro.) The
/// versions, descriptions and checksums are the ones `migrate!` would record for files named
/// `<version>_<description>.sql`, so the two are interchangeable; a unit test keeps the lists in
/// step with the directories.
/// A connection that has idled this long is pinged before it is lent out: the database, or a
/// network device in between, may have dropped it meanwhile.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool settings both backends share. sqlx pings every connection when it comes back to the pool
/// and, by default, again before lending it out, which puts a round trip to the database (or to
/// SQLite's connection thread) in front of every statement. The ping on return already shows that a
/// connection idle for a moment works, so the one before lending runs only after [`PING_AFTER_IDLE`].
pub(crate) fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new().test_before_acquire(false).before_acquire(ping_if_idle::<DB>)
}

fn ping_if_idle<DB: Database>(
    connection: &mut DB::Connection,
    idle: PoolConnectionMetadata,
) -> BoxFuture<'_, std::result::Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if idle.idle_for >= PING_AFTER_IDLE {
            connection.ping().await?;
        }
        Ok(true)
    })
}

pub(crate) fn migrator(files: &[MigrationFile]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// A query with its parameters bound.
pub(crate) type SqlQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// A backend that binds values of type `T` (borrowing for `'t`). Generic code cannot call
/// `Query::bind` on a `DB` parameter without naming `T: Encode<DB>` at every use; as a supertrait
/// of [`Backend`] this bound is implied by `DB: Backend` alone.
pub(crate) trait Binds<'t, T>: Database {
    fn bind_to(query: SqlQuery<'_, Self>, value: T) -> SqlQuery<'_, Self>;
    fn push_bind_to(query: &mut QueryBuilder<Self>, value: T);
}

impl<'t, DB: Database, T> Binds<'t, T> for DB
where
    T: Encode<'t, DB> + Type<DB>,
{
    fn bind_to(query: SqlQuery<'_, Self>, value: T) -> SqlQuery<'_, Self> {
        query.bind(value)
    }

    fn push_bind_to(query: &mut QueryBuilder<Self>, value: T) {
        query.push_bind(value);
    }
}

/// A value bound as a parameter, and its nullable form.
pub(crate) trait BindsNullable<'t, T>: Binds<'t, T> + Binds<'t, Option<T>> {}

impl<'t, DB: Binds<'t, T> + Binds<'t, Option<T>>, T> BindsNullable<'t, T> for DB {}

/// How many rows a statement changed, which each driver reports on a type of its own.
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// What differs between the SQL backends. The queries themselves are written once, in
/// [`SqlStore`](crate::sql_store::SqlStore), with `$N` parameters (which sqlx binds on both);
/// what a backend states here is only what its dialect or its locking does differently.
pub(crate) trait Backend:
    Database<Arguments: IntoArguments<Self>, Row: Columns, QueryResult: RowsAffected>
    + for<'t> BindsNullable<'t, Uuid>
    + for<'t> BindsNullable<'t, String>
    + for<'t> BindsNullable<'t, &'t str>
    + for<'t> BindsNullable<'t, i64>
    + for<'t> BindsNullable<'t, i32>
    + for<'t> BindsNullable<'t, bool>
    + for<'t> BindsNullable<'t, crate::Timestamp>
{
    /// Begins a transaction that reads what it then writes.
    const BEGIN_WRITE: &'static str;
    /// Ends a `SELECT` of rows that its transaction then writes, to hold them until it ends.
    const LOCK_ROWS: &'static str;
    /// Follows the JSON parameter `$1` so that it is read back as a JSON column stores it.
    const AS_STORED_JSON: &'static str;
    /// The audit `details` column as text, for free-text search.
    const DETAILS_TEXT: &'static str;
    /// Inserts the recovery codes of user `$1` from the JSON array of hashes `$2`.
    const INSERT_RECOVERY_CODES: &'static str;

    /// Binds `value` as JSON, or NULL. (`Json<T>` encodes on every backend for every `T`, which
    /// a bound cannot say for a generic `DB`.)
    fn bind_json<'q, T: Serialize>(query: SqlQuery<'q, Self>, value: Option<&T>) -> SqlQuery<'q, Self>;
}

/// Parameter binding for queries over any [`Backend`], in the style of `Query::bind`.
pub(crate) trait Params: Sized {
    type Database: Backend;

    fn arg<'t, T>(self, value: T) -> Self
    where
        Self::Database: Binds<'t, T>;

    fn json<T: Serialize>(self, value: &T) -> Self;

    fn opt_json<T: Serialize>(self, value: Option<&T>) -> Self;

    /// Binds a patch of a nullable column as two parameters, for
    /// `CASE WHEN <set> THEN <value> ELSE <column> END`: whether to set it, and the value (NULL
    /// clears).
    fn patch<'t, T>(self, field: Option<Option<T>>) -> Self
    where
        Self::Database: Binds<'t, Option<T>>;
}

impl<DB: Backend> Params for SqlQuery<'_, DB> {
    type Database = DB;

    fn arg<'t, T>(self, value: T) -> Self
    where
        DB: Binds<'t, T>,
    {
        DB::bind_to(self, value)
    }

    fn json<T: Serialize>(self, value: &T) -> Self {
        DB::bind_json(self, Some(value))
    }

    fn opt_json<T: Serialize>(self, value: Option<&T>) -> Self {
        DB::bind_json(self, value)
    }

    fn patch<'t, T>(self, field: Option<Option<T>>) -> Self
    where
        DB: Binds<'t, Option<T>>,
    {
        self.arg(field.is_some()).arg(field.flatten())
    }
}

// List queries. Their conditions depend on the scope and the filters, so they are built at run
// time (binding every value but the limit); each combination gets its own plan using the right
// index. The limit is written into the SQL: SQLite plans with a bound LIMIT's value, so it would
// prepare the statement again every time the value is bound, on every page read.

fn keyset<DB: Backend>(query: &mut QueryBuilder<DB>, page: Page) {
    if let Some(after) = page.after {
        query.push(" AND id > ");
        DB::push_bind_to(query, after);
    }
    query.push(format_args!(" ORDER BY id LIMIT {}", fetch_limit(page)));
}

pub(crate) fn list_orgs<DB: Backend>(scope: Scope, page: Page) -> QueryBuilder<DB> {
    let mut query = QueryBuilder::new(concat!("SELECT ", org_columns!(), " FROM orgs WHERE TRUE"));
    if let Some(org) = scope_org(scope) {
        query.push(" AND id = ");
        DB::push_bind_to(&mut query, org);
    }
    keyset(&mut query, page);
    query
}

pub(crate) fn list_users<DB: Backend>(scope: Scope, page: Page) -> QueryBuilder<DB> {
    let mut query = QueryBuilder::new(concat!("SELECT ", user_columns!(), " FROM users WHERE TRUE"));
    if let Some(org) = scope_org(scope) {
        query.push(" AND org_id = ");
        DB::push_bind_to(&mut query, org);
    }
    keyset(&mut query, page);
    query
}

/// An org sees its own templates and the global ones.
pub(crate) fn list_templates<DB: Backend>(scope: Scope, page: Page) -> QueryBuilder<DB> {
    let mut query = QueryBuilder::new(concat!("SELECT ", template_columns!(), " FROM templates WHERE TRUE"));
    if let Some(org) = scope_org(scope) {
        query.push(" AND (org_id IS NULL OR org_id = ");
        DB::push_bind_to(&mut query, org);
        query.push(")");
    }
    keyset(&mut query, page);
    query
}

pub(crate) fn list_sessions<DB: Backend>(scope: Scope, filter: &SessionFilter, page: Page) -> QueryBuilder<DB> {
    let mut query = QueryBuilder::new(concat!("SELECT ", session_columns!(), " FROM sessions WHERE TRUE"));
    if let Some(org) = scope_org(scope) {
        query.push(" AND org_id = ");
        DB::push_bind_to(&mut query, org);
    }
    if let Some(owner) = filter.owner_id {
        query.push(" AND owner_id = ");
        DB::push_bind_to(&mut query, owner);
    }
    if let Some(state) = filter.state {
        query.push(" AND state = ");
        DB::push_bind_to(&mut query, state.as_str().to_owned());
    }
    keyset(&mut query, page);
    query
}

/// Newest first; an org sees the events of that org.
pub(crate) fn list_audit<DB: Backend>(scope: Scope, filter: &AuditFilter, page: AuditPage) -> QueryBuilder<DB> {
    let mut query = QueryBuilder::new(concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE TRUE"));
    if let Some(org) = scope_org(scope) {
        query.push(" AND org_id = ");
        DB::push_bind_to(&mut query, org);
    }
    let exact = [
        ("actor_name", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
        ("result", &filter.result),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            query.push(format_args!(" AND {column} = "));
            DB::push_bind_to(&mut query, value.clone());
        }
    }
    if let Some(since) = filter.since {
        query.push(" AND time >= ");
        DB::push_bind_to(&mut query, micros(since));
    }
    if let Some(until) = filter.until {
        query.push(" AND time <= ");
        DB::push_bind_to(&mut query, micros(until));
    }
    if let Some(text) = &filter.text {
        // Case-insensitive substring: both sides lower-cased (SQLite's lower() folds ASCII only),
        // LIKE wildcards in the text escaped.
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        let mut separator = " AND (";
        for column in ["actor_name", "action", "target", DB::DETAILS_TEXT] {
            query.push(format_args!("{separator}lower({column}) LIKE "));
            DB::push_bind_to(&mut query, pattern.clone());
            query.push(" ESCAPE '\\'");
            separator = " OR ";
        }
        query.push(")");
    }
    if let Some(before) = page.before_seq {
        query.push(" AND seq < ");
        DB::push_bind_to(&mut query, before);
    }
    query.push(format_args!(" ORDER BY seq DESC LIMIT {}", clamp_limit(page.limit)));
    query
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The embedded list must name every file in `dir`, in order, and nothing else.
    pub(crate) fn assert_embeds_every_file(dir: &str, files: &[MigrationFile]) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
        let mut on_disk: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> =
            files.iter().map(|(version, description, _)| format!("{version:04}_{description}.sql")).collect();
        assert_eq!(embedded, on_disk, "update the migration list to match {}", path.display());
        for (file, (_, _, sql)) in on_disk.iter().zip(files) {
            assert_eq!(std::fs::read_to_string(path.join(file)).unwrap(), *sql, "{file} is not the embedded one");
        }
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_rows_follow() {
        let page = Page::first(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let full = paged(ids.clone(), page, |id| *id);
        assert_eq!(full.items, ids[..2]);
        assert_eq!(full.next, Some(ids[1]));
        let last = paged(ids[..2].to_vec(), page, |id| *id);
        assert_eq!(last.next, None);
        assert_eq!(fetch_limit(Page { limit: 0, after: None }), 2);
        assert_eq!(fetch_limit(Page { limit: 10_000, after: None }), i64::from(Page::MAX_LIMIT) + 1);
    }
}

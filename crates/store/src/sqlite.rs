//! The embedded default backend: one SQLite database file in WAL mode.
//!
//! SQLite allows one writer at a time. Writes therefore go through a pool of a single connection,
//! so concurrent writers queue in-process rather than meet `SQLITE_BUSY`, while reads use a small
//! pool of their own that WAL lets run beside the writer. Transactions that read before they write
//! still begin `IMMEDIATE`, taking the write lock up front, so that another process on the same
//! file (an admin command) makes them wait out the busy timeout instead of failing mid-way.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Sqlite, Transaction};
use streamspace_proto::hub::{Capacity, Command};
use uuid::Uuid;

use crate::audit::{AuditKey, ChainHead};
use crate::sql::{
    self, BindPatch, MigrationFile, agent_columns, agent_command_columns, api_key_columns, audit_columns,
    audit_head_columns, org_columns, refresh_token_columns, session_columns, template_columns, ticket_columns,
    user_columns,
};
use crate::{
    Agent, AgentCommand, ApiKey, AuditEvent, AuditFilter, AuditPage, NewAgent, NewApiKey, NewAuditEvent, NewSession,
    NewTemplate, NewUser, Org, OrgPatch, Page, Paged, Quotas, RefreshOutcome, RefreshToken, Result, Scope, Session,
    SessionFilter, SessionUpdate, Store, StoreError, Template, TemplatePatch, Ticket, Timestamp, Usage, User,
    UserPatch, redact_url,
};

const MIGRATIONS: &[MigrationFile] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "agents", include_str!("../migrations/sqlite/0002_agents.sql")),
    (3, "egress_allow", include_str!("../migrations/sqlite/0003_egress_allow.sql")),
    (4, "audit_keyed_chain", include_str!("../migrations/sqlite/0004_audit_keyed_chain.sql")),
    (5, "revocation", include_str!("../migrations/sqlite/0005_revocation.sql")),
    (6, "agent_trust", include_str!("../migrations/sqlite/0006_agent_trust.sql")),
    (7, "org_clipboard", include_str!("../migrations/sqlite/0007_org_clipboard.sql")),
];

/// Reader connections: enough to keep two cores busy while a connection waits on the disk.
const READERS: u32 = 4;

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl sql::Dialect for Sqlite {
    const DETAILS_TEXT: &'static str = "details";
}

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite::memory:`) and
    /// applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL {:?}: {e}", redact_url(url))))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL is safe from corruption and survives a crash of the process;
            // only a power loss can undo the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // The writer stays open for the life of the store: that keeps an in-memory database
        // alive, and spares reopening the file.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sql::migrator(MIGRATIONS).run(&writer).await.map_err(sql::migrate_error)?;
        // An in-memory database is private to its connections' shared cache, where WAL does not
        // apply: readers gain nothing there, so it is served by the writer alone.
        let reader = if is_in_memory(url) {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(READERS).connect_with(options).await?
        };
        Ok(SqliteStore { writer, reader })
    }

    /// The writer pool, for tools and tests that need the database itself.
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// A transaction holding the write lock from its first statement.
    async fn write_transaction(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_org(&self, name: &str, quotas: Quotas) -> Result<Org> {
        let row = sqlx::query(concat!(
            "INSERT INTO orgs (id, name, mfa_required, created_at, max_sessions, max_sessions_per_user, ",
            "max_cpu_millis, max_memory_mb) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7) RETURNING ",
            org_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(sql::now())
        .bind(quotas.max_sessions)
        .bind(quotas.max_sessions_per_user)
        .bind(quotas.max_cpu_millis)
        .bind(quotas.max_memory_mb)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken(sql::ORG_TAKEN))?;
        sql::org(&row)
    }

    async fn get_org(&self, scope: Scope, id: Uuid) -> Result<Option<Org>> {
        let row =
            sqlx::query(concat!("SELECT ", org_columns!(), " FROM orgs WHERE id = ?1 AND (?2 IS NULL OR id = ?2)"))
                .bind(id)
                .bind(sql::scope_org(scope))
                .fetch_optional(&self.reader)
                .await?;
        sql::optional(row, sql::org)
    }

    async fn get_org_by_name(&self, name: &str) -> Result<Option<Org>> {
        let row = sqlx::query(concat!("SELECT ", org_columns!(), " FROM orgs WHERE name = ?1"))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::org)
    }

    async fn list_orgs(&self, scope: Scope, page: Page) -> Result<Paged<Org>> {
        let rows = sql::list_orgs::<Sqlite>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::org)?, page, |org| org.id))
    }

    async fn update_org(&self, scope: Scope, id: Uuid, patch: OrgPatch) -> Result<Option<Org>> {
        let quotas = patch.quotas.unwrap_or_default();
        let row = sqlx::query(concat!(
            "UPDATE orgs SET name = COALESCE(?3, name), mfa_required = COALESCE(?4, mfa_required), ",
            "allow_clipboard = COALESCE(?11, allow_clipboard), ",
            "max_sessions = CASE WHEN ?5 THEN ?6 ELSE max_sessions END, ",
            "max_sessions_per_user = CASE WHEN ?5 THEN ?7 ELSE max_sessions_per_user END, ",
            "max_cpu_millis = CASE WHEN ?5 THEN ?8 ELSE max_cpu_millis END, ",
            "max_memory_mb = CASE WHEN ?5 THEN ?9 ELSE max_memory_mb END, ",
            "egress_allow = COALESCE(?10, egress_allow) ",
            "WHERE id = ?1 AND (?2 IS NULL OR id = ?2) RETURNING ",
            org_columns!()
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .bind(patch.name)
        .bind(patch.mfa_required)
        .bind(patch.quotas.is_some())
        .bind(quotas.max_sessions)
        .bind(quotas.max_sessions_per_user)
        .bind(quotas.max_cpu_millis)
        .bind(quotas.max_memory_mb)
        .bind(patch.egress_allow.map(Json))
        .bind(patch.allow_clipboard)
        .fetch_optional(&self.writer)
        .await
        .map_err(sql::taken(sql::ORG_TAKEN))?;
        sql::optional(row, sql::org)
    }

    async fn delete_org(&self, scope: Scope, id: Uuid) -> Result<bool> {
        // The users' foreign key refuses while any remain; templates go with the org.
        let done = sqlx::query("DELETE FROM orgs WHERE id = ?1 AND (?2 IS NULL OR id = ?2)")
            .bind(id)
            .bind(sql::scope_org(scope))
            .execute(&self.writer)
            .await
            .map_err(sql::missing(sql::ORG_HAS_USERS))?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        let now = sql::now();
        let row = sqlx::query(concat!(
            "INSERT INTO users (id, org_id, username, username_key, password_hash, role, disabled, mfa_enabled, ",
            "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?7) RETURNING ",
            user_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(user.org_id)
        .bind(&user.username)
        .bind(sql::username_key(&user.username))
        .bind(user.password_hash)
        .bind(user.role.as_str())
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::USERNAME_TAKEN, sql::NO_SUCH_ORG))?;
        sql::user(&row)
    }

    async fn get_user(&self, scope: Scope, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2)"
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::user)
    }

    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE username_key = ?1"))
            .bind(sql::username_key(username))
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::user)
    }

    async fn list_users(&self, scope: Scope, page: Page) -> Result<Paged<User>> {
        let rows = sql::list_users::<Sqlite>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::user)?, page, |user| user.id))
    }

    async fn update_user(&self, scope: Scope, id: Uuid, patch: UserPatch) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "UPDATE users SET role = COALESCE(?3, role), disabled = COALESCE(?4, disabled), ",
            "password_hash = COALESCE(?5, password_hash), mfa_secret = CASE WHEN ?6 THEN ?7 ELSE mfa_secret END, ",
            "mfa_enabled = COALESCE(?8, mfa_enabled), updated_at = ?9, ",
            "sessions_revoked_at = COALESCE(?10, sessions_revoked_at) ",
            "WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2) RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .bind(patch.role.map(|role| role.as_str()))
        .bind(patch.disabled)
        .bind(patch.password_hash)
        .bind_patch(patch.mfa_secret)
        .bind(patch.mfa_enabled)
        .bind(sql::now())
        .bind(patch.sessions_revoked_at.map(sql::micros))
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::user)
    }

    async fn delete_user(&self, scope: Scope, id: Uuid) -> Result<bool> {
        // Check and delete under the write lock, so that no session can start in between.
        let mut tx = self.write_transaction().await?;
        let found = sqlx::query("SELECT 1 FROM users WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2)")
            .bind(id)
            .bind(sql::scope_org(scope))
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE owner_id = ?1 AND state NOT IN ('stopped', 'failed'))",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if live {
            return Err(StoreError::Invalid(sql::USER_HAS_SESSIONS.to_owned()));
        }
        // Keys, tokens, codes and the user's ended sessions go with the user (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = ?1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET mfa_last_step = ?2 WHERE id = ?1 AND (mfa_last_step IS NULL OR mfa_last_step < ?2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, user_id: Uuid, code_hashes: &[String]) -> Result<()> {
        let mut tx = self.write_transaction().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?1").bind(user_id).execute(&mut *tx).await?;
        // `WHERE TRUE` keeps SQLite from parsing the upsert's ON as a join condition.
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) SELECT ?1, value FROM json_each(?2) WHERE TRUE \
             ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(Json(code_hashes))
        .execute(&mut *tx)
        .await
        .map_err(sql::missing(sql::NO_SUCH_USER))?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, user_id: Uuid, code_hash: &str) -> Result<bool> {
        // Deleting is the atomic test-and-spend: of two concurrent uses, one deletes the row.
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2")
            .bind(user_id)
            .bind(code_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remaining_recovery_codes(&self, user_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1")
            .bind(user_id)
            .fetch_one(&self.reader)
            .await?)
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let row = sqlx::query(concat!(
            "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, created_at, expires_at, mfa) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING ",
            api_key_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(key.user_id)
        .bind(key.org_id)
        .bind(key.name)
        .bind(key.prefix)
        .bind(key.key_hash)
        .bind(sql::now())
        .bind(key.expires_at.map(sql::micros))
        .bind(key.mfa)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::API_KEY_TAKEN, sql::NO_SUCH_USER_IN_ORG))?;
        sql::api_key(&row)
    }

    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE user_id = ?1 ORDER BY id"))
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
        sql::all(&rows, sql::api_key)
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE key_hash = ?1"))
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::api_key)
    }

    async fn touch_api_key(&self, id: Uuid, at: Timestamp) -> Result<()> {
        // Never moves back: concurrent requests may report their times out of order.
        sqlx::query(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )
        .bind(id)
        .bind(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_api_key(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ?1 AND user_id = ?2")
            .bind(id)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_api_keys(&self, user_id: Uuid) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_keys WHERE user_id = ?1").bind(user_id).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }

    async fn insert_refresh_token(&self, token: RefreshToken) -> Result<()> {
        // A token joining a revoked family is born revoked: its predecessor may have been replayed
        // between being spent and this insert.
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, mfa, created_at, expires_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT MAX(revoked_at) FROM refresh_tokens WHERE family_id = ?3))",
        )
        .bind(token.id)
        .bind(token.user_id)
        .bind(token.family_id)
        .bind(token.token_hash)
        .bind(token.mfa)
        .bind(sql::micros(token.created_at))
        .bind(sql::micros(token.expires_at))
        .execute(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::REFRESH_TOKEN_TAKEN, sql::NO_SUCH_USER))?;
        Ok(())
    }

    async fn rotate_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<RefreshOutcome> {
        let now = sql::micros(now);
        // Spending is one conditional UPDATE, so of two concurrent presentations exactly one wins.
        let spent = sqlx::query(concat!(
            "UPDATE refresh_tokens SET spent_at = ?2 WHERE token_hash = ?1 AND spent_at IS NULL ",
            "AND revoked_at IS NULL AND expires_at > ?2 RETURNING ",
            refresh_token_columns!()
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        if let Some(row) = spent {
            return Ok(RefreshOutcome::Rotated(sql::refresh_token(&row)?));
        }
        // Not live: if it was spent or revoked, it is being replayed, and its family dies.
        let revoked: Option<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE family_id = \
             (SELECT family_id FROM refresh_tokens WHERE token_hash = ?1 AND \
             (spent_at IS NOT NULL OR revoked_at IS NOT NULL)) RETURNING user_id, family_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match revoked {
            Some((user_id, family_id)) => RefreshOutcome::Reused { user_id, family_id },
            None => RefreshOutcome::Invalid,
        })
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?2) \
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ?1)",
        )
        .bind(token_hash)
        .bind(sql::now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_refresh_tokens(&self, user_id: Uuid) -> Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(sql::now())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_template(&self, template: NewTemplate) -> Result<Template> {
        let now = sql::now();
        let row = sqlx::query(concat!(
            "INSERT INTO templates (id, org_id, name, display_name, description, icon, image, env, cpu_millis, ",
            "memory_mb, shm_mb, port, tags, enabled, egress_allow, created_at, updated_at) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16) RETURNING ",
            template_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(template.org_id)
        .bind(template.name)
        .bind(template.display_name)
        .bind(template.description)
        .bind(template.icon)
        .bind(template.image)
        .bind(Json(template.env))
        .bind(template.cpu_millis)
        .bind(template.memory_mb)
        .bind(template.shm_mb)
        .bind(template.port)
        .bind(Json(template.tags))
        .bind(template.enabled)
        .bind(Json(template.egress_allow))
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::TEMPLATE_TAKEN, sql::NO_SUCH_ORG))?;
        sql::template(&row)
    }

    async fn get_template(&self, scope: Scope, id: Uuid) -> Result<Option<Template>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM templates WHERE id = ?1 AND (?2 IS NULL OR org_id IS NULL OR org_id = ?2)"
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn get_template_by_name(&self, scope: Scope, name: &str) -> Result<Option<Template>> {
        // The platform scope names global templates only: org templates may share a name.
        let row = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM templates WHERE name = ?1 AND (org_id IS NULL OR org_id = ?2) ORDER BY org_id IS NULL LIMIT 1"
        ))
        .bind(name)
        .bind(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn list_templates(&self, scope: Scope, page: Page) -> Result<Paged<Template>> {
        let rows = sql::list_templates::<Sqlite>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::template)?, page, |template| template.id))
    }

    async fn update_template(&self, scope: Scope, id: Uuid, patch: TemplatePatch) -> Result<Option<Template>> {
        // An org may change its own templates only: the global ones belong to the platform.
        let row = sqlx::query(concat!(
            "UPDATE templates SET display_name = COALESCE(?3, display_name), ",
            "description = COALESCE(?4, description), icon = COALESCE(?5, icon), image = COALESCE(?6, image), ",
            "env = COALESCE(?7, env), cpu_millis = COALESCE(?8, cpu_millis), memory_mb = COALESCE(?9, memory_mb), ",
            "shm_mb = COALESCE(?10, shm_mb), port = COALESCE(?11, port), tags = COALESCE(?12, tags), ",
            "enabled = COALESCE(?13, enabled), egress_allow = COALESCE(?15, egress_allow), updated_at = ?14 ",
            "WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2) RETURNING ",
            template_columns!()
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .bind(patch.display_name)
        .bind(patch.description)
        .bind(patch.icon)
        .bind(patch.image)
        .bind(patch.env.map(Json))
        .bind(patch.cpu_millis)
        .bind(patch.memory_mb)
        .bind(patch.shm_mb)
        .bind(patch.port)
        .bind(patch.tags.map(Json))
        .bind(patch.enabled)
        .bind(sql::now())
        .bind(patch.egress_allow.map(Json))
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn delete_template(&self, scope: Scope, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM templates WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2) AND NOT EXISTS \
             (SELECT 1 FROM sessions WHERE template_id = ?1 AND state NOT IN ('stopped', 'failed'))",
        )
        .bind(id)
        .bind(sql::scope_org(scope))
        .execute(&self.writer)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing deleted: missing (or out of scope), or still used by a live session.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM templates WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2))")
                .bind(id)
                .bind(sql::scope_org(scope))
                .fetch_one(&self.writer)
                .await?;
        if exists { Err(StoreError::Invalid(sql::TEMPLATE_IN_USE.to_owned())) } else { Ok(false) }
    }

    async fn create_session(&self, session: NewSession) -> Result<Session> {
        let now = sql::now();
        let row = sqlx::query(concat!(
            "INSERT INTO sessions (id, org_id, owner_id, template_id, state, cpu_millis, memory_mb, created_at, ",
            "updated_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?7) RETURNING ",
            session_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(session.org_id)
        .bind(session.owner_id)
        .bind(session.template_id)
        .bind(session.cpu_millis)
        .bind(session.memory_mb)
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::missing(sql::NO_SUCH_USER_IN_ORG))?;
        sql::session(&row)
    }

    async fn get_session(&self, scope: Scope, id: Uuid) -> Result<Option<Session>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ?1 AND (?2 IS NULL OR org_id = ?2)"
        ))
        .bind(id)
        .bind(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::session)
    }

    async fn list_sessions(&self, scope: Scope, filter: SessionFilter, page: Page) -> Result<Paged<Session>> {
        let rows = sql::list_sessions::<Sqlite>(scope, &filter, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::session)?, page, |session| session.id))
    }

    async fn update_session(&self, id: Uuid, update: SessionUpdate) -> Result<Option<Session>> {
        let row = sqlx::query(concat!(
            "UPDATE sessions SET state = ?3, agent_id = CASE WHEN ?4 THEN ?5 ELSE agent_id END, ",
            "endpoint = CASE WHEN ?6 THEN ?7 ELSE endpoint END, phase = CASE WHEN ?8 THEN ?9 ELSE phase END, ",
            "progress = CASE WHEN ?10 THEN ?11 ELSE progress END, ",
            "failure_reason = CASE WHEN ?12 THEN ?13 ELSE failure_reason END, ",
            "started_at = CASE WHEN ?14 THEN ?15 ELSE started_at END, ",
            "stopped_at = CASE WHEN ?16 THEN ?17 ELSE stopped_at END, updated_at = ?18 ",
            "WHERE id = ?1 AND state = ?2 RETURNING ",
            session_columns!()
        ))
        .bind(id)
        .bind(update.expected.as_str())
        .bind(update.state.as_str())
        .bind_patch(update.agent_id)
        .bind_patch(update.endpoint)
        .bind_patch(update.phase)
        .bind_patch(update.progress)
        .bind_patch(update.failure_reason)
        .bind_patch(update.started_at.map(|at| at.map(sql::micros)))
        .bind_patch(update.stopped_at.map(|at| at.map(sql::micros)))
        .bind(update.at.map_or_else(sql::now, sql::micros))
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::session)
    }

    async fn touch_session(&self, id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET last_activity_at = ?2 WHERE id = ?1 \
             AND (last_activity_at IS NULL OR last_activity_at < ?2)",
        )
        .bind(id)
        .bind(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn usage(&self, org_id: Uuid, user_id: Uuid) -> Result<Usage> {
        let (org_sessions, user_sessions, org_cpu_millis, org_memory_mb) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(owner_id = ?2), 0), COALESCE(SUM(cpu_millis), 0), \
             COALESCE(SUM(memory_mb), 0) FROM sessions WHERE org_id = ?1 AND state NOT IN ('stopped', 'failed')",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(Usage { org_sessions, user_sessions, org_cpu_millis, org_memory_mb })
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<Agent> {
        let row = sqlx::query(concat!(
            "INSERT INTO agents (id, name, platform, labels, token_hash, created_at, limit_sessions, ",
            "limit_cpu_millis, limit_memory_mb, endpoint_cidrs) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING ",
            agent_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(agent.name)
        .bind(agent.platform.as_str())
        .bind(Json(agent.labels))
        .bind(agent.token_hash)
        .bind(sql::now())
        .bind(agent.capacity_limit.max_sessions)
        .bind(agent.capacity_limit.cpu_millis)
        .bind(agent.capacity_limit.memory_mb)
        .bind(Json(agent.endpoint_cidrs))
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken(sql::AGENT_TAKEN))?;
        sql::agent(&row)
    }

    async fn get_agent(&self, id: Uuid) -> Result<Option<Agent>> {
        let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::agent)
    }

    async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents ORDER BY id"))
            .fetch_all(&self.reader)
            .await?;
        sql::all(&rows, sql::agent)
    }

    async fn find_agent_by_token(&self, token_hash: &str) -> Result<Option<Agent>> {
        let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE token_hash = ?1"))
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::agent)
    }

    async fn set_agent_token(&self, id: Uuid, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE agents SET token_hash = ?2 WHERE id = ?1")
            .bind(id)
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(sql::taken(sql::AGENT_TOKEN_TAKEN))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_agent_hello(
        &self,
        id: Uuid,
        version: &str,
        capacity: Capacity,
        reported_labels: &BTreeMap<String, String>,
        at: Timestamp,
    ) -> Result<()> {
        // The heartbeat never moves back, as in record_agent_heartbeat.
        sqlx::query(
            "UPDATE agents SET version = ?2, max_sessions = ?3, cpu_millis = ?4, memory_mb = ?5, reported_labels = ?6, \
             last_heartbeat_at = MAX(COALESCE(last_heartbeat_at, ?7), ?7) WHERE id = ?1",
        )
        .bind(id)
        .bind(version)
        .bind(capacity.max_sessions)
        .bind(capacity.cpu_millis)
        .bind(capacity.memory_mb)
        .bind(Json(reported_labels))
        .bind(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_agent_heartbeat(&self, id: Uuid, at: Timestamp) -> Result<()> {
        // Never moves back: a heartbeat may be recorded after a later hello.
        sqlx::query(
            "UPDATE agents SET last_heartbeat_at = ?2 WHERE id = ?1 \
             AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ?2)",
        )
        .bind(id)
        .bind(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_agent(&self, id: Uuid) -> Result<bool> {
        // Its commands go with it (ON DELETE CASCADE); sessions have no foreign key to agents.
        let done = sqlx::query("DELETE FROM agents WHERE id = ?1").bind(id).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn enqueue_command(&self, agent_id: Uuid, command: Command, at: Timestamp) -> Result<AgentCommand> {
        let row = sqlx::query(concat!(
            "INSERT INTO agent_commands (id, agent_id, session_id, command, created_at, attempts) ",
            "VALUES (?1, ?2, ?3, ?4, ?5, 0) RETURNING ",
            agent_command_columns!()
        ))
        .bind(command.id)
        .bind(agent_id)
        .bind(command.session_id)
        .bind(Json(&command))
        .bind(sql::micros(at))
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::COMMAND_TAKEN, sql::NO_SUCH_AGENT))?;
        sql::agent_command(&row)
    }

    async fn pending_commands(&self, agent_id: Uuid) -> Result<Vec<AgentCommand>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            agent_command_columns!(),
            " FROM agent_commands WHERE agent_id = ?1 AND acked_at IS NULL ORDER BY created_at, id"
        ))
        .bind(agent_id)
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::agent_command)
    }

    async fn mark_command_sent(&self, id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE agent_commands SET attempts = attempts + 1, last_sent_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(sql::micros(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn ack_command(
        &self,
        agent_id: Uuid,
        id: Uuid,
        error: Option<String>,
        at: Timestamp,
    ) -> Result<Option<AgentCommand>> {
        // One conditional UPDATE: of two answers to the same command, exactly one acknowledges it.
        let row = sqlx::query(concat!(
            "UPDATE agent_commands SET acked_at = ?2, error = ?3 ",
            "WHERE id = ?1 AND agent_id = ?4 AND acked_at IS NULL RETURNING ",
            agent_command_columns!()
        ))
        .bind(id)
        .bind(sql::micros(at))
        .bind(error)
        .bind(agent_id)
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::agent_command)
    }

    async fn list_agent_sessions(&self, agent_id: Uuid) -> Result<Vec<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE agent_id = ?1 AND state NOT IN ('stopped', 'failed') ORDER BY id"
        ))
        .bind(agent_id)
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::session)
    }

    async fn list_active_sessions(&self) -> Result<Vec<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE state NOT IN ('stopped', 'failed') ORDER BY id"
        ))
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::session)
    }

    async fn create_ticket(&self, ticket: Ticket) -> Result<()> {
        // Keeps the table small: what expired long before this ticket was issued goes.
        sqlx::query("DELETE FROM tickets WHERE expires_at < ?1")
            .bind(sql::ticket_prune_before(&ticket))
            .execute(&self.writer)
            .await?;
        sqlx::query("INSERT INTO tickets (token_hash, session_id, user_id, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(ticket.token_hash)
            .bind(ticket.session_id)
            .bind(ticket.user_id)
            .bind(sql::micros(ticket.expires_at))
            .execute(&self.writer)
            .await
            .map_err(sql::taken_or_missing(sql::TICKET_TAKEN, sql::NO_SUCH_SESSION_OR_USER))?;
        Ok(())
    }

    async fn redeem_ticket(&self, token_hash: &str, now: Timestamp) -> Result<Option<Ticket>> {
        // Deleting is the atomic test-and-spend, and an expired ticket is spent all the same.
        let row = sqlx::query(concat!("DELETE FROM tickets WHERE token_hash = ?1 RETURNING ", ticket_columns!()))
            .bind(token_hash)
            .fetch_optional(&self.writer)
            .await?;
        Ok(sql::unexpired(sql::optional(row, sql::ticket)?, now))
    }

    async fn append_audit(&self, key: &AuditKey, event: NewAuditEvent) -> Result<AuditEvent> {
        // The write lock serialises appenders: each reads the head of the chain it extends.
        let mut tx = self.write_transaction().await?;
        let (event, head) = read_audit_head(&mut tx).await?.extend(key, event)?;
        sqlx::query(concat!(
            "INSERT INTO audit_events (",
            audit_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))
        .bind(event.seq)
        .bind(event.id)
        .bind(event.time)
        .bind(event.actor_id)
        .bind(&event.actor_name)
        .bind(event.org_id)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.result)
        .bind(&event.client_ip)
        .bind(&event.user_agent)
        .bind(&event.trace_id)
        .bind(Json(&event.details))
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(&mut *tx)
        .await?;
        write_audit_head(&mut tx, &head).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn seal_audit_head(&self, key: &AuditKey, adopt_unkeyed: bool) -> Result<ChainHead> {
        let mut tx = self.write_transaction().await?;
        let stored = read_audit_head(&mut tx).await?;
        let sealed = stored.clone().sealed_with(key, adopt_unkeyed)?;
        if sealed != stored {
            write_audit_head(&mut tx, &sealed).await?;
        }
        tx.commit().await?;
        Ok(sealed)
    }

    async fn audit_head(&self) -> Result<ChainHead> {
        let row = sqlx::query(concat!("SELECT ", audit_head_columns!(), " FROM audit_chain_head"))
            .fetch_one(&self.reader)
            .await?;
        sql::audit_head(&row)
    }

    async fn list_audit(&self, scope: Scope, filter: AuditFilter, page: AuditPage) -> Result<Vec<AuditEvent>> {
        let rows = sql::list_audit::<Sqlite>(scope, &filter, page).build().fetch_all(&self.reader).await?;
        sql::all(&rows, sql::audit_event)
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::audit_event)
    }
}

/// The chain head, read inside the transaction that holds the write lock.
async fn read_audit_head(tx: &mut Transaction<'static, Sqlite>) -> Result<ChainHead> {
    let row =
        sqlx::query(concat!("SELECT ", audit_head_columns!(), " FROM audit_chain_head")).fetch_one(&mut **tx).await?;
    sql::audit_head(&row)
}

async fn write_audit_head(tx: &mut Transaction<'static, Sqlite>, head: &ChainHead) -> Result<()> {
    let seal = head.seal.as_ref();
    sqlx::query("UPDATE audit_chain_head SET seq = ?1, hash = ?2, keyed_from = ?3, key_check = ?4, mac = ?5")
        .bind(head.seq)
        .bind(&head.hash)
        .bind(seal.map(|seal| seal.keyed_from))
        .bind(seal.map(|seal| &seal.key_check))
        .bind(seal.map(|seal| &seal.mac))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded() {
        crate::sql::tests::assert_embeds_every_file("sqlite", super::MIGRATIONS);
    }
}

//! The store over SQL, written once for every [`Backend`]: sqlx binds `$N` parameters on SQLite
//! and PostgreSQL alike, and the two schemas name their tables and columns alike, so each query
//! serves both. What differs (transactions and row locks, the odd function, JSON parameters) is
//! stated by the backend; connecting and migrating live with each backend.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ipnet::IpNet;
use sqlx::{AssertSqlSafe, Database, Executor, Pool, Transaction};
use streamspace_proto::hub::{Capacity, Command};
use uuid::Uuid;

use crate::audit::{AuditKey, ChainHead, Checkpoint, consecutive_runs};
use crate::pools::{self, pool_member_columns, template_pool_columns};
use crate::readers::Reads;
use crate::sharing::{self, share_columns};
use crate::sql::{
    self, Backend, Columns, Params, RowsAffected, SqlQuery, agent_columns, agent_command_columns, api_key_columns,
    audit_columns, audit_head_columns, org_columns, refresh_token_columns, session_columns, template_columns,
    ticket_columns, user_columns,
};
use crate::sql_compliance::{self, PRUNE_BATCH, checkpoint_columns, compliance_columns};
use crate::sql_homes::{self, home_columns};
use crate::sso::{
    self, external_identity_columns, identity_provider_columns, sso_pending_columns, sso_sign_in_columns,
};
use crate::{
    Agent, AgentCommand, AllowList, ApiKey, AuditEvent, AuditFilter, AuditPage, Caller, ComplianceSettings,
    DeliveryState, ExternalIdentity, Home, IdentityProvider, IdentityProviderPatch, NewAgent, NewApiKey, NewAuditEvent,
    NewExternalIdentity, NewHome, NewIdentityProvider, NewSession, NewShare, NewTemplate, NewUser, Org, OrgPatch, Page,
    Paged, PoolMember, Quotas, RefreshOutcome, RefreshToken, Result, Scope, Session, SessionFilter, SessionUpdate,
    Share, SsoPending, SsoPendingKind, SsoSignIn, Store, StoreError, Template, TemplatePatch, TemplatePool, Ticket,
    Timestamp, Usage, User, UserPatch,
};

/// A [`Store`] on an SQL database. Reads go to `reader` and writes to `writer`, each with connections
/// of its own (on SQLite one connection writes at a time).
pub struct SqlStore<DB: Database> {
    pub(crate) reader: Reads<DB>,
    pub(crate) writer: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    /// The writer pool, for tests that need the database itself.
    #[cfg(feature = "conformance")]
    pub fn pool(&self) -> &Pool<DB> {
        &self.writer
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl<DB: Backend> Store for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_org(&self, name: &str, quotas: Quotas) -> Result<Org> {
        let row = sqlx::query(concat!(
            "INSERT INTO orgs (id, name, mfa_required, created_at, max_sessions, max_sessions_per_user, ",
            "max_cpu_millis, max_memory_mb) VALUES ($1, $2, false, $3, $4, $5, $6, $7) RETURNING ",
            org_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(name)
        .arg(sql::now())
        .arg(quotas.max_sessions)
        .arg(quotas.max_sessions_per_user)
        .arg(quotas.max_cpu_millis)
        .arg(quotas.max_memory_mb)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken(sql::ORG_TAKEN))?;
        sql::org(&row)
    }

    async fn get_org(&self, scope: Scope, id: Uuid) -> Result<Option<Org>> {
        let row =
            sqlx::query(concat!("SELECT ", org_columns!(), " FROM orgs WHERE id = $1 AND ($2 IS NULL OR id = $2)"))
                .arg(id)
                .arg(sql::scope_org(scope))
                .fetch_optional(&self.reader)
                .await?;
        sql::optional(row, sql::org)
    }

    async fn get_org_by_name(&self, name: &str) -> Result<Option<Org>> {
        let row = sqlx::query(concat!("SELECT ", org_columns!(), " FROM orgs WHERE name = $1"))
            .arg(name)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::org)
    }

    async fn list_orgs(&self, scope: Scope, page: Page) -> Result<Paged<Org>> {
        let rows = sql::list_orgs::<DB>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::org)?, page, |org| org.id))
    }

    async fn update_org(&self, scope: Scope, id: Uuid, patch: OrgPatch) -> Result<Option<Org>> {
        let quotas = patch.quotas.unwrap_or_default();
        let row = sqlx::query(concat!(
            "UPDATE orgs SET name = COALESCE($3, name), mfa_required = COALESCE($4, mfa_required), ",
            "session_policy = COALESCE($11, session_policy), sso_mfa = COALESCE($12, sso_mfa), ",
            "max_sessions = CASE WHEN $5 THEN $6 ELSE max_sessions END, ",
            "max_sessions_per_user = CASE WHEN $5 THEN $7 ELSE max_sessions_per_user END, ",
            "max_cpu_millis = CASE WHEN $5 THEN $8 ELSE max_cpu_millis END, ",
            "max_memory_mb = CASE WHEN $5 THEN $9 ELSE max_memory_mb END, ",
            "egress_allow = COALESCE($10, egress_allow) ",
            "WHERE id = $1 AND ($2 IS NULL OR id = $2) RETURNING ",
            org_columns!()
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .arg(patch.name)
        .arg(patch.mfa_required)
        .arg(patch.quotas.is_some())
        .arg(quotas.max_sessions)
        .arg(quotas.max_sessions_per_user)
        .arg(quotas.max_cpu_millis)
        .arg(quotas.max_memory_mb)
        .opt_json(patch.egress_allow.as_ref())
        .opt_json(patch.session_policy.as_ref())
        .arg(patch.sso_mfa.map(|policy| policy.as_str()))
        .fetch_optional(&self.writer)
        .await
        .map_err(sql::taken(sql::ORG_TAKEN))?;
        sql::optional(row, sql::org)
    }

    async fn delete_org(&self, scope: Scope, id: Uuid) -> Result<bool> {
        // The users' foreign key refuses while any remain (on PostgreSQL the row lock it takes
        // orders this against a concurrent create_user); templates go with the org.
        let done = sqlx::query("DELETE FROM orgs WHERE id = $1 AND ($2 IS NULL OR id = $2)")
            .arg(id)
            .arg(sql::scope_org(scope))
            .execute(&self.writer)
            .await
            .map_err(sql::missing(sql::ORG_HAS_USERS))?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        let row = sqlx::query(concat!(
            "INSERT INTO users (id, org_id, username, username_key, password_hash, role, disabled, mfa_enabled, ",
            "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, false, false, $7, $7) RETURNING ",
            user_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(user.org_id)
        .arg(user.username.as_str())
        .arg(sql::username_key(&user.username))
        .arg(user.password_hash)
        .arg(user.role.as_str())
        .arg(sql::now())
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::USERNAME_TAKEN, sql::NO_SUCH_ORG))?;
        sql::user(&row)
    }

    async fn get_user(&self, scope: Scope, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::user)
    }

    async fn get_caller(&self, id: Uuid) -> Result<Option<Caller>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", (SELECT mfa_required FROM orgs WHERE orgs.id = users.org_id) AS org_mfa_required FROM users WHERE id = $1"
        ))
        .arg(id)
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, |row| Ok(Caller { user: sql::user(row)?, org_mfa_required: row.flag("org_mfa_required")? }))
    }

    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE username_key = $1"))
            .arg(sql::username_key(username))
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::user)
    }

    async fn list_users(&self, scope: Scope, page: Page) -> Result<Paged<User>> {
        let rows = sql::list_users::<DB>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::user)?, page, |user| user.id))
    }

    async fn update_user(&self, scope: Scope, id: Uuid, patch: UserPatch) -> Result<Option<User>> {
        let row = sqlx::query(concat!(
            "UPDATE users SET role = COALESCE($3, role), disabled = COALESCE($4, disabled), ",
            "password_hash = COALESCE($5, password_hash), mfa_secret = CASE WHEN $6 THEN $7 ELSE mfa_secret END, ",
            "mfa_enabled = COALESCE($8, mfa_enabled), updated_at = $9, ",
            "sessions_revoked_at = COALESCE($10, sessions_revoked_at) ",
            "WHERE id = $1 AND ($2 IS NULL OR org_id = $2) RETURNING ",
            user_columns!()
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .arg(patch.role.map(|role| role.as_str()))
        .arg(patch.disabled)
        .arg(patch.password_hash)
        .patch(patch.mfa_secret)
        .arg(patch.mfa_enabled)
        .arg(sql::now())
        .arg(patch.sessions_revoked_at.map(sql::micros))
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::user)
    }

    async fn delete_user(&self, scope: Scope, id: Uuid) -> Result<bool> {
        // Holding the user (or the whole database) from the check to the delete makes a concurrent
        // create_session either finish before the check sees it, or fail after: on PostgreSQL its
        // foreign-key check share-locks the user row this locks.
        let mut tx = write_transaction(&self.writer).await?;
        let found = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM users WHERE id = $1 AND ($2 IS NULL OR org_id = $2){}",
            DB::LOCK_ROWS
        )))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE owner_id = $1 AND state NOT IN ('stopped', 'failed')) \
             AS live",
        )
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
        if row.flag("live")? {
            return Err(StoreError::Invalid(sql::USER_HAS_SESSIONS.to_owned()));
        }
        // Keys, tokens, codes and the user's ended sessions go with the user (ON DELETE CASCADE).
        sqlx::query("DELETE FROM users WHERE id = $1").arg(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET mfa_last_step = $2 WHERE id = $1 AND (mfa_last_step IS NULL OR mfa_last_step < $2)",
        )
        .arg(user_id)
        .arg(step)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, user_id: Uuid, code_hashes: &[String]) -> Result<()> {
        let mut tx = write_transaction(&self.writer).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").arg(user_id).execute(&mut *tx).await?;
        sqlx::query(DB::INSERT_RECOVERY_CODES)
            .arg(user_id)
            .json(&code_hashes)
            .execute(&mut *tx)
            .await
            .map_err(sql::missing(sql::NO_SUCH_USER))?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, user_id: Uuid, code_hash: &str) -> Result<bool> {
        // Deleting is the atomic test-and-spend: of two concurrent uses, one deletes the row.
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
            .arg(user_id)
            .arg(code_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remaining_recovery_codes(&self, user_id: Uuid) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS remaining FROM recovery_codes WHERE user_id = $1")
            .arg(user_id)
            .fetch_one(&self.reader)
            .await?;
        row.int("remaining")
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let row = sqlx::query(concat!(
            "INSERT INTO api_keys (id, user_id, org_id, name, prefix, key_hash, created_at, expires_at, mfa) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
            api_key_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(key.user_id)
        .arg(key.org_id)
        .arg(key.name)
        .arg(key.prefix)
        .arg(key.key_hash)
        .arg(sql::now())
        .arg(key.expires_at.map(sql::micros))
        .arg(key.mfa)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::API_KEY_TAKEN, sql::NO_SUCH_USER_IN_ORG))?;
        sql::api_key(&row)
    }

    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE user_id = $1 ORDER BY id"))
            .arg(user_id)
            .fetch_all(&self.reader)
            .await?;
        sql::all(&rows, sql::api_key)
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE key_hash = $1"))
            .arg(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::api_key)
    }

    async fn touch_api_key(&self, id: Uuid, at: Timestamp) -> Result<()> {
        // Never moves back: concurrent requests may report their times out of order.
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .arg(id)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_api_key(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
            .arg(id)
            .arg(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_api_keys(&self, user_id: Uuid) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_keys WHERE user_id = $1").arg(user_id).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }

    async fn insert_refresh_token(&self, token: RefreshToken) -> Result<()> {
        // A token joining a revoked family is born revoked: its predecessor may have been replayed
        // between being spent and this insert.
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, mfa, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT MAX(revoked_at) FROM refresh_tokens WHERE family_id = $3))",
        )
        .arg(token.id)
        .arg(token.user_id)
        .arg(token.family_id)
        .arg(token.token_hash)
        .arg(token.mfa)
        .arg(sql::micros(token.created_at))
        .arg(sql::micros(token.expires_at))
        .execute(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::REFRESH_TOKEN_TAKEN, sql::NO_SUCH_USER))?;
        Ok(())
    }

    async fn rotate_refresh_token(&self, token_hash: &str, now: Timestamp) -> Result<RefreshOutcome> {
        let now = sql::micros(now);
        // Spending is one conditional UPDATE, so of two concurrent presentations exactly one wins.
        let spent = sqlx::query(concat!(
            "UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1 AND spent_at IS NULL ",
            "AND revoked_at IS NULL AND expires_at > $2 RETURNING ",
            refresh_token_columns!()
        ))
        .arg(token_hash)
        .arg(now)
        .fetch_optional(&self.writer)
        .await?;
        if let Some(row) = spent {
            return Ok(RefreshOutcome::Rotated(sql::refresh_token(&row)?));
        }
        // Not live: if it was spent or revoked, it is being replayed, and its family dies.
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE family_id = \
             (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND \
             (spent_at IS NOT NULL OR revoked_at IS NOT NULL)) RETURNING user_id, family_id",
        )
        .arg(token_hash)
        .arg(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match revoked {
            Some(row) => RefreshOutcome::Reused { user_id: row.uuid("user_id")?, family_id: row.uuid("family_id")? },
            None => RefreshOutcome::Invalid,
        })
    }

    async fn revoke_refresh_family(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $2) \
             WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .arg(token_hash)
        .arg(sql::now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_refresh_tokens(&self, user_id: Uuid) -> Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .arg(user_id)
            .arg(sql::now())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_template(&self, template: NewTemplate) -> Result<Template> {
        let row = sqlx::query(concat!(
            "INSERT INTO templates (id, org_id, name, display_name, description, icon, image, env, cpu_millis, ",
            "memory_mb, shm_mb, port, tags, enabled, egress_allow, session_policy, home, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $17, $18, $16, $16) RETURNING ",
            template_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(template.org_id)
        .arg(template.name)
        .arg(template.display_name)
        .arg(template.description)
        .arg(template.icon)
        .arg(template.image)
        .json(&template.env)
        .arg(template.cpu_millis)
        .arg(template.memory_mb)
        .arg(template.shm_mb)
        .arg(template.port)
        .json(&template.tags)
        .arg(template.enabled)
        .json(&template.egress_allow)
        .arg(sql::now())
        .json(&template.session_policy)
        .json(&template.home)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::TEMPLATE_TAKEN, sql::NO_SUCH_ORG))?;
        sql::template(&row)
    }

    async fn get_template(&self, scope: Scope, id: Uuid) -> Result<Option<Template>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM templates WHERE id = $1 AND ($2 IS NULL OR org_id IS NULL OR org_id = $2)"
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn get_template_by_name(&self, scope: Scope, name: &str) -> Result<Option<Template>> {
        // The platform scope names global templates only: org templates may share a name.
        let row = sqlx::query(concat!(
            "SELECT ",
            template_columns!(),
            " FROM templates WHERE name = $1 AND (org_id IS NULL OR org_id = $2) ORDER BY org_id IS NULL LIMIT 1"
        ))
        .arg(name)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn list_templates(&self, scope: Scope, page: Page) -> Result<Paged<Template>> {
        let rows = sql::list_templates::<DB>(scope, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::template)?, page, |template| template.id))
    }

    async fn update_template(&self, scope: Scope, id: Uuid, patch: TemplatePatch) -> Result<Option<Template>> {
        // An org may change its own templates only: the global ones belong to the platform.
        let row = sqlx::query(concat!(
            "UPDATE templates SET display_name = COALESCE($3, display_name), ",
            "description = COALESCE($4, description), icon = COALESCE($5, icon), image = COALESCE($6, image), ",
            "env = COALESCE($7, env), cpu_millis = COALESCE($8, cpu_millis), memory_mb = COALESCE($9, memory_mb), ",
            "shm_mb = COALESCE($10, shm_mb), port = COALESCE($11, port), tags = COALESCE($12, tags), ",
            "enabled = COALESCE($13, enabled), egress_allow = COALESCE($15, egress_allow), updated_at = $14, ",
            "session_policy = COALESCE($16, session_policy), home = COALESCE($17, home) ",
            "WHERE id = $1 AND ($2 IS NULL OR org_id = $2) RETURNING ",
            template_columns!()
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .arg(patch.display_name)
        .arg(patch.description)
        .arg(patch.icon)
        .arg(patch.image)
        .opt_json(patch.env.as_ref())
        .arg(patch.cpu_millis)
        .arg(patch.memory_mb)
        .arg(patch.shm_mb)
        .arg(patch.port)
        .opt_json(patch.tags.as_ref())
        .arg(patch.enabled)
        .arg(sql::now())
        .opt_json(patch.egress_allow.as_ref())
        .opt_json(patch.session_policy.as_ref())
        .opt_json(patch.home.as_ref())
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::template)
    }

    async fn delete_template(&self, scope: Scope, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM templates WHERE id = $1 AND ($2 IS NULL OR org_id = $2) AND NOT EXISTS \
             (SELECT 1 FROM sessions WHERE template_id = $1 AND state NOT IN ('stopped', 'failed'))",
        )
        .arg(id)
        .arg(sql::scope_org(scope))
        .execute(&self.writer)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        // Nothing deleted: missing (or out of scope), or still used by a live session.
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM templates WHERE id = $1 AND ($2 IS NULL OR org_id = $2)) AS found",
        )
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_one(&self.writer)
        .await?;
        if row.flag("found")? { Err(StoreError::Invalid(sql::TEMPLATE_IN_USE.to_owned())) } else { Ok(false) }
    }

    async fn create_session(&self, session: NewSession) -> Result<Session> {
        let row = sqlx::query(concat!(
            "INSERT INTO sessions (id, org_id, owner_id, template_id, state, cpu_millis, memory_mb, created_at, ",
            "updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7) RETURNING ",
            session_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(session.org_id)
        .arg(session.owner_id)
        .arg(session.template_id)
        .arg(session.cpu_millis)
        .arg(session.memory_mb)
        .arg(sql::now())
        .fetch_one(&self.writer)
        .await
        .map_err(sql::missing(sql::NO_SUCH_USER_IN_ORG))?;
        sql::session(&row)
    }

    async fn get_session(&self, scope: Scope, id: Uuid) -> Result<Option<Session>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql::session)
    }

    async fn list_sessions(&self, scope: Scope, filter: SessionFilter, page: Page) -> Result<Paged<Session>> {
        let rows = sql::list_sessions::<DB>(scope, &filter, page).build().fetch_all(&self.reader).await?;
        Ok(sql::paged(sql::all(&rows, sql::session)?, page, |session| session.id))
    }

    async fn update_session(&self, id: Uuid, update: SessionUpdate) -> Result<Option<Session>> {
        let row = update_session_query(id, update).fetch_optional(&self.writer).await?;
        sql::optional(row, sql::session)
    }

    async fn update_session_audited(
        &self,
        id: Uuid,
        update: SessionUpdate,
        key: &AuditKey,
        event: NewAuditEvent,
    ) -> Result<Option<Session>> {
        let mut tx = write_transaction(&self.writer).await?;
        let row = update_session_query(id, update).fetch_optional(&mut *tx).await?;
        // Not in the expected state: the transaction rolls back as it is dropped, having changed nothing.
        let Some(session) = sql::optional(row, sql::session)? else { return Ok(None) };
        append_audit_in(&mut tx, key, event).await?;
        tx.commit().await?;
        Ok(Some(session))
    }

    async fn touch_session(&self, id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET last_activity_at = $2 WHERE id = $1 \
             AND (last_activity_at IS NULL OR last_activity_at < $2)",
        )
        .arg(id)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn usage(&self, org_id: Uuid, user_id: Uuid) -> Result<Usage> {
        // SUM over bigint is numeric in PostgreSQL: cast back (SQLite's CAST keeps the integer).
        let row = sqlx::query(
            "SELECT COUNT(*) AS org_sessions, \
             CAST(COALESCE(SUM(CASE WHEN owner_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS user_sessions, \
             CAST(COALESCE(SUM(cpu_millis), 0) AS BIGINT) AS org_cpu_millis, \
             CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT) AS org_memory_mb \
             FROM sessions WHERE org_id = $1 AND state NOT IN ('stopped', 'failed')",
        )
        .arg(org_id)
        .arg(user_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(Usage {
            org_sessions: row.int("org_sessions")?,
            user_sessions: row.int("user_sessions")?,
            org_cpu_millis: row.int("org_cpu_millis")?,
            org_memory_mb: row.int("org_memory_mb")?,
        })
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<Agent> {
        let row = sqlx::query(concat!(
            "INSERT INTO agents (id, name, platform, labels, token_hash, created_at, limit_sessions, ",
            "limit_cpu_millis, limit_memory_mb, endpoint_cidrs) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
            agent_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(agent.name)
        .arg(agent.platform.as_str())
        .json(&agent.labels)
        .arg(agent.token_hash)
        .arg(sql::now())
        .arg(agent.capacity_limit.max_sessions)
        .arg(agent.capacity_limit.cpu_millis)
        .arg(agent.capacity_limit.memory_mb)
        .json(&agent.endpoint_cidrs)
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken(sql::AGENT_TAKEN))?;
        sql::agent(&row)
    }

    async fn get_agent(&self, id: Uuid) -> Result<Option<Agent>> {
        let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE id = $1"))
            .arg(id)
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
        let row = sqlx::query(concat!("SELECT ", agent_columns!(), " FROM agents WHERE token_hash = $1"))
            .arg(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql::agent)
    }

    async fn set_agent_token(&self, id: Uuid, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE agents SET token_hash = $2 WHERE id = $1")
            .arg(id)
            .arg(token_hash)
            .execute(&self.writer)
            .await
            .map_err(sql::taken(sql::AGENT_TOKEN_TAKEN))?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_agent_endpoint_cidrs(&self, id: Uuid, endpoint_cidrs: &[String]) -> Result<bool> {
        let done = sqlx::query("UPDATE agents SET endpoint_cidrs = $2 WHERE id = $1")
            .arg(id)
            .json(&endpoint_cidrs)
            .execute(&self.writer)
            .await?;
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
            "UPDATE agents SET version = $2, max_sessions = $3, cpu_millis = $4, memory_mb = $5, reported_labels = $6, \
             last_heartbeat_at = CASE WHEN last_heartbeat_at IS NULL OR last_heartbeat_at < $7 THEN $7 \
             ELSE last_heartbeat_at END WHERE id = $1",
        )
        .arg(id)
        .arg(version)
        .arg(capacity.max_sessions)
        .arg(capacity.cpu_millis)
        .arg(capacity.memory_mb)
        .json(reported_labels)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_agent_heartbeat(&self, id: Uuid, at: Timestamp) -> Result<()> {
        // Never moves back: a heartbeat may be recorded after a later hello.
        sqlx::query(
            "UPDATE agents SET last_heartbeat_at = $2 WHERE id = $1 \
             AND (last_heartbeat_at IS NULL OR last_heartbeat_at < $2)",
        )
        .arg(id)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn delete_agent(&self, id: Uuid) -> Result<bool> {
        // Its commands go with it (ON DELETE CASCADE); sessions have no foreign key to agents.
        let done = sqlx::query("DELETE FROM agents WHERE id = $1").arg(id).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn enqueue_command(&self, agent_id: Uuid, command: Command, at: Timestamp) -> Result<AgentCommand> {
        let row = sqlx::query(concat!(
            "INSERT INTO agent_commands (id, agent_id, session_id, command, created_at, attempts) ",
            "VALUES ($1, $2, $3, $4, $5, 0) RETURNING ",
            agent_command_columns!()
        ))
        .arg(command.id)
        .arg(agent_id)
        .arg(command.session_id)
        .json(&command)
        .arg(sql::micros(at))
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sql::COMMAND_TAKEN, sql::NO_SUCH_AGENT))?;
        sql::agent_command(&row)
    }

    async fn pending_commands(&self, agent_id: Uuid) -> Result<Vec<AgentCommand>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            agent_command_columns!(),
            " FROM agent_commands WHERE agent_id = $1 AND acked_at IS NULL ORDER BY created_at, id"
        ))
        .arg(agent_id)
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::agent_command)
    }

    async fn mark_command_sent(&self, id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE agent_commands SET attempts = attempts + 1, last_sent_at = $2 WHERE id = $1")
            .arg(id)
            .arg(sql::micros(at))
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
            "UPDATE agent_commands SET acked_at = $2, error = $3 ",
            "WHERE id = $1 AND agent_id = $4 AND acked_at IS NULL RETURNING ",
            agent_command_columns!()
        ))
        .arg(id)
        .arg(sql::micros(at))
        .arg(error)
        .arg(agent_id)
        .fetch_optional(&self.writer)
        .await?;
        sql::optional(row, sql::agent_command)
    }

    async fn list_agent_sessions(&self, agent_id: Uuid) -> Result<Vec<Session>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE agent_id = $1 AND state NOT IN ('stopped', 'failed') ORDER BY id"
        ))
        .arg(agent_id)
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
        sqlx::query("DELETE FROM tickets WHERE expires_at < $1")
            .arg(sql::ticket_prune_before(&ticket))
            .execute(&self.writer)
            .await?;
        sqlx::query("INSERT INTO tickets (token_hash, session_id, user_id, expires_at) VALUES ($1, $2, $3, $4)")
            .arg(ticket.token_hash)
            .arg(ticket.session_id)
            .arg(ticket.user_id)
            .arg(sql::micros(ticket.expires_at))
            .execute(&self.writer)
            .await
            .map_err(sql::taken_or_missing(sql::TICKET_TAKEN, sql::NO_SUCH_SESSION_OR_USER))?;
        Ok(())
    }

    async fn redeem_ticket(&self, token_hash: &str, now: Timestamp) -> Result<Option<Ticket>> {
        // Deleting is the atomic test-and-spend, and an expired ticket is spent all the same.
        let row = sqlx::query(concat!("DELETE FROM tickets WHERE token_hash = $1 RETURNING ", ticket_columns!()))
            .arg(token_hash)
            .fetch_optional(&self.writer)
            .await?;
        Ok(sql::unexpired(sql::optional(row, sql::ticket)?, now))
    }

    async fn append_audit(&self, key: &AuditKey, event: NewAuditEvent) -> Result<AuditEvent> {
        let mut tx = write_transaction(&self.writer).await?;
        let event = append_audit_in(&mut tx, key, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn seal_audit_head(&self, key: &AuditKey, adopt_unkeyed: bool) -> Result<ChainHead> {
        let mut tx = write_transaction(&self.writer).await?;
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
        let rows = sql::list_audit::<DB>(scope, &filter, page).build().fetch_all(&self.reader).await?;
        sql::all(&rows, sql::audit_event)
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .arg(after_seq)
        .arg(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql::audit_event)
    }

    async fn prune_audit(&self, key: &AuditKey, org_id: Uuid, before: Timestamp, now: Timestamp) -> Result<u64> {
        let mut tx = write_transaction(&self.writer).await?;
        // Holding the head serialises pruning with appenders and other replicas' sweepers, and a
        // head that does not hold under the key is not pruned under.
        let head = read_audit_head(&mut tx).await?.sealed_with(key, false)?;
        let keyed_from = head.seal.as_ref().map_or(i64::MAX, |seal| seal.keyed_from);
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE org_id = $1 AND time < $2 ORDER BY seq LIMIT $3"
        ))
        .arg(org_id)
        .arg(sql::micros(before))
        .arg(PRUNE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let events = sql::all(&rows, sql::audit_event)?;
        for run in consecutive_runs(&events) {
            let checkpoint = Checkpoint::for_run(key, keyed_from, run, Some(org_id), now)
                .map_err(|broken| StoreError::Invalid(format!("retention refused to remove {broken}")))?;
            insert_checkpoint(&mut tx, &checkpoint).await?;
            sqlx::query("DELETE FROM audit_events WHERE seq >= $1 AND seq <= $2")
                .arg(checkpoint.from_seq)
                .arg(checkpoint.to_seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(events.len() as u64)
    }

    async fn audit_checkpoints(&self, after_seq: i64, limit: u32) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM audit_checkpoints WHERE from_seq > $1 ORDER BY from_seq LIMIT $2"
        ))
        .arg(after_seq)
        .arg(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql_compliance::checkpoint)
    }

    async fn compliance_settings(&self, org_id: Uuid) -> Result<Option<ComplianceSettings>> {
        let row = sqlx::query(concat!("SELECT ", compliance_columns!(), " FROM org_compliance WHERE org_id = $1"))
            .arg(org_id)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sql_compliance::settings)
    }

    async fn list_compliance_settings(&self) -> Result<Vec<ComplianceSettings>> {
        let rows = sqlx::query(concat!("SELECT ", compliance_columns!(), " FROM org_compliance ORDER BY org_id"))
            .fetch_all(&self.reader)
            .await?;
        sql::all(&rows, sql_compliance::settings)
    }

    async fn put_compliance_settings(&self, settings: &ComplianceSettings) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO org_compliance (org_id, retention_days, report_schedule, report_destination, webhook_url, ",
            "webhook_secret) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id) DO UPDATE SET ",
            "retention_days = $2, report_schedule = $3, report_destination = $4, webhook_url = $5, webhook_secret = $6"
        ))
        .arg(settings.org_id)
        .arg(settings.retention_days)
        .arg(settings.report_schedule.as_deref())
        .arg(settings.report_destination.as_deref())
        .arg(settings.webhook_url.as_deref())
        .arg(settings.webhook_secret.as_deref())
        .execute(&self.writer)
        .await
        .map_err(sql::missing("no such organization"))?;
        Ok(())
    }

    async fn record_delivery(&self, org_id: Uuid, delivery: &DeliveryState) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE org_compliance SET delivered_until = $2, delivery_attempts = $3, next_attempt_at = $4, ",
            "last_error = $5 WHERE org_id = $1"
        ))
        .arg(org_id)
        .arg(delivery.delivered_until.map(sql::micros))
        .arg(delivery.attempts)
        .arg(delivery.next_attempt_at.map(sql::micros))
        .arg(delivery.last_error.as_deref())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn home_for(&self, new: NewHome, now: Timestamp) -> Result<Home> {
        let scope_key = sql_homes::scope_key(new.template_id);
        sqlx::query(
            "INSERT INTO homes (id, org_id, user_id, template_id, scope_key, size_mb, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, scope_key) DO NOTHING",
        )
        .arg(Uuid::now_v7())
        .arg(new.org_id)
        .arg(new.user_id)
        .arg(new.template_id)
        .arg(scope_key.as_str())
        .arg(new.size_mb)
        .arg(sql::micros(now))
        .execute(&self.writer)
        .await
        .map_err(sql::missing(sql::NO_SUCH_ORG))?;
        let row = sqlx::query(concat!("SELECT ", home_columns!(), " FROM homes WHERE user_id = $1 AND scope_key = $2"))
            .arg(new.user_id)
            .arg(scope_key.as_str())
            .fetch_one(&self.writer)
            .await?;
        sql_homes::home(&row)
    }

    async fn record_home_use(&self, id: Uuid, agent_id: Uuid, at: Timestamp) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE homes SET used_bytes = CASE WHEN agent_id = $2 THEN used_bytes END, ",
            "usage_measured_at = CASE WHEN agent_id = $2 THEN usage_measured_at END, ",
            "agent_id = $2, last_used_at = $3 WHERE id = $1"
        ))
        .arg(id)
        .arg(agent_id)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_home_usage(&self, id: Uuid, agent_id: Uuid, used_bytes: i64, at: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE homes SET used_bytes = $3, usage_measured_at = $4 WHERE id = $1 AND agent_id = $2")
                .arg(id)
                .arg(agent_id)
                .arg(used_bytes)
                .arg(sql::micros(at))
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_home(&self, scope: Scope, id: Uuid) -> Result<Option<Home>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            home_columns!(),
            " FROM homes WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sql_homes::home)
    }

    async fn list_homes(&self, scope: Scope, user_id: Option<Uuid>) -> Result<Vec<Home>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            home_columns!(),
            " FROM homes WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR user_id = $2) ORDER BY id"
        ))
        .arg(sql::scope_org(scope))
        .arg(user_id)
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sql_homes::home)
    }

    async fn delete_home(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM homes WHERE id = $1").arg(id).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_user_homes_for_deletion(&self, user_id: Uuid, after: Timestamp) -> Result<u64> {
        let done = sqlx::query("UPDATE homes SET delete_after = $2 WHERE user_id = $1 AND delete_after IS NULL")
            .arg(user_id)
            .arg(sql::micros(after))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn due_homes(&self, now: Timestamp) -> Result<Vec<Home>> {
        let rows = sqlx::query(concat!("SELECT ", home_columns!(), " FROM homes WHERE delete_after <= $1 ORDER BY id"))
            .arg(sql::micros(now))
            .fetch_all(&self.reader)
            .await?;
        sql::all(&rows, sql_homes::home)
    }

    async fn create_identity_provider(&self, provider: NewIdentityProvider) -> Result<IdentityProvider> {
        let row = sqlx::query(concat!(
            "INSERT INTO identity_providers (id, org_id, name, display_name, kind, enabled, domains, config, ",
            "client_secret, role_mapping, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING ",
            identity_provider_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(provider.org_id)
        .arg(provider.name)
        .arg(provider.display_name)
        .arg(provider.kind.as_str())
        .arg(provider.enabled)
        .json(&provider.domains)
        .json(&provider.config)
        .arg(provider.client_secret)
        .json(&provider.role_mapping)
        .arg(sql::now())
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sso::PROVIDER_TAKEN, sql::NO_SUCH_ORG))?;
        sso::identity_provider(&row)
    }

    async fn get_identity_provider(&self, scope: Scope, id: Uuid) -> Result<Option<IdentityProvider>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            identity_provider_columns!(),
            " FROM identity_providers WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sso::identity_provider)
    }

    async fn list_identity_providers(&self, scope: Scope, org_id: Uuid) -> Result<Vec<IdentityProvider>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            identity_provider_columns!(),
            " FROM identity_providers WHERE org_id = $1 AND ($2 IS NULL OR org_id = $2) ORDER BY id"
        ))
        .arg(org_id)
        .arg(sql::scope_org(scope))
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sso::identity_provider)
    }

    async fn identity_providers_for_domain(&self, domain: &str) -> Result<Vec<IdentityProvider>> {
        // Few providers exist on a platform; matching the domain lists here keeps the schema free
        // of a JSON dialect difference.
        let rows = sqlx::query(concat!(
            "SELECT ",
            identity_provider_columns!(),
            " FROM identity_providers WHERE enabled ORDER BY id"
        ))
        .fetch_all(&self.reader)
        .await?;
        let providers = sql::all(&rows, sso::identity_provider)?;
        Ok(providers.into_iter().filter(|p| p.domains.iter().any(|d| d == domain)).collect())
    }

    async fn update_identity_provider(
        &self,
        scope: Scope,
        id: Uuid,
        patch: IdentityProviderPatch,
    ) -> Result<Option<IdentityProvider>> {
        let row = sqlx::query(concat!(
            "UPDATE identity_providers SET name = COALESCE($3, name), display_name = COALESCE($4, display_name), ",
            "enabled = COALESCE($5, enabled), domains = COALESCE($6, domains), config = COALESCE($7, config), ",
            "client_secret = CASE WHEN $8 THEN $9 ELSE client_secret END, ",
            "role_mapping = COALESCE($10, role_mapping), updated_at = $11 ",
            "WHERE id = $1 AND ($2 IS NULL OR org_id = $2) RETURNING ",
            identity_provider_columns!()
        ))
        .arg(id)
        .arg(sql::scope_org(scope))
        .arg(patch.name)
        .arg(patch.display_name)
        .arg(patch.enabled)
        .opt_json(patch.domains.as_ref())
        .opt_json(patch.config.as_ref())
        .patch(patch.client_secret)
        .opt_json(patch.role_mapping.as_ref())
        .arg(sql::now())
        .fetch_optional(&self.writer)
        .await
        .map_err(sql::taken(sso::PROVIDER_TAKEN))?;
        sql::optional(row, sso::identity_provider)
    }

    async fn delete_identity_provider(&self, scope: Scope, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM identity_providers WHERE id = $1 AND ($2 IS NULL OR org_id = $2)")
            .arg(id)
            .arg(sql::scope_org(scope))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_external_identity(&self, identity: NewExternalIdentity) -> Result<ExternalIdentity> {
        let row = sqlx::query(concat!(
            "INSERT INTO external_identities (id, user_id, provider_id, subject, email, provisioned, created_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            external_identity_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(identity.user_id)
        .arg(identity.provider_id)
        .arg(identity.subject)
        .arg(identity.email)
        .arg(identity.provisioned)
        .arg(sql::now())
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sso::IDENTITY_TAKEN, sso::NO_SUCH_USER_OR_PROVIDER))?;
        sso::external_identity(&row)
    }

    async fn find_external_identity(&self, provider_id: Uuid, subject: &str) -> Result<Option<ExternalIdentity>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            external_identity_columns!(),
            " FROM external_identities WHERE provider_id = $1 AND subject = $2"
        ))
        .arg(provider_id)
        .arg(subject)
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sso::external_identity)
    }

    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            external_identity_columns!(),
            " FROM external_identities WHERE user_id = $1 ORDER BY id"
        ))
        .arg(user_id)
        .fetch_all(&self.reader)
        .await?;
        sql::all(&rows, sso::external_identity)
    }

    async fn touch_external_identity(&self, id: Uuid, email: Option<&str>, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE external_identities SET last_sign_in_at = $2, email = COALESCE($3, email) WHERE id = $1")
            .arg(id)
            .arg(sql::micros(at))
            .arg(email)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_external_identity(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM external_identities WHERE id = $1 AND user_id = $2")
            .arg(id)
            .arg(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_sso_pending(&self, pending: SsoPending) -> Result<()> {
        sqlx::query("DELETE FROM sso_pending WHERE expires_at < $1")
            .arg(sql::prune_before(pending.expires_at))
            .execute(&self.writer)
            .await?;
        sqlx::query(concat!(
            "INSERT INTO sso_pending (",
            sso_pending_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .arg(pending.token_hash)
        .arg(pending.kind.as_str())
        .arg(pending.provider_id)
        .arg(pending.user_id)
        .arg(pending.browser_hash)
        .arg(pending.payload)
        .arg(sql::micros(pending.expires_at))
        .execute(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sso::PENDING_TAKEN, sso::NO_SUCH_USER_OR_PROVIDER))?;
        Ok(())
    }

    async fn get_sso_pending(
        &self,
        kind: SsoPendingKind,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SsoPending>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            sso_pending_columns!(),
            " FROM sso_pending WHERE token_hash = $1 AND kind = $2 AND expires_at > $3"
        ))
        .arg(token_hash)
        .arg(kind.as_str())
        .arg(sql::micros(now))
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sso::sso_pending)
    }

    async fn take_sso_pending(
        &self,
        kind: SsoPendingKind,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SsoPending>> {
        // Deleting is the atomic test-and-spend, and an expired token is spent all the same.
        let row = sqlx::query(concat!(
            "DELETE FROM sso_pending WHERE token_hash = $1 AND kind = $2 RETURNING ",
            sso_pending_columns!()
        ))
        .arg(token_hash)
        .arg(kind.as_str())
        .fetch_optional(&self.writer)
        .await?;
        let now = sql::micros(now);
        Ok(sql::optional(row, sso::sso_pending)?.filter(|pending| pending.expires_at > now))
    }

    async fn record_sso_replay(
        &self,
        provider_id: Uuid,
        key: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        sqlx::query("DELETE FROM sso_replays WHERE expires_at <= $1")
            .arg(sql::micros(now))
            .execute(&self.writer)
            .await?;
        let done = sqlx::query(
            "INSERT INTO sso_replays (provider_id, key, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .arg(provider_id)
        .arg(key)
        .arg(sql::micros(expires_at))
        .execute(&self.writer)
        .await
        .map_err(sql::missing(sso::NO_SUCH_USER_OR_PROVIDER))?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_sso_sign_in(&self, sign_in: SsoSignIn) -> Result<()> {
        sqlx::query("DELETE FROM sso_sign_ins WHERE expires_at < $1")
            .arg(sql::prune_before(sign_in.expires_at))
            .execute(&self.writer)
            .await?;
        sqlx::query(concat!("INSERT INTO sso_sign_ins (", sso_sign_in_columns!(), ") VALUES ($1, $2, $3, $4, $5)"))
            .arg(sign_in.family_id)
            .arg(sign_in.provider_id)
            .arg(sign_in.user_id)
            .arg(sign_in.payload)
            .arg(sql::micros(sign_in.expires_at))
            .execute(&self.writer)
            .await
            .map_err(sql::taken_or_missing(sso::PENDING_TAKEN, sso::NO_SUCH_USER_OR_PROVIDER))?;
        Ok(())
    }

    async fn sso_sign_in_for_refresh_token(&self, token_hash: &str) -> Result<Option<SsoSignIn>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            sso_sign_in_columns!(),
            " FROM sso_sign_ins WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)"
        ))
        .arg(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sso::sso_sign_in)
    }

    async fn get_ip_allow_list(&self, list: AllowList) -> Result<Vec<IpNet>> {
        let row = sqlx::query("SELECT cidrs FROM ip_allow_lists WHERE scope = $1")
            .arg(list.key())
            .fetch_optional(&self.reader)
            .await?;
        row.map_or(Ok(Vec::new()), |row| row.json("cidrs"))
    }

    async fn set_ip_allow_list(&self, list: AllowList, cidrs: &[IpNet], at: Timestamp) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO ip_allow_lists (scope, org_id, cidrs, updated_at) VALUES ($1, $2, $3, $4) ",
            "ON CONFLICT (scope) DO UPDATE SET cidrs = excluded.cidrs, updated_at = excluded.updated_at"
        ))
        .arg(list.key())
        .arg(list.org_id())
        .json(&cidrs)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await
        .map_err(sql::missing(sql::NO_SUCH_ORG))?;
        Ok(())
    }

    async fn put_share(&self, share: NewShare) -> Result<Share> {
        let row = sqlx::query(concat!(
            "INSERT INTO session_shares (id, session_id, user_id, role, token_hash, link_id, expires_at, created_by, ",
            "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (session_id, user_id) DO UPDATE SET ",
            "role = excluded.role, link_id = excluded.link_id, expires_at = excluded.expires_at, ",
            "created_by = excluded.created_by, created_at = excluded.created_at RETURNING ",
            share_columns!()
        ))
        .arg(Uuid::now_v7())
        .arg(share.session_id)
        .arg(share.user_id)
        .arg(share.role.as_str())
        .arg(share.token_hash)
        .arg(share.link_id)
        .arg(share.expires_at.map(sql::micros))
        .arg(share.created_by)
        .arg(sql::now())
        .fetch_one(&self.writer)
        .await
        .map_err(sql::taken_or_missing(sharing::LINK_TAKEN, sharing::NO_SUCH_SESSION_USER_OR_LINK))?;
        sharing::share(&row)
    }

    async fn list_shares(&self, session_id: Uuid) -> Result<Vec<Share>> {
        let rows =
            sqlx::query(concat!("SELECT ", share_columns!(), " FROM session_shares WHERE session_id = $1 ORDER BY id"))
                .arg(session_id)
                .fetch_all(&self.reader)
                .await?;
        sql::all(&rows, sharing::share)
    }

    async fn guest_share(&self, session_id: Uuid, user_id: Uuid) -> Result<Option<Share>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            share_columns!(),
            " FROM session_shares WHERE session_id = $1 AND user_id = $2"
        ))
        .arg(session_id)
        .arg(user_id)
        .fetch_optional(&self.reader)
        .await?;
        sql::optional(row, sharing::share)
    }

    async fn find_share_link(&self, token_hash: &str) -> Result<Option<Share>> {
        let row = sqlx::query(concat!("SELECT ", share_columns!(), " FROM session_shares WHERE token_hash = $1"))
            .arg(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        sql::optional(row, sharing::share)
    }

    async fn shares_for_guest(&self, user_id: Uuid) -> Result<Vec<Share>> {
        let rows =
            sqlx::query(concat!("SELECT ", share_columns!(), " FROM session_shares WHERE user_id = $1 ORDER BY id"))
                .arg(user_id)
                .fetch_all(&self.reader)
                .await?;
        sql::all(&rows, sharing::share)
    }

    async fn delete_share(&self, session_id: Uuid, id: Uuid) -> Result<Vec<Share>> {
        let rows = sqlx::query(concat!(
            "DELETE FROM session_shares WHERE session_id = $1 AND (id = $2 OR link_id = $2) RETURNING ",
            share_columns!()
        ))
        .arg(session_id)
        .arg(id)
        .fetch_all(&self.writer)
        .await?;
        sql::all(&rows, sharing::share)
    }

    async fn set_template_pool(&self, template_id: Uuid, size: i64, at: Timestamp) -> Result<TemplatePool> {
        let row = sqlx::query(concat!(
            "INSERT INTO template_pools (template_id, size, updated_at) VALUES ($1, $2, $3) ",
            "ON CONFLICT (template_id) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at RETURNING ",
            template_pool_columns!()
        ))
        .arg(template_id)
        .arg(size)
        .arg(sql::micros(at))
        .fetch_one(&self.writer)
        .await
        .map_err(sql::missing(sql::NO_SUCH_TEMPLATE))?;
        pools::template_pool(&row)
    }

    async fn list_template_pools(&self) -> Result<Vec<TemplatePool>> {
        let rows =
            sqlx::query(concat!("SELECT ", template_pool_columns!(), " FROM template_pools ORDER BY template_id"))
                .fetch_all(&self.reader)
                .await?;
        sql::all(&rows, pools::template_pool)
    }

    async fn add_pool_member(&self, member: &PoolMember) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO pool_members (",
            pool_member_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .arg(member.id)
        .arg(member.template_id)
        .arg(member.agent_id)
        .arg(member.cpu_millis)
        .arg(member.memory_mb)
        .arg(member.spec_digest.as_str())
        .arg(member.endpoint.as_deref())
        .arg(sql::micros(member.created_at))
        .arg(member.ready_at.map(sql::micros))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_pool_members(&self) -> Result<Vec<PoolMember>> {
        let rows =
            sqlx::query(concat!("SELECT ", pool_member_columns!(), " FROM pool_members ORDER BY created_at, id"))
                .fetch_all(&self.reader)
                .await?;
        sql::all(&rows, pools::pool_member)
    }

    async fn pool_member_ready(&self, id: Uuid, agent_id: Uuid, endpoint: &str, at: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE pool_members SET endpoint = $3, ready_at = COALESCE(ready_at, $4) WHERE id = $1 AND agent_id = $2",
        )
        .arg(id)
        .arg(agent_id)
        .arg(endpoint)
        .arg(sql::micros(at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_pool_member(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pool_members WHERE id = $1").arg(id).execute(&self.writer).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_pool_member(
        &self,
        template_id: Uuid,
        spec_digest: &str,
        session: NewSession,
        at: Timestamp,
    ) -> Result<Option<Session>> {
        let mut tx = write_transaction(&self.writer).await?;
        // Concurrent claimers serialise on the row (PostgreSQL) or the write transaction (SQLite);
        // one that finds its row taken gets none and starts a session the ordinary way.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM pool_members WHERE template_id = $1 AND spec_digest = $2 AND endpoint IS NOT NULL ORDER BY ready_at, id LIMIT 1{}",
            pool_member_columns!(),
            DB::LOCK_ROWS
        )))
        .arg(template_id)
        .arg(spec_digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(member) = sql::optional(row, pools::pool_member)? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM pool_members WHERE id = $1").arg(member.id).execute(&mut *tx).await?;
        let at = sql::micros(at);
        let row = sqlx::query(concat!(
            "INSERT INTO sessions (id, org_id, owner_id, template_id, state, agent_id, endpoint, cpu_millis, ",
            "memory_mb, created_at, updated_at, started_at, last_activity_at) ",
            "VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $9, $9, $9) RETURNING ",
            session_columns!()
        ))
        .arg(member.id)
        .arg(session.org_id)
        .arg(session.owner_id)
        .arg(template_id)
        .arg(member.agent_id)
        .arg(member.endpoint.as_deref())
        .arg(member.cpu_millis)
        .arg(member.memory_mb)
        .arg(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql::missing(sql::NO_SUCH_USER_IN_ORG))?;
        let claimed = sql::session(&row)?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn claim_agent_connection(&self, agent_id: Uuid, replica: Uuid) -> Result<()> {
        sqlx::query("UPDATE agents SET connected_replica = $2 WHERE id = $1")
            .arg(agent_id)
            .arg(replica)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_agent_connection(&self, agent_id: Uuid, replica: Uuid) -> Result<bool> {
        let done = sqlx::query("UPDATE agents SET connected_replica = NULL WHERE id = $1 AND connected_replica = $2")
            .arg(agent_id)
            .arg(replica)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn check_key_fingerprints(&self, fingerprints: &[(String, String)], at: Timestamp) -> Result<Vec<String>> {
        let mut differing = Vec::new();
        for (name, fingerprint) in fingerprints {
            // The first replica to start records it; every later one compares.
            sqlx::query(
                "INSERT INTO key_fingerprints (name, fingerprint, recorded_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .arg(name.as_str())
            .arg(fingerprint.as_str())
            .arg(sql::micros(at))
            .execute(&self.writer)
            .await?;
            let recorded = sqlx::query("SELECT fingerprint FROM key_fingerprints WHERE name = $1")
                .arg(name.as_str())
                .fetch_one(&self.writer)
                .await?;
            if recorded.text("fingerprint")? != *fingerprint {
                differing.push(name.clone());
            }
        }
        Ok(differing)
    }

    async fn advance_agent_epoch(&self, id: Uuid, epoch: i64) -> Result<bool> {
        // One conditional write, so two replicas hearing two leaders at once cannot move the epoch back.
        let done = sqlx::query("UPDATE agents SET ha_epoch = $2 WHERE id = $1 AND ha_epoch <= $2")
            .arg(id)
            .arg(epoch)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn agent_epoch(&self, id: Uuid) -> Result<i64> {
        // The writer: a replica must see the epoch another one recorded a moment ago.
        let row = sqlx::query("SELECT ha_epoch FROM agents WHERE id = $1").arg(id).fetch_optional(&self.writer).await?;
        row.map_or(Ok(0), |row| row.int("ha_epoch"))
    }
}

async fn insert_checkpoint<DB: Backend>(tx: &mut Transaction<'static, DB>, checkpoint: &Checkpoint) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    sqlx::query(concat!(
        "INSERT INTO audit_checkpoints (",
        checkpoint_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .arg(checkpoint.from_seq)
    .arg(checkpoint.to_seq)
    .arg(checkpoint.prev_hash.as_str())
    .arg(checkpoint.hash.as_str())
    .arg(checkpoint.org_id)
    .arg(checkpoint.created_at)
    .arg(checkpoint.mac.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The compare-and-set of [`Store::update_session`], for the writer or a transaction.
fn update_session_query<DB: Backend>(id: Uuid, update: SessionUpdate) -> SqlQuery<'static, DB> {
    sqlx::query(concat!(
        "UPDATE sessions SET state = $3, agent_id = CASE WHEN $4 THEN $5 ELSE agent_id END, ",
        "endpoint = CASE WHEN $6 THEN $7 ELSE endpoint END, phase = CASE WHEN $8 THEN $9 ELSE phase END, ",
        "progress = CASE WHEN $10 THEN $11 ELSE progress END, ",
        "failure_reason = CASE WHEN $12 THEN $13 ELSE failure_reason END, ",
        "started_at = CASE WHEN $14 THEN $15 ELSE started_at END, ",
        "stopped_at = CASE WHEN $16 THEN $17 ELSE stopped_at END, updated_at = $18 ",
        "WHERE id = $1 AND state = $2 RETURNING ",
        session_columns!()
    ))
    .arg(id)
    .arg(update.expected.as_str())
    .arg(update.state.as_str())
    .patch(update.agent_id)
    .patch(update.endpoint)
    .patch(update.phase)
    .patch(update.progress)
    .patch(update.failure_reason)
    .patch(update.started_at.map(|at| at.map(sql::micros)))
    .patch(update.stopped_at.map(|at| at.map(sql::micros)))
    .arg(update.at.map_or_else(sql::now, sql::micros))
}

/// Appends `event` to the audit chain within `tx`, holding the chain head until `tx` ends (see
/// [`Store::append_audit`]).
async fn append_audit_in<DB: Backend>(
    tx: &mut Transaction<'static, DB>,
    key: &AuditKey,
    mut event: NewAuditEvent,
) -> Result<AuditEvent>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    // Holding the head serialises appenders, across replicas too. The same round trip
    // normalises the details as the column will store them (PostgreSQL's jsonb rewrites
    // numbers such as 1e16 as 10000000000000000), so that the link covers exactly what is
    // read back.
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {}, $1{} AS details FROM audit_chain_head{}",
        audit_head_columns!(),
        DB::AS_STORED_JSON,
        DB::LOCK_ROWS
    )))
    .json(&event.details)
    .fetch_one(&mut **tx)
    .await?;
    event.details = row.json("details")?;
    let (event, head) = sql::audit_head(&row)?.extend(key, event)?;
    sqlx::query(concat!(
        "INSERT INTO audit_events (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .arg(event.seq)
    .arg(event.id)
    .arg(event.time)
    .arg(event.actor_id)
    .arg(event.actor_name.as_str())
    .arg(event.org_id)
    .arg(event.action.as_str())
    .arg(event.target.as_str())
    .arg(event.result.as_str())
    .arg(event.client_ip.as_deref())
    .arg(event.user_agent.as_deref())
    .arg(event.trace_id.as_deref())
    .json(&event.details)
    .arg(event.prev_hash.as_str())
    .arg(event.hash.as_str())
    .execute(&mut **tx)
    .await?;
    write_audit_head(tx, &head).await?;
    Ok(event)
}

async fn write_transaction<DB: Backend>(writer: &Pool<DB>) -> Result<Transaction<'static, DB>> {
    Ok(writer.begin_with(DB::BEGIN_WRITE).await?)
}

/// The chain head, held until `tx` ends.
async fn read_audit_head<DB: Backend>(tx: &mut Transaction<'static, DB>) -> Result<ChainHead>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let row =
        sqlx::query(AssertSqlSafe(format!("SELECT {} FROM audit_chain_head{}", audit_head_columns!(), DB::LOCK_ROWS)))
            .fetch_one(&mut **tx)
            .await?;
    sql::audit_head(&row)
}

async fn write_audit_head<DB: Backend>(tx: &mut Transaction<'static, DB>, head: &ChainHead) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let seal = head.seal.as_ref();
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2, keyed_from = $3, key_check = $4, mac = $5")
        .arg(head.seq)
        .arg(head.hash.as_str())
        .arg(seal.map(|seal| seal.keyed_from))
        .arg(seal.map(|seal| seal.key_check.as_str()))
        .arg(seal.map(|seal| seal.mac.as_str()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

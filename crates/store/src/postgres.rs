//! The PostgreSQL backend, for several control-plane replicas sharing one database.
//!
//! Every invariant holds across replicas: each rule is a constraint or a single conditional
//! statement, and the few read-then-write sequences lock the row they depend on (`FOR UPDATE`).

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::Postgres;
use sqlx::postgres::PgConnectOptions;
use sqlx::types::Json;

use crate::readers::{Readers, Reads};
use crate::sql::{self, Backend, MigrationFile, SqlQuery};
use crate::sql_store::SqlStore;
use crate::{Result, StoreError, redact_url};

const MIGRATIONS: &[MigrationFile] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "agents", include_str!("../migrations/postgres/0002_agents.sql")),
    (3, "egress_allow", include_str!("../migrations/postgres/0003_egress_allow.sql")),
    (4, "audit_keyed_chain", include_str!("../migrations/postgres/0004_audit_keyed_chain.sql")),
    (5, "revocation", include_str!("../migrations/postgres/0005_revocation.sql")),
    (6, "agent_trust", include_str!("../migrations/postgres/0006_agent_trust.sql")),
    (7, "org_clipboard", include_str!("../migrations/postgres/0007_org_clipboard.sql")),
    (8, "sso", include_str!("../migrations/postgres/0008_sso.sql")),
    (10, "allow_lists", include_str!("../migrations/postgres/0010_allow_lists.sql")),
    (11, "retention", include_str!("../migrations/postgres/0011_retention.sql")),
    (12, "homes_policies", include_str!("../migrations/postgres/0012_homes_policies.sql")),
    (13, "sharing", include_str!("../migrations/postgres/0013_sharing.sql")),
    (14, "pools", include_str!("../migrations/postgres/0014_pools.sql")),
    (15, "home_usage", include_str!("../migrations/postgres/0015_home_usage.sql")),
    (16, "replicas", include_str!("../migrations/postgres/0016_replicas.sql")),
    (17, "agent_fencing", include_str!("../migrations/postgres/0017_agent_fencing.sql")),
];

/// Connections per replica, half for reads and half for writes: the work is short queries, and the
/// server has few cores.
const READERS: usize = 5;
const WRITERS: u32 = 5;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Backend for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const AS_STORED_JSON: &'static str = "::jsonb";
    const DETAILS_TEXT: &'static str = "details::text";
    const INSERT_RECOVERY_CODES: &'static str = "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, jsonb_array_elements_text($2) \
         ON CONFLICT DO NOTHING";

    fn bind_json<'q, T: Serialize>(query: SqlQuery<'q, Self>, value: Option<&T>) -> SqlQuery<'q, Self> {
        query.bind(value.map(Json))
    }
}

pub type PostgresStore = SqlStore<Postgres>;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`) and applies the
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL {:?}: {e}", redact_url(url))))?;
        Self::connect_with(options).await
    }

    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let writer = sql::pool_options()
            .max_connections(WRITERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        // The migrator holds an advisory lock, so replicas starting together migrate once.
        sql::migrator(MIGRATIONS).run(&writer).await.map_err(sql::migrate_error)?;
        let reader = Reads::Own(Readers::connect(options, READERS, ACQUIRE_TIMEOUT).await?);
        Ok(SqlStore { reader, writer })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded() {
        crate::sql::tests::assert_embeds_every_file("postgres", super::MIGRATIONS);
    }
}

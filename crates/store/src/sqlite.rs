//! The embedded default backend: one SQLite database file in WAL mode.
//!
//! SQLite allows one writer at a time. Writes therefore go through a pool of a single connection,
//! so concurrent writers queue in-process rather than meet `SQLITE_BUSY`, while reads use a small
//! pool of their own that WAL lets run beside the writer. Transactions that read before they write
//! still begin `IMMEDIATE`, taking the write lock up front, so that another process on the same
//! file (an admin command) makes them wait out the busy timeout instead of failing mid-way.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::types::Json;

use crate::readers::{Readers, Reads};
use crate::sql::{self, Backend, MigrationFile, SqlQuery};
use crate::sql_store::SqlStore;
use crate::{Page, Result, StoreError, redact_url};

const MIGRATIONS: &[MigrationFile] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "agents", include_str!("../migrations/sqlite/0002_agents.sql")),
    (3, "egress_allow", include_str!("../migrations/sqlite/0003_egress_allow.sql")),
    (4, "audit_keyed_chain", include_str!("../migrations/sqlite/0004_audit_keyed_chain.sql")),
    (5, "revocation", include_str!("../migrations/sqlite/0005_revocation.sql")),
    (6, "agent_trust", include_str!("../migrations/sqlite/0006_agent_trust.sql")),
    (7, "org_clipboard", include_str!("../migrations/sqlite/0007_org_clipboard.sql")),
    (8, "sso", include_str!("../migrations/sqlite/0008_sso.sql")),
    (10, "allow_lists", include_str!("../migrations/sqlite/0010_allow_lists.sql")),
    (11, "retention", include_str!("../migrations/sqlite/0011_retention.sql")),
    (12, "homes_policies", include_str!("../migrations/sqlite/0012_homes_policies.sql")),
    (13, "sharing", include_str!("../migrations/sqlite/0013_sharing.sql")),
    (14, "pools", include_str!("../migrations/sqlite/0014_pools.sql")),
    (15, "home_usage", include_str!("../migrations/sqlite/0015_home_usage.sql")),
    (16, "replicas", include_str!("../migrations/sqlite/0016_replicas.sql")),
    (17, "agent_fencing", include_str!("../migrations/sqlite/0017_agent_fencing.sql")),
];

/// Reader connections: enough to keep two cores busy while a connection waits on the disk.
const READERS: usize = 4;
/// How long a read waits for a reader connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows a query's connection thread may run ahead of the task reading them. Enough for the
/// largest page: with sqlx's 50, a 100-row page stopped the thread halfway to wait for the reader.
const ROW_BUFFER: usize = Page::MAX_LIMIT as usize + 1;

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Backend for Sqlite {
    /// Takes the write lock up front (see the module's documentation).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Nothing: a write transaction holds the whole database from its start.
    const LOCK_ROWS: &'static str = "";
    /// Nothing: the column stores the JSON text as bound.
    const AS_STORED_JSON: &'static str = "";
    const DETAILS_TEXT: &'static str = "details";
    /// `WHERE TRUE` keeps SQLite from parsing the upsert's ON as a join condition.
    const INSERT_RECOVERY_CODES: &'static str = "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, value FROM json_each($2) WHERE TRUE \
         ON CONFLICT DO NOTHING";

    fn bind_json<'q, T: Serialize>(query: SqlQuery<'q, Self>, value: Option<&T>) -> SqlQuery<'q, Self> {
        query.bind(value.map(Json))
    }
}

pub type SqliteStore = SqlStore<Sqlite>;

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
            .busy_timeout(BUSY_TIMEOUT)
            .row_buffer_size(ROW_BUFFER);
        // The writer stays open for the life of the store: that keeps an in-memory database
        // alive, and spares reopening the file.
        let writer = sql::pool_options()
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
            Reads::Writers(writer.clone())
        } else {
            Reads::Own(Readers::connect(options, READERS, ACQUIRE_TIMEOUT).await?)
        };
        Ok(SqlStore { reader, writer })
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded() {
        crate::sql::tests::assert_embeds_every_file("sqlite", super::MIGRATIONS);
    }
}

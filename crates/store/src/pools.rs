//! Warm pools (ADR 0034): the size an admin sets per template, the warm containers, and their
//! row decoders.

use uuid::Uuid;

use crate::sql::{Columns, micros};
use crate::{Result, Timestamp};

macro_rules! template_pool_columns {
    () => {
        "template_id, size, updated_at"
    };
}
macro_rules! pool_member_columns {
    () => {
        "id, template_id, agent_id, cpu_millis, memory_mb, spec_digest, endpoint, created_at, ready_at"
    };
}
pub(crate) use {pool_member_columns, template_pool_columns};

/// How many warm containers every fitting agent keeps for a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePool {
    pub template_id: Uuid,
    pub size: i64,
    pub updated_at: Timestamp,
}

/// One container started ahead of demand. `id` is the session id it runs under, kept when a
/// launch claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub id: Uuid,
    pub template_id: Uuid,
    pub agent_id: Uuid,
    /// What it reserves on its agent, as a session of its template would.
    pub cpu_millis: i64,
    pub memory_mb: i64,
    /// Identifies what it runs apart from its identity (see the migration).
    pub spec_digest: String,
    /// Where its streamer answers; `None` while it starts.
    pub endpoint: Option<String>,
    pub created_at: Timestamp,
    pub ready_at: Option<Timestamp>,
}

impl PoolMember {
    /// A member about to be started on `agent_id` for the template.
    pub fn starting(
        template_id: Uuid,
        agent_id: Uuid,
        (cpu_millis, memory_mb): (i64, i64),
        spec_digest: String,
        at: Timestamp,
    ) -> PoolMember {
        PoolMember {
            id: Uuid::now_v7(),
            template_id,
            agent_id,
            cpu_millis,
            memory_mb,
            spec_digest,
            endpoint: None,
            created_at: micros(at),
            ready_at: None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.endpoint.is_some()
    }
}

pub(crate) fn template_pool(row: &impl Columns) -> Result<TemplatePool> {
    Ok(TemplatePool {
        template_id: row.uuid("template_id")?,
        size: row.int("size")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn pool_member(row: &impl Columns) -> Result<PoolMember> {
    Ok(PoolMember {
        id: row.uuid("id")?,
        template_id: row.uuid("template_id")?,
        agent_id: row.uuid("agent_id")?,
        cpu_millis: row.int("cpu_millis")?,
        memory_mb: row.int("memory_mb")?,
        spec_digest: row.text("spec_digest")?,
        endpoint: row.opt_text("endpoint")?,
        created_at: row.time("created_at")?,
        ready_at: row.opt_time("ready_at")?,
    })
}

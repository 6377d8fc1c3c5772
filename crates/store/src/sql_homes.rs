//! Rows of the homes table (ADR 0032).

use crate::sql::Columns;
use crate::{Home, Result};

macro_rules! home_columns {
    () => {
        "id, org_id, user_id, template_id, agent_id, size_mb, created_at, last_used_at, delete_after, \
         used_bytes, usage_measured_at"
    };
}
pub(crate) use home_columns;

pub(crate) fn home(row: &impl Columns) -> Result<Home> {
    Ok(Home {
        id: row.uuid("id")?,
        org_id: row.uuid("org_id")?,
        user_id: row.uuid("user_id")?,
        template_id: row.opt_uuid("template_id")?,
        agent_id: row.opt_uuid("agent_id")?,
        size_mb: row.opt_int("size_mb")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        delete_after: row.opt_time("delete_after")?,
        used_bytes: row.opt_int("used_bytes")?,
        usage_measured_at: row.opt_time("usage_measured_at")?,
    })
}

/// One home per user and scope: the template's id, or empty for the user's own home. A column of its
/// own because a NULL template id would never conflict in a unique index.
pub(crate) fn scope_key(template_id: Option<uuid::Uuid>) -> String {
    template_id.map(|id| id.to_string()).unwrap_or_default()
}

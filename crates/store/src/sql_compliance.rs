//! Rows of the compliance tables (ADR 0029): org settings and retention checkpoints.

use crate::sql::{Columns, micros};
use crate::{ComplianceSettings, DeliveryState, Result, audit};

macro_rules! compliance_columns {
    () => {
        "org_id, retention_days, report_schedule, report_destination, webhook_url, webhook_secret, delivered_until, \
         delivery_attempts, next_attempt_at, last_error"
    };
}
macro_rules! checkpoint_columns {
    () => {
        "from_seq, to_seq, prev_hash, hash, org_id, created_at, mac"
    };
}
pub(crate) use {checkpoint_columns, compliance_columns};

/// How many events one call of `prune_audit` removes at most, so that its transaction (which
/// holds the chain head, and so every appender) stays short.
pub(crate) const PRUNE_BATCH: i64 = 2000;

pub(crate) fn settings(row: &impl Columns) -> Result<ComplianceSettings> {
    Ok(ComplianceSettings {
        org_id: row.uuid("org_id")?,
        retention_days: row.opt_int("retention_days")?,
        report_schedule: row.opt_text("report_schedule")?,
        report_destination: row.opt_text("report_destination")?,
        webhook_url: row.opt_text("webhook_url")?,
        webhook_secret: row.opt_text("webhook_secret")?,
        delivery: DeliveryState {
            delivered_until: row.opt_time("delivered_until")?,
            attempts: row.int("delivery_attempts")?,
            next_attempt_at: row.opt_time("next_attempt_at")?,
            last_error: row.opt_text("last_error")?,
        },
    })
}

pub(crate) fn checkpoint(row: &impl Columns) -> Result<audit::Checkpoint> {
    Ok(audit::Checkpoint {
        from_seq: row.int("from_seq")?,
        to_seq: row.int("to_seq")?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
        org_id: row.opt_uuid("org_id")?,
        created_at: micros(row.time("created_at")?),
        mac: row.text("mac")?,
    })
}

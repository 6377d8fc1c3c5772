-- Audit retention and scheduled compliance reports per organization (ADR 0029).
CREATE TABLE org_compliance (
    org_id             BLOB    NOT NULL PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    -- Days the org's audit events are kept; NULL keeps them forever.
    retention_days     INTEGER,
    -- 'daily', 'weekly' or 'monthly'; NULL delivers no reports.
    report_schedule    TEXT,
    -- 'directory' or 'webhook'.
    report_destination TEXT,
    webhook_url        TEXT,
    -- Sealed with the control plane's seal key, never returned.
    webhook_secret     TEXT,
    -- The end of the last period delivered: the next report covers the period after it.
    delivered_until    TEXT,
    delivery_attempts  INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT,
    last_error         TEXT
) STRICT;

-- Runs of consecutive audit events removed by retention, each standing in the chain for its
-- events: their positions, the link before the first and the last one's link, with an HMAC under
-- the audit key.
CREATE TABLE audit_checkpoints (
    from_seq   INTEGER NOT NULL PRIMARY KEY,
    to_seq     INTEGER NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    org_id     BLOB,
    created_at TEXT    NOT NULL,
    mac        TEXT    NOT NULL
) STRICT;

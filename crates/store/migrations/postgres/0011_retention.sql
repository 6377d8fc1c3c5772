-- Audit retention and scheduled compliance reports per organization (ADR 0029).
CREATE TABLE org_compliance (
    org_id             uuid    PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    -- Days the org's audit events are kept; NULL keeps them forever.
    retention_days     bigint,
    -- 'daily', 'weekly' or 'monthly'; NULL delivers no reports.
    report_schedule    text,
    -- 'directory' or 'webhook'.
    report_destination text,
    webhook_url        text,
    -- Sealed with the control plane's seal key, never returned.
    webhook_secret     text,
    -- The end of the last period delivered: the next report covers the period after it.
    delivered_until    timestamptz,
    delivery_attempts  bigint  NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz,
    last_error         text
);

-- Runs of consecutive audit events removed by retention, each standing in the chain for its
-- events: their positions, the link before the first and the last one's link, with an HMAC under
-- the audit key.
CREATE TABLE audit_checkpoints (
    from_seq   bigint      PRIMARY KEY,
    to_seq     bigint      NOT NULL,
    prev_hash  text        NOT NULL,
    hash       text        NOT NULL,
    org_id     uuid,
    created_at timestamptz NOT NULL,
    mac        text        NOT NULL
);

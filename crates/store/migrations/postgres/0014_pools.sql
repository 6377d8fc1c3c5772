-- Warm pools (ADR 0034): containers started ahead of demand per template and agent. PostgreSQL
-- dialect of the SQLite migration, which explains the columns.

CREATE TABLE template_pools (
    template_id uuid        PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    size        bigint      NOT NULL CHECK (size >= 0),
    updated_at  timestamptz NOT NULL
);

CREATE TABLE pool_members (
    id          uuid        PRIMARY KEY,
    template_id uuid        NOT NULL,
    agent_id    uuid        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    cpu_millis  bigint      NOT NULL,
    memory_mb   bigint      NOT NULL,
    spec_digest text        NOT NULL,
    endpoint    text,
    created_at  timestamptz NOT NULL,
    ready_at    timestamptz
);

CREATE INDEX pool_members_ready ON pool_members (template_id, spec_digest, ready_at);

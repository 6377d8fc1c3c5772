-- Warm pools (ADR 0034): containers started ahead of demand per template and agent.

-- How many warm containers each agent keeps for the template; no row is no pool.
CREATE TABLE template_pools (
    template_id BLOB    NOT NULL PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    size        INTEGER NOT NULL CHECK (size >= 0),
    updated_at  TEXT    NOT NULL
) STRICT;

-- One warm container. Its id is the session id it was started with and keeps when claimed: the
-- claim deletes this row and inserts the session in one transaction, so a container is a pool
-- member or a session, never both and never back.
CREATE TABLE pool_members (
    id          BLOB    NOT NULL PRIMARY KEY,
    -- No foreign key: the refill retires the members of a deleted template's pool.
    template_id BLOB    NOT NULL,
    agent_id    BLOB    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    cpu_millis  INTEGER NOT NULL,
    memory_mb   INTEGER NOT NULL,
    -- SHA-256 of the spec it runs without its identity: a launch claims it only if the session
    -- would get exactly that spec, and a template change retires it.
    spec_digest TEXT    NOT NULL,
    -- The streamer's address once it answered (the agent reported it running): ready to claim.
    endpoint    TEXT,
    created_at  TEXT    NOT NULL,
    ready_at    TEXT
) STRICT;

CREATE INDEX pool_members_ready ON pool_members (template_id, spec_digest, ready_at);

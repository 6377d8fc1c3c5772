-- The StreamSpace schema, SQLite dialect.
--
-- Conventions: ids are UUIDv7 stored as 16-byte BLOBs, whose byte order is creation order (keyset
-- pagination relies on it). Timestamps are UTC RFC 3339 TEXT with at most microseconds, as sqlx
-- writes them (`2026-01-02T03:04:05.123456+00:00`); with one fixed offset such text sorts
-- chronologically, so it compares correctly in SQL. Booleans are 0/1, JSON is TEXT. Tables are
-- STRICT: a value of the wrong type is an error rather than a silent conversion.

CREATE TABLE orgs (
    id                    BLOB    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE,
    mfa_required          INTEGER NOT NULL,
    max_sessions          INTEGER,
    max_sessions_per_user INTEGER,
    max_cpu_millis        INTEGER,
    max_memory_mb         INTEGER,
    created_at            TEXT    NOT NULL
) STRICT;

CREATE TABLE users (
    id            BLOB    NOT NULL PRIMARY KEY,
    org_id        BLOB    NOT NULL REFERENCES orgs (id),
    username      TEXT    NOT NULL,
    -- The username lower-cased by the store: usernames are unique case-insensitively.
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('platform_admin', 'org_admin', 'member')),
    disabled      INTEGER NOT NULL,
    mfa_secret    TEXT,
    mfa_enabled   INTEGER NOT NULL,
    mfa_last_step INTEGER,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    -- The target of the (user, org) foreign keys below, which keep an API key's or a session's
    -- org equal to its owner's.
    UNIQUE (id, org_id)
) STRICT;

CREATE INDEX users_by_org ON users (org_id, id);

CREATE TABLE recovery_codes (
    user_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
    id           BLOB NOT NULL PRIMARY KEY,
    user_id      BLOB NOT NULL,
    org_id       BLOB NOT NULL,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    FOREIGN KEY (user_id, org_id) REFERENCES users (id, org_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX api_keys_by_user ON api_keys (user_id, id);

CREATE TABLE refresh_tokens (
    id         BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  BLOB    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    mfa        INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    spent_at   TEXT,
    revoked_at TEXT
) STRICT;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE templates (
    id           BLOB    NOT NULL PRIMARY KEY,
    -- NULL for a global template.
    org_id       BLOB    REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    icon         TEXT    NOT NULL,
    image        TEXT    NOT NULL,
    env          TEXT    NOT NULL, -- JSON object
    cpu_millis   INTEGER NOT NULL,
    memory_mb    INTEGER NOT NULL,
    shm_mb       INTEGER NOT NULL,
    port         INTEGER NOT NULL,
    tags         TEXT    NOT NULL, -- JSON array
    enabled      INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
) STRICT;

-- Names are unique among the global templates, and within each org.
CREATE UNIQUE INDEX templates_global_name ON templates (name) WHERE org_id IS NULL;
CREATE UNIQUE INDEX templates_org_name ON templates (org_id, name) WHERE org_id IS NOT NULL;
CREATE INDEX templates_by_org ON templates (org_id, id);

CREATE TABLE sessions (
    id               BLOB    NOT NULL PRIMARY KEY,
    org_id           BLOB    NOT NULL,
    owner_id         BLOB    NOT NULL,
    -- No foreign key: the record of a session outlives its template (its resources were copied).
    template_id      BLOB    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'scheduled', 'starting', 'running', 'hibernating',
                                                       'hibernated', 'stopping', 'stopped', 'failed')),
    agent_id         BLOB,
    endpoint         TEXT,
    phase            TEXT,
    progress         INTEGER,
    failure_reason   TEXT,
    cpu_millis       INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    started_at       TEXT,
    stopped_at       TEXT,
    last_activity_at TEXT,
    FOREIGN KEY (owner_id, org_id) REFERENCES users (id, org_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX sessions_by_org ON sessions (org_id, id);
CREATE INDEX sessions_by_owner ON sessions (owner_id, id);
CREATE INDEX sessions_by_state ON sessions (state, id);
-- Quota checks and deletions look at live sessions only; history must not slow them down.
CREATE INDEX sessions_live_by_org ON sessions (org_id, owner_id) WHERE state NOT IN ('stopped', 'failed');
CREATE INDEX sessions_live_by_template ON sessions (template_id) WHERE state NOT IN ('stopped', 'failed');

CREATE TABLE audit_events (
    -- Position in the hash chain, from 1 (an alias of the rowid).
    seq        INTEGER NOT NULL PRIMARY KEY,
    id         BLOB    NOT NULL UNIQUE,
    time       TEXT    NOT NULL,
    actor_id   BLOB,
    actor_name TEXT    NOT NULL,
    -- No foreign keys: the log outlives what it describes.
    org_id     BLOB,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    client_ip  TEXT,
    user_agent TEXT,
    trace_id   TEXT,
    details    TEXT    NOT NULL, -- JSON, exactly as hashed
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_events_by_org ON audit_events (org_id, seq);

-- The end of the chain. Appenders read it under the write lock and move it on; keeping it apart
-- from the events means that deleting the newest events leaves a gap the next append exposes.
CREATE TABLE audit_chain_head (
    only_row INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (only_row = 1),
    seq      INTEGER NOT NULL,
    hash     TEXT    NOT NULL
) STRICT;

INSERT INTO audit_chain_head (seq, hash)
VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');

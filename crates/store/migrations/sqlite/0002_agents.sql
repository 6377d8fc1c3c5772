-- Agents, the commands kept for them until acknowledged, and connect tickets. SQLite dialect, with
-- the conventions of 0001_init.sql.

CREATE TABLE agents (
    id                BLOB    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    platform          TEXT    NOT NULL CHECK (platform IN ('docker', 'kubernetes')),
    labels            TEXT    NOT NULL, -- JSON object
    -- SHA-256 of the agent's token, hex (the UNIQUE index is the lookup at connect).
    token_hash        TEXT    NOT NULL UNIQUE,
    -- What the agent reported in its last hello.
    version           TEXT,
    max_sessions      INTEGER NOT NULL DEFAULT 0,
    cpu_millis        INTEGER NOT NULL DEFAULT 0,
    memory_mb         INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_at TEXT,
    created_at        TEXT    NOT NULL
) STRICT;

CREATE TABLE agent_commands (
    -- The command's own id, as sent on the wire.
    id           BLOB    NOT NULL PRIMARY KEY,
    agent_id     BLOB    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    -- No foreign key: a command (`remove`) may concern a session whose record is gone.
    session_id   BLOB    NOT NULL,
    command      TEXT    NOT NULL, -- JSON, the whole command as sent
    created_at   TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_sent_at TEXT,
    acked_at     TEXT,
    error        TEXT
) STRICT;

-- For deleting an agent's commands with it.
CREATE INDEX agent_commands_by_agent ON agent_commands (agent_id);
-- What is still to be delivered, oldest first; acknowledged history must not slow it down.
CREATE INDEX agent_commands_pending ON agent_commands (agent_id, created_at, id) WHERE acked_at IS NULL;

-- The control plane's own work looks at live sessions only, by agent or all of them.
CREATE INDEX sessions_live_by_agent ON sessions (agent_id, id) WHERE state NOT IN ('stopped', 'failed');
CREATE INDEX sessions_live ON sessions (id) WHERE state NOT IN ('stopped', 'failed');

-- Single use and short-lived: redeeming deletes the row, and creating one deletes the long expired.
CREATE TABLE tickets (
    -- SHA-256 of the ticket, hex.
    token_hash TEXT NOT NULL PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- A deleted user's tickets go with them.
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX tickets_by_expiry ON tickets (expires_at);
-- For the cascades above.
CREATE INDEX tickets_by_session ON tickets (session_id);
CREATE INDEX tickets_by_user ON tickets (user_id);

-- Sharing a session (ADR 0033): invitations of org members and expiring links, each with a role.
CREATE TABLE session_shares (
    id         BLOB NOT NULL PRIMARY KEY,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The guest; NULL for a link, which names nobody until someone joins through it.
    user_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    -- 'viewer' (sees, no input) or 'collaborator' (input too).
    role       TEXT NOT NULL,
    -- A link's token, SHA-256 hex: the token itself is shown once and never stored.
    token_hash TEXT UNIQUE,
    -- The link a guest joined through: revoking the link revokes them too (in the same statement,
    -- which RETURNING shows whole: a cascade would hide them).
    link_id    BLOB REFERENCES session_shares (id),
    -- NULL: until revoked (invitations only; links always expire).
    expires_at TEXT,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- One share per guest and session: inviting again replaces the role and expiry.
CREATE UNIQUE INDEX session_shares_guest ON session_shares (session_id, user_id);
CREATE INDEX session_shares_user ON session_shares (user_id);

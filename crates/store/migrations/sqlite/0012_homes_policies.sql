-- Session policies (ADR 0032): what sessions may exchange with the viewer's browser, set per org and
-- per template; a session gets the stricter of the two. A JSON object (crate::SessionPolicy); fields
-- left out allow. The org's clipboard switch of 0007 becomes the policy's clipboard field.
-- SQLite dialect, with the conventions of 0001_init.sql.

ALTER TABLE orgs ADD COLUMN session_policy TEXT NOT NULL DEFAULT '{}';
UPDATE orgs SET session_policy = '{"clipboard":"off"}' WHERE allow_clipboard = 0;
ALTER TABLE orgs DROP COLUMN allow_clipboard;
ALTER TABLE templates ADD COLUMN session_policy TEXT NOT NULL DEFAULT '{}';

-- Persistent homes (ADR 0032): which home a template's sessions mount (a JSON object,
-- crate::TemplateHome; '{}' mounts none), and the homes, one per user and scope.
ALTER TABLE templates ADD COLUMN home TEXT NOT NULL DEFAULT '{}';
CREATE TABLE homes (
    id           BLOB    NOT NULL PRIMARY KEY,
    org_id       BLOB    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- No foreign key: a deleted user's homes stay for a grace period, then go with their volumes.
    user_id      BLOB    NOT NULL,
    -- The template whose sessions alone mount it; NULL: the user's own home.
    template_id  BLOB,
    -- template_id as text, or '' for the user's own home: one home per user and scope.
    scope_key    TEXT    NOT NULL,
    -- Where its volume lives, once a session has mounted it.
    agent_id     BLOB    REFERENCES agents (id) ON DELETE SET NULL,
    size_mb      INTEGER,
    created_at   TEXT    NOT NULL,
    last_used_at TEXT,
    delete_after TEXT,
    UNIQUE (user_id, scope_key)
) STRICT;
CREATE INDEX homes_by_org ON homes (org_id, id);
CREATE INDEX homes_due ON homes (delete_after) WHERE delete_after IS NOT NULL;

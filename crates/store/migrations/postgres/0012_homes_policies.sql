-- Session policies (ADR 0032): what sessions may exchange with the viewer's browser, set per org and
-- per template; a session gets the stricter of the two. A JSON object (crate::SessionPolicy); fields
-- left out allow. The org's clipboard switch of 0007 becomes the policy's clipboard field.
-- PostgreSQL dialect, with the conventions of 0001_init.sql.

ALTER TABLE orgs ADD COLUMN session_policy jsonb NOT NULL DEFAULT '{}';
UPDATE orgs SET session_policy = '{"clipboard":"off"}' WHERE NOT allow_clipboard;
ALTER TABLE orgs DROP COLUMN allow_clipboard;
ALTER TABLE templates ADD COLUMN session_policy jsonb NOT NULL DEFAULT '{}';

-- Persistent homes (ADR 0032): which home a template's sessions mount (a JSON object,
-- crate::TemplateHome; '{}' mounts none), and the homes, one per user and scope.
ALTER TABLE templates ADD COLUMN home jsonb NOT NULL DEFAULT '{}';
CREATE TABLE homes (
    id           uuid        NOT NULL PRIMARY KEY,
    org_id       uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- No foreign key: a deleted user's homes stay for a grace period, then go with their volumes.
    user_id      uuid        NOT NULL,
    -- The template whose sessions alone mount it; NULL: the user's own home.
    template_id  uuid,
    -- template_id as text, or '' for the user's own home: one home per user and scope.
    scope_key    text        NOT NULL,
    -- Where its volume lives, once a session has mounted it.
    agent_id     uuid        REFERENCES agents (id) ON DELETE SET NULL,
    size_mb      bigint,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    delete_after timestamptz,
    UNIQUE (user_id, scope_key)
);
CREATE INDEX homes_by_org ON homes (org_id, id);
CREATE INDEX homes_due ON homes (delete_after) WHERE delete_after IS NOT NULL;

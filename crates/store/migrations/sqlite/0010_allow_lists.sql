-- IP allow-lists: the networks (CIDRs) from which people may sign in, call the API and reach their
-- sessions; one platform-wide list and one per org. No row, or an empty list, allows every address.
-- SQLite dialect, with the conventions of 0001_init.sql.

CREATE TABLE ip_allow_lists (
    -- 'platform', or 'org:<org id>'.
    scope      TEXT NOT NULL PRIMARY KEY,
    org_id     BLOB REFERENCES orgs (id) ON DELETE CASCADE,
    cidrs      TEXT NOT NULL, -- JSON array of CIDRs
    updated_at TEXT NOT NULL,
    CHECK ((scope = 'platform') = (org_id IS NULL))
) STRICT;

-- Egress allow-lists: networks (CIDRs) a session may reach although the platform's deny list covers
-- them, set on a template and on an org's policy; the control plane merges both into the session's
-- spec. SQLite dialect, with the conventions of 0001_init.sql.

ALTER TABLE templates ADD COLUMN egress_allow TEXT NOT NULL DEFAULT '[]'; -- JSON array of CIDRs
ALTER TABLE orgs ADD COLUMN egress_allow TEXT NOT NULL DEFAULT '[]'; -- JSON array of CIDRs

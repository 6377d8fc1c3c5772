-- What an administrator grants an agent at registration, apart from what the agent says of itself.
-- SQLite dialect, with the conventions of 0001_init.sql.

-- `labels` stays the administrator's; what the agent announces (reserved keys removed) goes here.
ALTER TABLE agents ADD COLUMN reported_labels TEXT NOT NULL DEFAULT '{}'; -- JSON object
-- The most the agent may claim; NULL: not stated at registration (see docs/agents.md for the default).
ALTER TABLE agents ADD COLUMN limit_sessions INTEGER;
ALTER TABLE agents ADD COLUMN limit_cpu_millis INTEGER;
ALTER TABLE agents ADD COLUMN limit_memory_mb INTEGER;
-- Networks the agent's session endpoints must be in; empty: any address not otherwise refused.
ALTER TABLE agents ADD COLUMN endpoint_cidrs TEXT NOT NULL DEFAULT '[]'; -- JSON array of CIDR strings

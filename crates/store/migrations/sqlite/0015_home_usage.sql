-- Persistent homes' used space (ADR 0032): measured by the agent that holds the home's volume and
-- reported with its heartbeats. NULL: never measured (a runtime that cannot, such as Kubernetes).
-- SQLite dialect, with the conventions of 0001_init.sql.

ALTER TABLE homes ADD COLUMN used_bytes INTEGER;
ALTER TABLE homes ADD COLUMN usage_measured_at TEXT;

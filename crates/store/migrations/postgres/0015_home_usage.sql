-- Persistent homes' used space (ADR 0032). PostgreSQL dialect of the SQLite migration, which
-- explains the columns.

ALTER TABLE homes ADD COLUMN used_bytes bigint;
ALTER TABLE homes ADD COLUMN usage_measured_at timestamptz;

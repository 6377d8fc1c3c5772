-- API keys may expire, and remember whether the sign-in that created them passed a second factor
-- (an organization that requires MFA refuses keys made without it). SQLite dialect, with the
-- conventions of 0001_init.sql.

ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
-- Keys made before this migration are not known to have had MFA: the safe answer is no.
ALTER TABLE api_keys ADD COLUMN mfa INTEGER NOT NULL DEFAULT 0;

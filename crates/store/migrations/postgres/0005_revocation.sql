-- Revocation. API keys may expire, and remember whether the sign-in that created them passed a
-- second factor (an organization that requires MFA refuses keys made without it); users record when
-- their session cookies were last revoked.

ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
-- Keys made before this migration are not known to have had MFA: the safe answer is no.
ALTER TABLE api_keys ADD COLUMN mfa boolean NOT NULL DEFAULT false;

-- Session-origin cookies issued before this are refused (a password change, a reset, MFA changes,
-- disabling); NULL: never revoked.
ALTER TABLE users ADD COLUMN sessions_revoked_at timestamptz;

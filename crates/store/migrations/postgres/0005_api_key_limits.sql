-- API keys may expire, and remember whether the sign-in that created them passed a second factor
-- (an organization that requires MFA refuses keys made without it).

ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
-- Keys made before this migration are not known to have had MFA: the safe answer is no.
ALTER TABLE api_keys ADD COLUMN mfa boolean NOT NULL DEFAULT false;

-- Single sign-on: identity providers of an org, the external identities linked to users, the
-- pending sign-ins (flow state, MFA tickets), replay records, and which sign-in came from which
-- provider. SQLite dialect, with the conventions of 0001_init.sql.

-- Whether the IdP's assertion of a second factor counts as MFA ('trust_idp') or TOTP is still
-- asked of users who have it ('require_totp', the default: nothing external is trusted unasked).
ALTER TABLE orgs ADD COLUMN sso_mfa TEXT NOT NULL DEFAULT 'require_totp' CHECK (sso_mfa IN ('trust_idp', 'require_totp'));

CREATE TABLE identity_providers (
    id            BLOB    NOT NULL PRIMARY KEY,
    org_id        BLOB    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('oidc', 'oauth2', 'saml')),
    enabled       INTEGER NOT NULL,
    domains       TEXT    NOT NULL, -- JSON array of lower-case email domains
    config        TEXT    NOT NULL, -- JSON object: the protocol's settings, no secrets
    -- The client secret sealed by the server (the store never sees it in the clear).
    client_secret TEXT,
    role_mapping  TEXT    NOT NULL, -- JSON object
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE external_identities (
    id              BLOB    NOT NULL PRIMARY KEY,
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id     BLOB    NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    -- The provider's stable identifier of the person (OIDC `sub`, SAML NameID, OAuth2 claim).
    subject         TEXT    NOT NULL,
    email           TEXT,
    -- Created by just-in-time provisioning (its role follows the provider's role mapping).
    provisioned     INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    last_sign_in_at TEXT,
    UNIQUE (provider_id, subject),
    -- One identity per provider and user.
    UNIQUE (user_id, provider_id)
) STRICT;

CREATE INDEX external_identities_by_user ON external_identities (user_id, id);

-- Single use and short-lived: taking deletes the row, and creating one deletes the long expired.
CREATE TABLE sso_pending (
    -- SHA-256 of the token (the flow's `state`, an MFA ticket), hex.
    token_hash   TEXT NOT NULL PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('state', 'mfa_ticket')),
    provider_id  BLOB NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_id      BLOB REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the browser-binding cookie, hex.
    browser_hash TEXT,
    -- Sealed by the server: PKCE verifier, nonce, where to return, ...
    payload      TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX sso_pending_by_expiry ON sso_pending (expires_at);

-- What a provider must not be able to use twice (SAML assertion IDs), until it expires.
CREATE TABLE sso_replays (
    provider_id BLOB NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (provider_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX sso_replays_by_expiry ON sso_replays (expires_at);

-- The sign-ins (refresh token families) that came from a provider, for RP-initiated logout.
CREATE TABLE sso_sign_ins (
    family_id   BLOB NOT NULL PRIMARY KEY,
    provider_id BLOB NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed by the server: what the provider's logout needs (the ID token hint).
    payload     TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX sso_sign_ins_by_expiry ON sso_sign_ins (expires_at);

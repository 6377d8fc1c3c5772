-- Single sign-on: identity providers of an org, the external identities linked to users, the
-- pending sign-ins (flow state, MFA tickets), replay records, and which sign-in came from which
-- provider.

-- Whether the IdP's assertion of a second factor counts as MFA ('trust_idp') or TOTP is still
-- asked of users who have it ('require_totp', the default: nothing external is trusted unasked).
ALTER TABLE orgs ADD COLUMN sso_mfa text NOT NULL DEFAULT 'require_totp' CHECK (sso_mfa IN ('trust_idp', 'require_totp'));

CREATE TABLE identity_providers (
    id            uuid        PRIMARY KEY,
    org_id        uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    display_name  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('oidc', 'oauth2', 'saml')),
    enabled       boolean     NOT NULL,
    domains       jsonb       NOT NULL, -- array of lower-case email domains
    config        jsonb       NOT NULL, -- the protocol's settings, no secrets
    -- The client secret sealed by the server (the store never sees it in the clear).
    client_secret text,
    role_mapping  jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE external_identities (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id     uuid        NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    -- The provider's stable identifier of the person (OIDC `sub`, SAML NameID, OAuth2 claim).
    subject         text        NOT NULL,
    email           text,
    -- Created by just-in-time provisioning (its role follows the provider's role mapping).
    provisioned     boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    last_sign_in_at timestamptz,
    UNIQUE (provider_id, subject),
    -- One identity per provider and user.
    UNIQUE (user_id, provider_id)
);

CREATE INDEX external_identities_by_user ON external_identities (user_id, id);

-- Single use and short-lived: taking deletes the row, and creating one deletes the long expired.
CREATE TABLE sso_pending (
    -- SHA-256 of the token (the flow's `state`, an MFA ticket), hex.
    token_hash   text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('state', 'mfa_ticket')),
    provider_id  uuid        NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_id      uuid        REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the browser-binding cookie, hex.
    browser_hash text,
    -- Sealed by the server: PKCE verifier, nonce, where to return, ...
    payload      text        NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE INDEX sso_pending_by_expiry ON sso_pending (expires_at);

-- What a provider must not be able to use twice (SAML assertion IDs), until it expires.
CREATE TABLE sso_replays (
    provider_id uuid        NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    key         text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (provider_id, key)
);

CREATE INDEX sso_replays_by_expiry ON sso_replays (expires_at);

-- The sign-ins (refresh token families) that came from a provider, for RP-initiated logout.
CREATE TABLE sso_sign_ins (
    family_id   uuid        PRIMARY KEY,
    provider_id uuid        NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed by the server: what the provider's logout needs (the ID token hint).
    payload     text        NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX sso_sign_ins_by_expiry ON sso_sign_ins (expires_at);

-- Control-plane replicas sharing this database (ADR 0030).

-- The replica holding the agent's connection; NULL when none does. Together with
-- last_heartbeat_at it says whether the agent is online: a replica that dies stops renewing it.
ALTER TABLE agents ADD COLUMN connected_replica uuid;

-- A fingerprint (an HMAC under the key, never the key) of each key every replica must share.
CREATE TABLE key_fingerprints (
    name        text        PRIMARY KEY,
    fingerprint text        NOT NULL,
    recorded_at timestamptz NOT NULL
);

-- Duties one replica at a time performs (session timers, report deliveries, retention): held
-- until expires_at, renewed by the holder, taken over by another once expired. Times are the
-- database's own clock, so replicas' clocks need not agree.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);

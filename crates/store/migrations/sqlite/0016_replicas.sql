-- Control-plane replicas (ADR 0030). SQLite dialect, with the conventions of 0001_init.sql.
-- SQLite serves one process, but the same records keep a restart honest: a control plane started
-- with other keys than the data was written with refuses to start.

-- The replica holding the agent's connection; NULL when none does. Together with
-- last_heartbeat_at it says whether the agent is online: a replica that dies stops renewing it.
ALTER TABLE agents ADD COLUMN connected_replica BLOB;

-- A fingerprint (an HMAC under the key, never the key) of each key every replica must share.
CREATE TABLE key_fingerprints (
    name        TEXT NOT NULL PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    recorded_at TEXT NOT NULL
) STRICT;

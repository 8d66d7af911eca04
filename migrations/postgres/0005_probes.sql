-- Readiness writes here: a store that answers reads but refuses writes (a full disk,
-- a read-only failover) is not ready. One row per replica.
CREATE TABLE probes (
    replica TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

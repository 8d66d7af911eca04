-- Delivery grants, events, webhooks and the audit log.

-- A time-windowed, counted, optionally geofenced permission for one grantee to unlock
-- one vehicle; keyway owes a relock (relock_due_at) after each grant unlock.
CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    vehicle_id      TEXT NOT NULL,
    grantee         TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    purpose         TEXT,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    max_unlocks     BIGINT NOT NULL,
    unlocks_used    BIGINT NOT NULL,
    geofence_lat    DOUBLE PRECISION,
    geofence_lon    DOUBLE PRECISION,
    geofence_radius_m DOUBLE PRECISION,
    relock_after_s  BIGINT NOT NULL,
    revoked_at      BIGINT,
    completed_at    BIGINT,
    relock_state    TEXT NOT NULL,
    relock_due_at   BIGINT,
    relock_attempts BIGINT NOT NULL,
    relocked_at     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX grants_by_vehicle ON grants (vehicle_id, created_at);
CREATE INDEX grants_relock_due ON grants (relock_due_at) WHERE relock_due_at IS NOT NULL;

-- Every command and grant step, in order; `seq` is the SSE event id.
CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    vehicle_id TEXT,
    grant_id   TEXT,
    command_id TEXT,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Webhook subscriptions; the signing secret is sealed.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    types      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per (subscription, event): the delivery log and the retry queue.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);

-- Append-only, hash-chained: each row carries the hash of the one before it.
CREATE TABLE audit_log (
    seq        BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    decision   TEXT NOT NULL,
    vehicle_id TEXT,
    grant_id   TEXT,
    command_id TEXT,
    detail     TEXT,
    prev_hash  TEXT NOT NULL UNIQUE,
    hash       TEXT NOT NULL
);

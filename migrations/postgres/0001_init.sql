-- keyway's schema on PostgreSQL: the same tables and meanings as the SQLite schema
-- (migrations/sqlite), in one step. Times are unix milliseconds (UTC) in BIGINT
-- columns, booleans are 0/1, so both stores read rows the same way.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    oem               TEXT NOT NULL,
    owner             TEXT NOT NULL,
    status            TEXT NOT NULL,
    access_token      TEXT,
    access_expires_at BIGINT,
    refresh_token     TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    access_refresh_at BIGINT
);

CREATE TABLE vehicles (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    oem            TEXT NOT NULL,
    oem_id         TEXT NOT NULL,
    vin            TEXT,
    display_name   TEXT,
    model          TEXT,
    year           BIGINT,
    last_locked    BIGINT,
    last_locked_at BIGINT,
    created_at     BIGINT NOT NULL,
    UNIQUE (oem, oem_id)
);

CREATE INDEX vehicles_by_account ON vehicles (account_id);

CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    vehicle_id   TEXT NOT NULL,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL,
    caller       TEXT NOT NULL,
    reference    TEXT,
    request_id   TEXT,
    sent_at      BIGINT,
    oem_handle   TEXT,
    error_code   TEXT,
    error_detail TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    completed_at BIGINT,
    lease_holder TEXT,
    lease_until  BIGINT
);

CREATE INDEX commands_unfinished ON commands (status) WHERE status = 'pending';
CREATE INDEX commands_by_vehicle ON commands (vehicle_id, created_at);

CREATE TABLE idempotency_keys (
    caller      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);

CREATE TABLE link_states (
    state_hash   TEXT PRIMARY KEY,
    oem          TEXT NOT NULL,
    caller       TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

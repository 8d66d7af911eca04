-- keyway's embedded schema. Times are unix milliseconds (UTC).

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    oem               TEXT NOT NULL,
    owner             TEXT NOT NULL,
    status            TEXT NOT NULL,
    access_token      TEXT,
    access_expires_at INTEGER,
    refresh_token     TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE vehicles (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    oem            TEXT NOT NULL,
    oem_id         TEXT NOT NULL,
    vin            TEXT,
    display_name   TEXT,
    model          TEXT,
    year           INTEGER,
    last_locked    INTEGER,
    last_locked_at INTEGER,
    created_at     INTEGER NOT NULL,
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
    sent_at      INTEGER,
    oem_handle   TEXT,
    error_code   TEXT,
    error_detail TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE INDEX commands_unfinished ON commands (status) WHERE status = 'pending';
CREATE INDEX commands_by_vehicle ON commands (vehicle_id, created_at);

CREATE TABLE idempotency_keys (
    caller      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (caller, key)
);

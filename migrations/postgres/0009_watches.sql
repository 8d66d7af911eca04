-- Cars a tenant watches (PUT /v1/vehicles/{id}/watch) until a time, and the last state
-- keyway emitted of each car: the persisted cursor that makes each change one
-- `vehicle.state_changed` event, across replicas and restarts (`version` is compared
-- and bumped in the event's own transaction).
CREATE TABLE watches (
    tenant TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    until_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, vehicle_id)
);
CREATE INDEX watches_until ON watches (until_at);
CREATE TABLE vehicle_states (
    vehicle_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    state TEXT NOT NULL
);

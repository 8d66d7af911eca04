-- A grant's timeline reads its car's events from the grant's start.
CREATE INDEX events_by_vehicle ON events (tenant, vehicle_id, created_at);

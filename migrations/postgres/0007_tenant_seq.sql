-- Each tenant's events are numbered on their own (`tenant_seq`): the event id and
-- resume cursor a tenant sees, so the global `seq` (every tenant's volume) never shows.
-- Events written before keep their global number as theirs.
ALTER TABLE events ADD COLUMN tenant_seq BIGINT;
UPDATE events SET tenant_seq = seq;
CREATE UNIQUE INDEX events_by_tenant_seq ON events (tenant, tenant_seq);

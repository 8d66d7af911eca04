-- Tenancy: every object carries the tenant it belongs to (the caller's `tenant` claim,
-- else its `sub`), and every query made for a caller filters by it. Rows from before
-- take the tenant of the account (or vehicle) they are about.

ALTER TABLE vehicles ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE vehicles SET tenant = COALESCE(
    (SELECT owner FROM accounts WHERE accounts.id = vehicles.account_id), '');
CREATE INDEX vehicles_by_tenant ON vehicles (tenant, id);

-- `reserved`: a relock or a grant's unlock, which may use the command quota's reserve.
ALTER TABLE commands ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE commands ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0;
UPDATE commands SET tenant = COALESCE(
    (SELECT tenant FROM vehicles WHERE vehicles.id = commands.vehicle_id), '');

ALTER TABLE grants ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE grants SET tenant = COALESCE(
    (SELECT tenant FROM vehicles WHERE vehicles.id = grants.vehicle_id), '');

ALTER TABLE events ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE events SET tenant = COALESCE(
    (SELECT tenant FROM vehicles WHERE vehicles.id = events.vehicle_id), '');
CREATE INDEX events_by_tenant ON events (tenant, seq);

-- `vehicles`: the subscribing token's vehicle restriction (comma-separated), or NULL.
ALTER TABLE webhooks ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN vehicles TEXT;
UPDATE webhooks SET tenant = created_by;

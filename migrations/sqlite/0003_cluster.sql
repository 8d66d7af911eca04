-- Leases: who works on what, until when. A lease is taken with a conditional upsert
-- (free, expired, or already ours) and renewed while the work runs; a holder that dies
-- stops renewing and the lease lapses.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The replica driving a pending command, and until when; another takes it over after.
ALTER TABLE commands ADD COLUMN lease_holder TEXT;
ALTER TABLE commands ADD COLUMN lease_until INTEGER;

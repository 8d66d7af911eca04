-- An in-doubt unlock that a caller acknowledged (POST /v1/commands/{id}/acknowledge):
-- it no longer blocks the car's next unlock. Who and when; the audit log has the entry.
ALTER TABLE commands ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE commands ADD COLUMN acknowledged_by TEXT;

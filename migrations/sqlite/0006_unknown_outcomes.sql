-- Honest outcomes: a command whose outcome keyway could not learn ends `unknown`,
-- carrying the last lock state observed after it was sent (`observed_locked`, with the
-- time the car reported it), and `retry_at`, the earliest a new command makes sense.
ALTER TABLE commands ADD COLUMN observed_locked INTEGER;
ALTER TABLE commands ADD COLUMN observed_at INTEGER;
ALTER TABLE commands ADD COLUMN retry_at INTEGER;
-- What was sent to a car lately: an unlock in doubt blocks the next unlock.
CREATE INDEX commands_by_send ON commands (vehicle_id, sent_at);

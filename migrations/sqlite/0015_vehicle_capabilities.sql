-- What a car can do when its OEM says so per car (a JSON array of capability names,
-- a subset of its adapter's); NULL: all its adapter declares.
ALTER TABLE vehicles ADD COLUMN capabilities TEXT;

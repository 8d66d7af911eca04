-- A finished command's problem members (JSON object, e.g. Tesla's `pairing_url`), kept
-- as the caller was told them so a later read answers the same problem; NULL when none.
ALTER TABLE commands ADD COLUMN error_members TEXT;

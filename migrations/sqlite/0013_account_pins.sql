-- Per-account secrets: the owner's PIN (Hyundai/Kia CCS2 control token, Volkswagen's
-- S-PIN), sealed like the OEM tokens. `rejected_at` is set when the OEM refused it:
-- keyway does not try it again until a new one replaces it (repeated wrong PINs lock
-- the owner out at the OEM).
CREATE TABLE account_pins (
    account_id TEXT PRIMARY KEY,
    pin TEXT NOT NULL,
    rejected_at INTEGER,
    updated_at INTEGER NOT NULL
);

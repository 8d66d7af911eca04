-- Account linking. Token columns of `accounts` hold sealed values (crypto.rs) only.

ALTER TABLE accounts ADD COLUMN access_refresh_at INTEGER;

-- Pending OAuth authorizations: `state` is kept only as a SHA-256 hash, the PKCE
-- verifier only sealed. Rows are taken (deleted) by the callback: single use.
CREATE TABLE link_states (
    state_hash   TEXT PRIMARY KEY,
    oem          TEXT NOT NULL,
    caller       TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

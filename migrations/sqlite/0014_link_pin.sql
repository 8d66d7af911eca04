-- A PIN given when the link starts (POST /v1/accounts/{oem}/authorize {"pin"}),
-- sealed, kept with the pending link and set on the account the callback creates.
ALTER TABLE link_states ADD COLUMN pin TEXT;

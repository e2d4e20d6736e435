-- Lobby targets of kind "gatehouse": another Gatehouse reached through its
-- admin API at api_url with an API token kept sealed (internal/seal).
-- Commissioning a device there mints a registration token, which the
-- device gets with its assignment; the ledger keeps it sealed in
-- assignment_secret, apart from the assignment shown to operators.
ALTER TABLE lobby_targets ADD COLUMN api_url TEXT NOT NULL DEFAULT '';
ALTER TABLE lobby_targets ADD COLUMN api_token_sealed BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE lobby_devices ADD COLUMN assignment_secret BYTEA NOT NULL DEFAULT ''::bytea;

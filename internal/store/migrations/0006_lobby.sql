-- Device lobby: the ledger of manufacturer-certified devices by the SHA-256
-- fingerprint of their certificate (the QR code), their state transitions,
-- and the named targets devices are routed to.

-- Targets: kind "local" (this Gatehouse: commissioning registers the
-- certificate and a thing here) or "mqtt" (an endpoint URL and its CA,
-- handed to the device).
CREATE TABLE lobby_targets (
	name        TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	endpoint    TEXT NOT NULL DEFAULT '',
	ca_pem      TEXT NOT NULL DEFAULT '',
	thing_type  TEXT NOT NULL DEFAULT '',
	config      TEXT NOT NULL DEFAULT '',
	version     BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);

-- The ledger. certificate_pem is empty for a device pre-claimed before it
-- was ever seen. claims counts claims and reroutes; commissioned_claim is
-- the claim last commissioned, so each claim is commissioned exactly once.
CREATE TABLE lobby_devices (
	fingerprint        TEXT PRIMARY KEY,
	state              TEXT NOT NULL,
	thing_name         TEXT NOT NULL DEFAULT '',
	common_name        TEXT NOT NULL DEFAULT '',
	ca_name            TEXT NOT NULL DEFAULT '',
	certificate_pem    TEXT NOT NULL DEFAULT '',
	device_state       TEXT NOT NULL DEFAULT '',
	device_config      TEXT NOT NULL DEFAULT '',
	target             TEXT NOT NULL DEFAULT '',
	claim_config       TEXT NOT NULL DEFAULT '',
	assignment         TEXT NOT NULL DEFAULT '',
	claims             BIGINT NOT NULL DEFAULT 0,
	commissioned_claim BIGINT NOT NULL DEFAULT 0,
	first_seen_at      BIGINT NOT NULL DEFAULT 0,
	last_seen_at       BIGINT NOT NULL DEFAULT 0,
	version            BIGINT NOT NULL,
	created_at         BIGINT NOT NULL,
	updated_at         BIGINT NOT NULL
);
CREATE INDEX lobby_devices_state ON lobby_devices(state, fingerprint);
CREATE INDEX lobby_devices_target ON lobby_devices(target);

-- History: every state change of a ledger entry, oldest first.
CREATE TABLE lobby_transitions (
	id          {{SERIAL_KEY}},
	fingerprint TEXT NOT NULL REFERENCES lobby_devices(fingerprint) ON DELETE CASCADE,
	from_state  TEXT NOT NULL,
	to_state    TEXT NOT NULL,
	actor       TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	target      TEXT NOT NULL DEFAULT '',
	at          BIGINT NOT NULL
);
CREATE INDEX lobby_transitions_device ON lobby_transitions(fingerprint, id);

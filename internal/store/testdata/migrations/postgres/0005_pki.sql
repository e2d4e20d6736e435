-- PKI: Gatehouse's own CA (keys sealed), device certificates, registration
-- tokens of the registration gateway and trusted manufacturer CAs.

-- Gatehouse's issuing CA. Keys are sealed (internal/seal) with the CA name
-- in the additional data; the cached CRL is regenerated when crl_stale is
-- set (a revocation) or when it nears its next update.
CREATE TABLE pki_cas (
	name              TEXT PRIMARY KEY,
	chain_pem         TEXT NOT NULL,
	sealed_key        BYTEA NOT NULL,
	sealed_root_key   BYTEA,
	issuer_fingerprint TEXT NOT NULL,
	registration_code TEXT NOT NULL,
	crl_number        BIGINT NOT NULL DEFAULT 0,
	crl_der           BYTEA,
	crl_this_update   BIGINT NOT NULL DEFAULT 0,
	crl_next_update   BIGINT NOT NULL DEFAULT 0,
	crl_stale         BOOLEAN NOT NULL DEFAULT TRUE,
	version           BIGINT NOT NULL,
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL
);

-- Device certificates by SHA-256 fingerprint. thing_name is not a foreign
-- key: a certificate (and its revocation) outlives a deleted thing.
CREATE TABLE certificates (
	fingerprint        TEXT PRIMARY KEY,
	thing_name         TEXT NOT NULL DEFAULT '',
	ca_name            TEXT NOT NULL,
	issuer_fingerprint TEXT NOT NULL DEFAULT '',
	serial             TEXT NOT NULL,
	subject            TEXT NOT NULL DEFAULT '',
	pem                TEXT NOT NULL,
	status             TEXT NOT NULL,
	not_before         BIGINT NOT NULL,
	not_after          BIGINT NOT NULL,
	revoked_at         BIGINT NOT NULL DEFAULT 0,
	revocation_reason  INTEGER NOT NULL DEFAULT 0,
	version            BIGINT NOT NULL,
	created_at         BIGINT NOT NULL,
	updated_at         BIGINT NOT NULL
);
CREATE INDEX certificates_thing ON certificates(thing_name);
CREATE INDEX certificates_ca_status ON certificates(ca_name, status);

-- Registration tokens (the DeviceToken of POST /register), by SHA-256 hash.
-- max_uses 0 means unlimited; expires_at 0 means never.
CREATE TABLE registration_tokens (
	id          TEXT PRIMARY KEY,
	hash        TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	thing_type  TEXT NOT NULL,
	max_uses    BIGINT NOT NULL,
	uses        BIGINT NOT NULL DEFAULT 0,
	expires_at  BIGINT NOT NULL DEFAULT 0,
	revoked_at  BIGINT NOT NULL DEFAULT 0,
	created_at  BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL DEFAULT 0
);

-- Manufacturer CAs whose device certificates are trusted and, with
-- auto_register, registered just in time on first connection.
CREATE TABLE manufacturer_cas (
	name                TEXT PRIMARY KEY,
	fingerprint         TEXT NOT NULL UNIQUE,
	certificate_pem     TEXT NOT NULL,
	status              TEXT NOT NULL,
	verified            BOOLEAN NOT NULL DEFAULT FALSE,
	auto_register       BOOLEAN NOT NULL DEFAULT FALSE,
	jit_status          TEXT NOT NULL,
	thing_type          TEXT NOT NULL DEFAULT '',
	thing_name_template TEXT NOT NULL DEFAULT '',
	allow_missing_eku   BOOLEAN NOT NULL DEFAULT FALSE,
	version             BIGINT NOT NULL,
	created_at          BIGINT NOT NULL,
	updated_at          BIGINT NOT NULL
);

-- OAuth 2.0 authorization server: signing keys, thing credentials, device
-- authorizations, refresh tokens, revoked access tokens and used assertion
-- ids. Secrets are stored only as SHA-256 hashes; private keys only sealed.

-- Token signing keys. The private key is sealed (internal/seal) with the
-- key id as additional data. retired_at = 0 means the key is still in JWKS.
CREATE TABLE oauth_signing_keys (
	kid            TEXT PRIMARY KEY,
	algorithm      TEXT NOT NULL,
	public_jwk     TEXT NOT NULL,
	sealed_private BYTEA NOT NULL,
	created_at     BIGINT NOT NULL,
	retired_at     BIGINT NOT NULL DEFAULT 0
);

-- One client secret per thing (SHA-256 of a 256-bit random secret).
CREATE TABLE oauth_client_secrets (
	thing       TEXT PRIMARY KEY REFERENCES things(name) ON DELETE CASCADE,
	hash        TEXT NOT NULL,
	created_at  BIGINT NOT NULL
);

-- Public keys a thing signs private_key_jwt assertions with.
CREATE TABLE oauth_client_keys (
	thing       TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
	kid         TEXT NOT NULL,
	algorithm   TEXT NOT NULL,
	jwk         TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (thing, kid)
);

-- Device authorization requests (RFC 8628), keyed by the device code's hash.
CREATE TABLE oauth_device_codes (
	code_hash     TEXT PRIMARY KEY,
	user_code     TEXT NOT NULL UNIQUE,
	client_id     TEXT NOT NULL,
	scopes        TEXT NOT NULL DEFAULT '[]',
	state         TEXT NOT NULL,
	subject       TEXT NOT NULL DEFAULT '',
	consent_hash  TEXT NOT NULL DEFAULT '',
	interval_secs INTEGER NOT NULL,
	last_poll_at  BIGINT NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL
);
CREATE INDEX oauth_device_codes_expires ON oauth_device_codes(expires_at);

-- Refresh tokens of user-delegated grants. Each use rotates the token; a
-- rotated token presented again revokes its whole family.
CREATE TABLE oauth_refresh_tokens (
	token_hash  TEXT PRIMARY KEY,
	family_id   TEXT NOT NULL,
	client_id   TEXT NOT NULL,
	subject     TEXT NOT NULL,
	scopes      TEXT NOT NULL DEFAULT '[]',
	access_jti  TEXT NOT NULL DEFAULT '',
	access_exp  BIGINT NOT NULL DEFAULT 0,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	used_at     BIGINT NOT NULL DEFAULT 0,
	revoked_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens(family_id);
CREATE INDEX oauth_refresh_tokens_expires ON oauth_refresh_tokens(expires_at);

-- Access tokens revoked before they expire, by JWT ID.
CREATE TABLE oauth_revoked_tokens (
	jti         TEXT PRIMARY KEY,
	expires_at  BIGINT NOT NULL,
	revoked_at  BIGINT NOT NULL
);
CREATE INDEX oauth_revoked_tokens_expires ON oauth_revoked_tokens(expires_at);

-- JWT IDs of client assertions already used, kept until they expire.
CREATE TABLE oauth_used_jtis (
	issuer      TEXT NOT NULL,
	jti         TEXT NOT NULL,
	expires_at  BIGINT NOT NULL,
	PRIMARY KEY (issuer, jti)
);
CREATE INDEX oauth_used_jtis_expires ON oauth_used_jtis(expires_at);

-- Registered OAuth applications (clients that are not things: the console,
-- mobile and web apps) and authorization code requests (RFC 6749 section
-- 4.1 with PKCE, RFC 7636). Secrets, request ids and codes are stored only
-- as SHA-256 hashes.
CREATE TABLE oauth_apps (
	client_id     TEXT PRIMARY KEY,
	description   TEXT NOT NULL DEFAULT '',
	secret_hash   TEXT NOT NULL DEFAULT '',
	redirect_uris TEXT NOT NULL DEFAULT '[]',
	scopes        TEXT NOT NULL DEFAULT '[]',
	grant_types   TEXT NOT NULL DEFAULT '[]',
	created_at    BIGINT NOT NULL
);

CREATE TABLE oauth_auth_requests (
	id_hash          TEXT PRIMARY KEY,
	client_id        TEXT NOT NULL,
	redirect_uri     TEXT NOT NULL,
	scopes           TEXT NOT NULL DEFAULT '[]',
	state            TEXT NOT NULL DEFAULT '',
	nonce            TEXT NOT NULL DEFAULT '',
	code_challenge   TEXT NOT NULL DEFAULT '',
	challenge_method TEXT NOT NULL DEFAULT '',
	subject          TEXT NOT NULL DEFAULT '',
	code_hash        TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	expires_at       BIGINT NOT NULL
);
CREATE INDEX oauth_auth_requests_code ON oauth_auth_requests(code_hash);
CREATE INDEX oauth_auth_requests_expires ON oauth_auth_requests(expires_at);

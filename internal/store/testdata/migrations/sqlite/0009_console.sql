-- Web console sessions. id_hash is the SHA-256 of the cookie value: the
-- value itself is never stored. csrf_token is echoed to the logged-in
-- browser and must come back in X-CSRF-Token on every change.
CREATE TABLE console_sessions (
	id_hash      TEXT PRIMARY KEY,
	username     TEXT NOT NULL,
	csrf_token   TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	last_seen_at BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
CREATE INDEX console_sessions_last_seen ON console_sessions(last_seen_at);
CREATE INDEX console_sessions_username ON console_sessions(username);

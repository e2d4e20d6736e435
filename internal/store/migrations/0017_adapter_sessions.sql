-- Connections an external broker (EMQX, RabbitMQ) authenticated through
-- Gatehouse's adapters: written at authentication, read by the later
-- authorization calls, which may reach any replica. identity is the
-- authenticated identity as JSON (subject, scopes, token claims; no secret:
-- the token itself is never stored). credential_id is the token's jti,
-- for revocation; thing_name and user_name find the sessions a registry
-- change concerns.
CREATE TABLE adapter_sessions (
	broker        TEXT NOT NULL,
	client_id     TEXT NOT NULL,
	username      TEXT NOT NULL,
	credential_id TEXT NOT NULL,
	thing_name    TEXT NOT NULL,
	user_name     TEXT NOT NULL,
	identity      TEXT NOT NULL,
	source_ip     TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	PRIMARY KEY (broker, client_id, username)
);
CREATE INDEX adapter_sessions_expires ON adapter_sessions(expires_at);
CREATE INDEX adapter_sessions_credential ON adapter_sessions(credential_id);
CREATE INDEX adapter_sessions_thing ON adapter_sessions(thing_name);
CREATE INDEX adapter_sessions_user ON adapter_sessions(user_name);

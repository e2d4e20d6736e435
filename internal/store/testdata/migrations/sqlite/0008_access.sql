-- Access requests, expiring relationships, AWS IoT access keys and the
-- state of registry synchronization with AWS IoT.

-- A relationship with expires_at > 0 stops counting at that time (UNIX
-- microseconds) and is purged afterwards; 0 never expires.
ALTER TABLE relationships ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX relationships_expires ON relationships(expires_at);

-- A user asks for a relation (owner, operator, viewer) to a thing; an owner
-- of the thing, an operator or an administrator decides.
CREATE TABLE access_requests (
	id               TEXT PRIMARY KEY,
	requester        TEXT NOT NULL,
	thing            TEXT NOT NULL,
	relation         TEXT NOT NULL,
	reason           TEXT NOT NULL DEFAULT '',
	state            TEXT NOT NULL,
	decided_by       TEXT NOT NULL DEFAULT '',
	decision_note    TEXT NOT NULL DEFAULT '',
	grant_expires_at BIGINT NOT NULL DEFAULT 0,
	decided_at       BIGINT NOT NULL DEFAULT 0,
	version          BIGINT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);
CREATE INDEX access_requests_thing ON access_requests(thing, state);
CREATE INDEX access_requests_requester ON access_requests(requester, state);
CREATE INDEX access_requests_state ON access_requests(state, created_at);

-- AWS Signature V4 access keys for the AWS-IoT-compatible registry API.
-- SigV4 needs the secret on the server, so it is sealed with the master key.
CREATE TABLE aws_access_keys (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	sealed_secret TEXT NOT NULL,
	roles         TEXT NOT NULL DEFAULT '[]',
	created_at    BIGINT NOT NULL
);

-- What `gatehouse sync aws-iot` last agreed with a remote registry, per
-- item: the remote and local versions and the hash of the synced content.
CREATE TABLE sync_state (
	source         TEXT NOT NULL,
	kind           TEXT NOT NULL,
	name           TEXT NOT NULL,
	remote_version BIGINT NOT NULL,
	local_version  BIGINT NOT NULL,
	hash           TEXT NOT NULL,
	synced_at      BIGINT NOT NULL,
	PRIMARY KEY (source, kind, name)
);

-- Registry, API tokens and the event log.
CREATE TABLE thing_types (
	name             TEXT PRIMARY KEY,
	description      TEXT NOT NULL DEFAULT '',
	attribute_schema TEXT NOT NULL DEFAULT '[]',
	default_policies TEXT NOT NULL DEFAULT '[]',
	auth_methods     TEXT NOT NULL DEFAULT '[]',
	scopes           TEXT NOT NULL DEFAULT '[]',
	approver_relation TEXT NOT NULL DEFAULT '',
	version          BIGINT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);

CREATE TABLE things (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	thing_type  TEXT REFERENCES thing_types(name),
	attributes  TEXT NOT NULL DEFAULT '{}',
	state       TEXT NOT NULL,
	version     BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE INDEX things_thing_type ON things(thing_type);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	display_name  TEXT NOT NULL DEFAULT '',
	email         TEXT NOT NULL DEFAULT '',
	password_hash TEXT NOT NULL DEFAULT '',
	roles         TEXT NOT NULL DEFAULT '[]',
	disabled      BOOLEAN NOT NULL DEFAULT FALSE,
	version       BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);

CREATE TABLE groups (
	name        TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	version     BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
	group_name  TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
	member_kind TEXT NOT NULL,
	member      TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (group_name, member_kind, member)
);
CREATE INDEX group_members_member ON group_members(member_kind, member);

CREATE TABLE relationships (
	subject_kind TEXT NOT NULL,
	subject      TEXT NOT NULL,
	relation     TEXT NOT NULL,
	object_kind  TEXT NOT NULL,
	object       TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	PRIMARY KEY (subject_kind, subject, relation, object_kind, object)
);
CREATE INDEX relationships_object ON relationships(object_kind, object);

CREATE TABLE api_tokens (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	hash        TEXT NOT NULL UNIQUE,
	username    TEXT NOT NULL DEFAULT '',
	roles       TEXT NOT NULL DEFAULT '[]',
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	time     BIGINT NOT NULL,
	type     TEXT NOT NULL,
	subject  TEXT NOT NULL,
	actor    TEXT NOT NULL,
	details  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_type ON events(type);
CREATE INDEX events_subject ON events(subject);

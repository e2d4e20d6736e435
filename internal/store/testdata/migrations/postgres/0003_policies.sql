-- Policies (AWS IoT policy documents), their versions and attachments.
CREATE TABLE policies (
	name            TEXT PRIMARY KEY,
	description     TEXT NOT NULL DEFAULT '',
	default_version BIGINT NOT NULL,
	next_version    BIGINT NOT NULL,
	version         BIGINT NOT NULL,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL
);

CREATE TABLE policy_versions (
	policy_name TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
	version_id  BIGINT NOT NULL,
	document    TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (policy_name, version_id)
);

CREATE TABLE policy_attachments (
	policy_name TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
	target_kind TEXT NOT NULL,
	target      TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (policy_name, target_kind, target)
);
CREATE INDEX policy_attachments_target ON policy_attachments(target_kind, target);

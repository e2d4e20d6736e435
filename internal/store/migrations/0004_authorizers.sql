-- AWS IoT style custom authorizers: a device presents a token and a
-- signature of it made with a key whose public half is registered here.
CREATE TABLE authorizers (
	name             TEXT PRIMARY KEY,
	token_key_name   TEXT NOT NULL,
	public_keys      TEXT NOT NULL DEFAULT '{}',
	signing_disabled BOOLEAN NOT NULL DEFAULT FALSE,
	status           TEXT NOT NULL,
	is_default       BOOLEAN NOT NULL DEFAULT FALSE,
	version          BIGINT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL
);

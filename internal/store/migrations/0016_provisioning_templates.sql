-- AWS IoT fleet provisioning templates: what RegisterThing creates for a
-- device that presents a claim (thing, certificate status, policies), as
-- versioned JSON bodies; the pre-provisioning hook is an HTTPS URL.
CREATE TABLE provisioning_templates (
	name                  TEXT PRIMARY KEY,
	description           TEXT NOT NULL DEFAULT '',
	enabled               BOOLEAN NOT NULL DEFAULT FALSE,
	default_version       BIGINT NOT NULL,
	next_version          BIGINT NOT NULL,
	pre_provisioning_hook TEXT NOT NULL DEFAULT '',
	version               BIGINT NOT NULL,
	created_at            BIGINT NOT NULL,
	updated_at            BIGINT NOT NULL
);

CREATE TABLE provisioning_template_versions (
	template_name TEXT NOT NULL REFERENCES provisioning_templates(name) ON DELETE CASCADE,
	version_id    BIGINT NOT NULL,
	body          TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	PRIMARY KEY (template_name, version_id)
);

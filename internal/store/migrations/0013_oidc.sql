-- OpenID Connect: an ID token says when the person signed in (auth_time),
-- and a refreshed one must say the same. Refresh tokens carry the sign-in
-- time of their grant; a device authorization records when the person
-- decided on it (the sign-in on the device page). 0: unknown.
ALTER TABLE oauth_refresh_tokens ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_device_codes ADD COLUMN decided_at BIGINT NOT NULL DEFAULT 0;

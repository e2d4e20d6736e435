-- The key algorithm the registration gateway generates device keys with,
-- per thing type ('' is the server's default, ECDSA P-256): AWS IoT's
-- CreateKeysAndCertificate issues RSA 2048, and devices built for it may
-- expect that.
ALTER TABLE thing_types ADD COLUMN key_algorithm TEXT NOT NULL DEFAULT '';

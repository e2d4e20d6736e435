-- What each OAuth scope of a thing type lets a thing do, in plain language
-- (a JSON object, scope -> sentence): the device authorization page shows
-- it to the person asked to approve.
ALTER TABLE thing_types ADD COLUMN scope_descriptions TEXT NOT NULL DEFAULT '{}';

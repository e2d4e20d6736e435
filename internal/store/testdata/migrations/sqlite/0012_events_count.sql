-- An event may stand for several occurrences: repeated broker denials of
-- one source, action and reason within a window are written as one row
-- with their count (see internal/events.Aggregator). Retention deletes
-- events by age, hence the index on time.
ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
CREATE INDEX events_time ON events(time);

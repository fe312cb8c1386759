-- Counters gain the outcome `filtered`: events a destination filter (DESTINATION_FILTERS) or
-- VERO_WEBHOOK_TYPES_DROPPED held back on purpose. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt with its rows.
CREATE TABLE counters_next (
  hour TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  name TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retried', 'dead_lettered', 'refused', 'filtered')),
  count INTEGER NOT NULL,
  PRIMARY KEY (hour, direction, name, outcome)
) WITHOUT ROWID;
INSERT INTO counters_next (hour, direction, name, outcome, count)
  SELECT hour, direction, name, outcome, count FROM counters;
DROP TABLE counters;
ALTER TABLE counters_next RENAME TO counters;

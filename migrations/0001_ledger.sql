-- The ledger: dead letters waiting for an operator, and hourly counts of what flowed.

CREATE TABLE dead_letters (
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL CHECK (source IN ('segment', 'vero')),
  -- The queue message's body as JSON text, exactly as it was enqueued.
  body TEXT NOT NULL,
  reason TEXT NOT NULL,
  permanent INTEGER NOT NULL CHECK (permanent IN (0, 1)),
  attempts INTEGER NOT NULL CHECK (attempts >= 0),
  failed_at TEXT NOT NULL
);

-- Listings run newest first.
CREATE INDEX dead_letters_by_time ON dead_letters (failed_at DESC, id DESC);

CREATE TABLE counters (
  -- The hour's start, ISO 8601 in UTC: "2026-11-28T15:00:00.000Z".
  hour TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  name TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retried', 'dead_lettered', 'refused')),
  count INTEGER NOT NULL CHECK (count >= 0),
  PRIMARY KEY (hour, direction, name, outcome)
);

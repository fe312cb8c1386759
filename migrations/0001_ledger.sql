-- The bridge's delivery ledger (binding LEDGER). Applied with
-- `wrangler d1 migrations apply <database_name> --remote` on deploy, `--local` by `npm start`,
-- and by the workerd tests' setup. Times are ISO 8601 UTC strings, which sort as time.

-- The Vero calls Vero accepted, one row per event and call. `call` is the call's
-- position in the event's calls and the call itself ("0 POST /users/track",
-- "1 PUT /users/tags/edit"), so an event's two calls of the same path stay distinct.
CREATE TABLE vero_calls (
  message_id TEXT NOT NULL,
  call TEXT NOT NULL,
  status INTEGER NOT NULL,
  done_at TEXT NOT NULL,
  PRIMARY KEY (message_id, call)
) WITHOUT ROWID;
CREATE INDEX vero_calls_done_at ON vero_calls (done_at);

-- Messages that will not be delivered without an operator, until re-driven or deleted.
CREATE TABLE dead_letters (
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL CHECK (source IN ('segment', 'vero')),
  body TEXT NOT NULL,
  reason TEXT NOT NULL,
  permanent INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  failed_at TEXT NOT NULL
);
CREATE INDEX dead_letters_failed_at ON dead_letters (failed_at, id);

-- Counts per 5 minutes (the column `hour` holds the bucket's start; reads sum them to hours) per direction, name (inbound: the Segment event name; outbound: the Vero call)
-- and outcome (delivered, retried, dead_lettered, refused).
CREATE TABLE counters (
  hour TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  name TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retried', 'dead_lettered', 'refused')),
  count INTEGER NOT NULL,
  PRIMARY KEY (hour, direction, name, outcome)
) WITHOUT ROWID;

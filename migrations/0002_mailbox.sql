-- The mailboxes (Durable Objects, one per Vero user) keep their own ledger of Vero calls;
-- vero_calls is read only for jobs queued before them, and emptied by the daily cron.
-- A mailbox whose head job is failing says so here, for the "delivery not moving" alert.
CREATE TABLE stalled_mailboxes (
  mailbox TEXT PRIMARY KEY,      -- the mailbox's Durable Object id (hex), never the user id
  oldest_at TEXT NOT NULL,       -- ISO time the oldest job it holds was received
  since TEXT NOT NULL,           -- ISO time its head job first failed
  reason TEXT NOT NULL,          -- the last failure, as logged (emails fingerprinted)
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

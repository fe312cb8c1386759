-- The alerts' memory (src/admin/alerts/). Times are ISO 8601 UTC strings.

-- Each condition's last state: whether it holds, since when, when it was last sent, and
-- (dead letters) the newest failure already alerted on, so that only newer ones count as new.
CREATE TABLE alert_state (
  condition TEXT PRIMARY KEY,
  active INTEGER NOT NULL,
  since TEXT NOT NULL,
  last_sent_at TEXT,
  mark TEXT,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Every message the cron tried to post, delivered or not, for the console's "last alerts sent".
CREATE TABLE alerts_sent (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sent_at TEXT NOT NULL,
  condition TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('alert', 'repeat', 'resolved')),
  summary TEXT NOT NULL,
  -- The receiver's status, or null when it could not be reached in time.
  status INTEGER,
  delivered INTEGER NOT NULL
);
CREATE INDEX alerts_sent_sent_at ON alerts_sent (sent_at);

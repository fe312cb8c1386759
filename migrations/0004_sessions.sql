-- The console's sign-in sessions (binding LEDGER): a session is valid while its row exists and
-- has not expired, so signing out ends it everywhere, whoever copied the cookie. Expired rows are
-- deleted at each sign-in.
CREATE TABLE console_sessions (
  id TEXT PRIMARY KEY,
  expires_at TEXT NOT NULL
) WITHOUT ROWID;

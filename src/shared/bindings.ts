/** What the bridge says when a binding wrangler.toml declares is missing, or its schema is: the same sentence wherever it is needed. */

export const LEDGER_UNBOUND = "the LEDGER D1 database is not bound (see wrangler.toml)";

export const MAILBOX_UNBOUND = "the MAILBOX Durable Object namespace is not bound (see wrangler.toml)";

/** What to run when D1 answers "no such table": the ledger is bound but its schema (migrations/) is not applied. */
export const LEDGER_UNMIGRATED =
  "the ledger (D1 binding LEDGER) has no schema yet: apply migrations/ with `npx wrangler d1 migrations apply LEDGER --local` under a plain wrangler dev, or `npm run deploy` (which runs it with --remote) deployed";

export const isMissingTable = (error: unknown) => error instanceof Error && /no such table/i.test(error.message);

/** What the bridge says when a binding wrangler.toml declares is missing: the same sentence wherever it is needed. */

export const LEDGER_UNBOUND = "the LEDGER D1 database is not bound (see wrangler.toml)";

export const MAILBOX_UNBOUND = "the MAILBOX Durable Object namespace is not bound (see wrangler.toml)";

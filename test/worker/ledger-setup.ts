import { applyD1Migrations, type D1Migration } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Idempotent: each test file's run applies what is not applied yet.
const bindings = env as unknown as { LEDGER: D1Database; LEDGER_MIGRATIONS: D1Migration[] };
await applyD1Migrations(bindings.LEDGER, bindings.LEDGER_MIGRATIONS);

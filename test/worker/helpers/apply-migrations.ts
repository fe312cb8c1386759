/** Every worker test file starts with the ledger's schema, as `wrangler d1 migrations apply` leaves it. */
import { applyD1Migrations, type D1Migration } from "cloudflare:test";
import { env } from "cloudflare:workers";

const bindings = env as unknown as { LEDGER: D1Database; TEST_MIGRATIONS: D1Migration[] };
await applyD1Migrations(bindings.LEDGER, bindings.TEST_MIGRATIONS);

/**
 * Run by `npm ci` and `npm install` (package.json's postinstall): the ledger's migrations applied to the local
 * D1 that a plain `npx wrangler dev` reads (`.wrangler/state`), so that it starts with its tables. An
 * install never fails for it: when wrangler cannot apply them, it prints the one command to run instead.
 * `npm start` and the tests keep their own state and migrate it themselves (dev/bridge.ts).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { WRANGLER_BIN } from "./bridge.ts";

const COMMAND = "npx wrangler d1 migrations apply LEDGER --local";

try {
  // CI=true: wrangler applies without asking, as there is no one to ask during an install.
  await promisify(execFile)(
    process.execPath,
    [WRANGLER_BIN, "d1", "migrations", "apply", "LEDGER", "--local", "--env", ""],
    {
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" },
    },
  );
  process.stdout.write("Local ledger for `npx wrangler dev`: migrations/ applied to .wrangler/state.\n");
} catch {
  process.stdout.write(`Local ledger for \`npx wrangler dev\`: not migrated; run \`${COMMAND}\` once.\n`);
}

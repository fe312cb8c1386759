/**
 * A stand-in for the `wrangler` commands `npm run deploy` drives, for the tests: a Cloudflare account kept in
 * a JSON file (WRANGLER_STAND_IN_STATE), every call recorded there with its arguments, answering as wrangler 4
 * does (its JSON outputs, its "does not exist" and "not found" errors). `wrangler deploy` prints
 * WRANGLER_STAND_IN_URL as the Worker's URL. Run as `node dev/stand-ins/wrangler.ts <args>`.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

export interface WranglerAccount {
  loggedIn: boolean;
  queues: string[];
  databases: string[];
  /** Per database: how many migrations `d1 migrations apply` has applied. */
  migrated: Record<string, number>;
  /** Per Worker: its secrets, set by `deploy --secrets-file`. Absent until the Worker's first deploy. */
  workers: Record<string, { secrets: Record<string, string>; deploys: number }>;
  calls: { args: string[]; at: number }[];
}

export const emptyAccount = (): WranglerAccount => ({
  loggedIn: true,
  queues: [],
  databases: [],
  migrated: {},
  workers: {},
  calls: [],
});

const MIGRATIONS = 4;

function main(): number {
  const statePath = process.env.WRANGLER_STAND_IN_STATE;
  if (!statePath) {
    process.stderr.write("WRANGLER_STAND_IN_STATE is not set\n");
    return 2;
  }
  const account: WranglerAccount = existsSync(statePath)
    ? (JSON.parse(readFileSync(statePath, "utf8")) as WranglerAccount)
    : emptyAccount();
  const args = process.argv.slice(2);
  account.calls.push({ args, at: Date.now() });
  const save = () => writeFileSync(statePath, JSON.stringify(account, null, 2));
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const fail = (text: string) => {
    process.stderr.write(`✘ [ERROR] ${text}\n`);
    save();
    return 1;
  };

  const envAt = args.indexOf("--env");
  const env = envAt >= 0 ? (args[envAt + 1] ?? "") : undefined;
  const worker = env ? `vero-segment-bridge-${env}` : "vero-segment-bridge";
  const [command, sub, name] = args;

  if (command === "whoami") {
    out(
      account.loggedIn
        ? "You are logged in with an OAuth Token."
        : "You are not authenticated. Please run `wrangler login`.",
    );
  } else if (!account.loggedIn && !args.includes("--dry-run")) {
    return fail("You are not authenticated. Please run `wrangler login`.");
  } else if (command === "queues" && sub === "info" && name) {
    if (!account.queues.includes(name))
      return fail(`Queue "${name}" does not exist. To create it, run: wrangler queues create ${name}`);
    out(`Queue Name: ${name}`);
  } else if (command === "queues" && sub === "create" && name) {
    if (account.queues.includes(name)) return fail(`A queue with this name already exists [code: 11009]`);
    account.queues.push(name);
    out(`✅ Created queue ${name}.`);
  } else if (command === "d1" && sub === "list") {
    out(JSON.stringify(account.databases.map((database, n) => ({ uuid: `uuid-${n}`, name: database }))));
  } else if (command === "d1" && sub === "create" && name) {
    if (account.databases.includes(name)) return fail(`A database with that name already exists [code: 7502]`);
    account.databases.push(name);
    out(`✅ Successfully created DB '${name}'`);
  } else if (command === "d1" && sub === "migrations" && name === "apply") {
    const database = env ? `vero-segment-bridge-${env}-ledger` : "vero-segment-bridge-ledger";
    if (!args.includes("--remote")) return fail("expected --remote");
    if (!account.databases.includes(database)) return fail(`Couldn't find DB with name '${database}'`);
    const applied = account.migrated[database] ?? 0;
    out(applied === MIGRATIONS ? "✅ No migrations to apply!" : `Migrations to be applied: ${MIGRATIONS - applied}`);
    account.migrated[database] = MIGRATIONS;
  } else if (command === "secret" && sub === "list") {
    const entry = account.workers[worker];
    if (!entry)
      return fail(
        `Worker "${worker}"${env ? ` (env: ${env})` : ""} not found.\n\nIf this is a new Worker, run \`wrangler deploy\` first to create it.`,
      );
    out(JSON.stringify(Object.keys(entry.secrets).map((secret) => ({ name: secret, type: "secret_text" }))));
  } else if (command === "deploy") {
    if (args.includes("--dry-run")) {
      out("Total Upload: 1 KiB / gzip: 1 KiB\n--dry-run: exiting now.");
    } else {
      const needed = [
        ...new Set([`${worker}-segment`, `${worker}-vero`, `${worker}-segment-dlq`, `${worker}-vero-dlq`]),
      ];
      for (const queue of needed) if (!account.queues.includes(queue)) return fail(`Queue "${queue}" does not exist.`);
      const entry = account.workers[worker] ?? { secrets: {}, deploys: 0 };
      const fileAt = args.indexOf("--secrets-file");
      if (fileAt >= 0) Object.assign(entry.secrets, JSON.parse(readFileSync(args[fileAt + 1] ?? "", "utf8")));
      entry.deploys += 1;
      account.workers[worker] = entry;
      out(
        `Uploaded ${worker} (0.01 sec)\nDeployed ${worker} triggers (0.01 sec)\n  ${process.env.WRANGLER_STAND_IN_URL ?? `https://${worker}.example.workers.dev`}\n  schedule: */5 * * * *`,
      );
    }
  } else {
    return fail(`the stand-in does not know: wrangler ${args.join(" ")}`);
  }
  save();
  return 0;
}

if (process.argv[1]?.endsWith("wrangler.ts")) process.exit(main());

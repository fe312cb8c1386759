/**
 * `npm run deploy [-- --env staging] [-- --dry-run] [-- --secrets-file FILE]`: the whole deploy, from an
 * empty Cloudflare account or over a running bridge. It creates what `wrangler deploy` does not (the queues,
 * dead-letter ones included, and the D1 ledger), applies the ledger's migrations before the new version takes
 * traffic, asks for each missing secret without echo (or reads them from FILE; never from arguments), deploys
 * with them, then asks the bridge whether it is ready and prints the two URLs to paste. What exists is left as
 * it is, so a second run changes nothing but the code. `--dry-run` prints every step without an account.
 *
 * Wrangler is the project's (`npx wrangler`), or the executable named by WRANGLER (the tests' stand-in).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { unstable_readConfig } from "wrangler";
import { WRANGLER_BIN } from "./bridge.ts";

const CONFIG = fileURLToPath(new URL("../wrangler.toml", import.meta.url));

/** The secrets the bridge reads, in the order they are asked, and what to answer. */
export const SECRETS = [
  {
    name: "SEGMENT_WRITE_KEY",
    needed: "inbound",
    hint: "Segment: Connections, Sources, the HTTP API source for Vero's events, Settings, API Keys, Write Key",
  },
  {
    name: "VERO_WEBHOOK_TOKEN",
    needed: "inbound",
    hint: "you choose it, 32 characters or more; Enter generates one",
    generate: true,
  },
  {
    name: "VERO_AUTH_TOKEN",
    needed: "outbound",
    hint: "Vero 1: Settings, API credentials, Auth token (Enter if you use Vero 2's tracking API key instead)",
    either: "vero",
  },
  {
    name: "VERO_TRACKING_API_KEY",
    needed: "outbound",
    hint: "Vero 2: Settings, Project, API keys, Tracking API key",
    either: "vero",
  },
  {
    name: "SEGMENT_SHARED_SECRET",
    needed: "outbound",
    hint: "you choose it, 32 characters or more; Enter generates one",
    generate: true,
  },
  {
    name: "ADMIN_TOKEN",
    needed: "the console",
    hint: "you choose it, 32 characters or more; Enter generates one",
    generate: true,
  },
  {
    name: "ALERT_WEBHOOK_URL",
    needed: "alerts, optional",
    hint: "a Slack, Discord or PagerDuty URL, or any JSON receiver; Enter leaves alerts off",
    optional: true,
  },
  // Not asked: set only when the secrets file gives them.
  {
    name: "ALERT_ROUTING_KEY",
    needed: "PagerDuty alerts, optional",
    hint: "from the file only",
    optional: true,
    fileOnly: true,
  },
  { name: "LOG_SAMPLE_RATE", needed: "the logs, optional", hint: "from the file only", optional: true, fileOnly: true },
] as const;

type SecretName = (typeof SECRETS)[number]["name"];
const isSecretName = (name: string): name is SecretName => SECRETS.some((secret) => secret.name === name);

export interface Plan {
  env: string;
  worker: string;
  queues: string[];
  database: { binding: string; name: string } | undefined;
}

/** What wrangler.toml declares for `env` ("" is the top level, production). */
export function planFor(env: string, config = CONFIG): Plan {
  const read = unstable_readConfig({ config, env: env === "" ? undefined : env });
  const queues = new Set<string>();
  for (const producer of read.queues.producers ?? []) queues.add(producer.queue);
  for (const consumer of read.queues.consumers ?? []) {
    queues.add(consumer.queue);
    if (consumer.dead_letter_queue) queues.add(consumer.dead_letter_queue);
  }
  const d1 = read.d1_databases[0];
  return {
    env,
    worker: read.name ?? "vero-segment-bridge",
    queues: [...queues],
    database: d1?.database_name ? { binding: d1.binding, name: d1.database_name } : undefined,
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const say = (line = "") => process.stdout.write(`${line}\n`);

/** Wrangler with `args` and the environment given; stdout and stderr captured, or shown as they come. */
function wrangler(
  args: string[],
  { show = false, env = {} as NodeJS.ProcessEnv, terminal = false } = {},
): Promise<Run> {
  const explicit = process.env.WRANGLER;
  const [command, prefix] =
    explicit && !/\.[cm]?[jt]s$/.test(explicit) ? [explicit, []] : [process.execPath, [explicit ?? WRANGLER_BIN]];
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], {
      // Only `wrangler deploy` may ask something (a conflict with a change made in the dashboard); no other
      // command reads the terminal, where the secrets are typed.
      stdio: [terminal ? "inherit" : "ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_HIDE_BANNER: "true", WRANGLER_SEND_METRICS: "false", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
      if (show) process.stdout.write(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
      if (show) process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

class DeployError extends Error {}

/** `wrangler <args>` that must succeed; its output, or an error quoting what wrangler said. */
async function must(args: string[], options?: Parameters<typeof wrangler>[1]): Promise<string> {
  const run = await wrangler(args, options);
  if (run.code !== 0)
    throw new DeployError(`npx wrangler ${args.join(" ")} failed (exit ${run.code}):\n${run.stdout}${run.stderr}`);
  return run.stdout;
}

/** The JSON a wrangler command printed, past any line of its own before it. */
function jsonOf<T>(output: string, what: string): T {
  const start = output.search(/^[[{]/m);
  try {
    return JSON.parse(output.slice(start)) as T;
  } catch {
    throw new DeployError(`could not read ${what} from wrangler's output:\n${output}`);
  }
}

const envArgs = (plan: Plan) => ["--env", plan.env];
const shown = (args: string[]) =>
  `npx wrangler ${args.map((arg) => (arg === "" ? '""' : /\s/.test(arg) ? `'${arg}'` : arg)).join(" ")}`;

/** Secrets from a JSON object or a .env file (`NAME=value`, `#` comments, optional quotes). */
export function parseSecretsFile(text: string): Record<string, string> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const parsed = JSON.parse(trimmed) as Record<string, unknown>;
    return Object.fromEntries(
      Object.entries(parsed).flatMap(([key, value]) => (typeof value === "string" ? [[key, value]] : [])),
    );
  }
  const secrets: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = line.match(/^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=\s*(.*?)\s*$/);
    if (!match?.[1]) continue;
    const raw = match[2] ?? "";
    secrets[match[1]] = raw.replace(/^(["'])(.*)\1$/, "$2");
  }
  return secrets;
}

/** One line read from the terminal without echoing it. */
function askHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, encoding, callback) {
      if (!muted) process.stdout.write(chunk, encoding);
      callback();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      process.stdout.write("\n");
      resolve(answer.trim());
    });
    muted = true;
  });
}

const isVeroCredential = (name: string) => name === "VERO_AUTH_TOKEN" || name === "VERO_TRACKING_API_KEY";

/** The secrets the bridge needs that `set` lacks: either Vero credential will do; the optional ones never. */
export function missingSecrets(set: ReadonlySet<string>): SecretName[] {
  const hasVero = [...set].some(isVeroCredential);
  return SECRETS.filter((secret) => !("optional" in secret))
    .map((secret) => secret.name)
    .filter((name) => !set.has(name) && !(hasVero && isVeroCredential(name)));
}

/**
 * The secrets to upload with this deploy, none of them set yet: from the file (any secret the bridge reads),
 * else the terminal (the needed ones, and the alerts' URL), else generated (the three the operator chooses).
 */
async function secretsToSet(
  set: ReadonlySet<string>,
  file: Record<string, string> | undefined,
): Promise<{ values: Partial<Record<SecretName, string>>; generated: SecretName[] }> {
  const values: Partial<Record<SecretName, string>> = {};
  const generated: SecretName[] = [];
  const interactive = file === undefined && process.stdin.isTTY === true;
  const missing = missingSecrets(set);
  for (const secret of SECRETS) {
    if (set.has(secret.name)) continue;
    const needed = missing.includes(secret.name);
    if (isVeroCredential(secret.name) && Object.keys(values).some(isVeroCredential)) continue;
    let value = file?.[secret.name]?.trim() ?? "";
    if (value === "" && interactive && (needed || !("fileOnly" in secret)))
      value = await askHidden(`${secret.name} (${secret.needed}; ${secret.hint}): `);
    if (value === "" && "generate" in secret && needed && (interactive || file !== undefined)) {
      value = randomBytes(32).toString("hex");
      generated.push(secret.name);
    }
    if (value !== "") values[secret.name] = value;
  }
  return { values, generated };
}

/** The origin `wrangler deploy` printed for the Worker (its workers.dev URL, or a route's). */
export function deployedUrl(output: string): string | undefined {
  const after = output.slice(Math.max(0, output.search(/^Deployed /m)));
  return after.match(/https?:\/\/[^\s/]+/)?.[0];
}

async function readiness(url: string): Promise<{ ready: boolean; reasons: string[] }> {
  // A first deploy's workers.dev name can take a moment to resolve.
  for (let attempt = 0; ; attempt += 1) {
    try {
      const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(10_000) });
      const body = (await response.json()) as { error?: { details?: { reasons?: string[] } }; message?: string };
      if (response.ok) return { ready: true, reasons: [] };
      return { ready: false, reasons: body.error?.details?.reasons ?? [body.message ?? `HTTP ${response.status}`] };
    } catch (error) {
      if (attempt >= 5)
        return { ready: false, reasons: [`${url}/health/ready could not be reached: ${String(error)}`] };
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  }
}

function printUrls(url: string, webhookToken: string | undefined, sharedSecret: string | undefined): void {
  say("\nPaste these two:");
  say(
    `  In Vero (1: Settings, Integrations, Webhooks; 2: Settings, Project, Reporting Webhooks): ${url}/vero/webhook?token=${webhookToken ?? "<VERO_WEBHOOK_TOKEN>"}`,
  );
  say(`  In Segment (a Webhooks (Actions) destination): ${url}/segment`);
  say(`    with the header  Authorization: Bearer ${sharedSecret ?? "<SEGMENT_SHARED_SECRET>"}`);
  say(`  The console: ${url}/admin (sign in with ADMIN_TOKEN)`);
  if (webhookToken || sharedSecret)
    say("Generated or entered secrets are shown only this once: keep them in your password manager.");
}

async function dryRun(plan: Plan, secretsFile: string | undefined): Promise<void> {
  const env = envArgs(plan);
  say(`Dry run: the deploy of ${plan.worker} to an empty account, step by step. Nothing is created.\n`);
  say("1. Who is logged in (else: npx wrangler login):");
  say(`     ${shown(["whoami", ...env])}`);
  say("2. The queues, each created when `queues info` says it does not exist:");
  for (const queue of plan.queues) say(`     ${shown(["queues", "create", queue, ...env])}`);
  if (plan.database) {
    say("3. The D1 ledger, created when `d1 list --json` does not list it, then its migrations, before any code runs:");
    say(`     ${shown(["d1", "create", plan.database.name, ...env])}`);
    say(`     ${shown(["d1", "migrations", "apply", plan.database.binding, "--remote", ...env])}`);
  }
  say(`4. The secrets \`secret list\` does not list, from ${secretsFile ? secretsFile : "the terminal (no echo)"}:`);
  for (const secret of SECRETS)
    if (secretsFile || !("fileOnly" in secret)) say(`     ${secret.name} (${secret.needed}; ${secret.hint})`);
  say("5. The Worker, its Durable Object migrations, cron triggers and queue consumers, with those secrets:");
  say(`     ${shown(["deploy", ...env, "--secrets-file", "<a temporary file, mode 600, removed after>"])}`);
  say("6. GET <the Worker's URL>/health/ready, and the two URLs to paste into Vero and Segment.\n");
  say("Checking that the Worker bundles (wrangler deploy --dry-run, no account needed):");
  await must(["deploy", "--dry-run", ...env], { show: true });
}

async function deploy(plan: Plan, secretsFile: string | undefined): Promise<void> {
  const env = envArgs(plan);
  const fileSecrets = secretsFile ? parseSecretsFile(await readFile(secretsFile, "utf8")) : undefined;
  // A misspelt name would otherwise be left out without a word, and its setting stay unset.
  const unknown = Object.keys(fileSecrets ?? {}).filter((name) => !isSecretName(name));
  if (unknown.length > 0)
    throw new DeployError(
      `${secretsFile} names ${unknown.join(", ")}, which the bridge does not read as a secret; it reads ${SECRETS.map((secret) => secret.name).join(", ")}`,
    );

  const who = await must(["whoami", ...env]);
  if (/not authenticated/i.test(who))
    throw new DeployError("Not logged in: run `npx wrangler login` once, then again.");

  for (const queue of plan.queues) {
    const info = await wrangler(["queues", "info", queue, ...env]);
    if (info.code === 0) {
      say(`queue ${queue}: exists`);
      continue;
    }
    if (!/does not exist/i.test(info.stdout + info.stderr))
      throw new DeployError(`${shown(["queues", "info", queue, ...env])} failed:\n${info.stdout}${info.stderr}`);
    await must(["queues", "create", queue, ...env]);
    say(`queue ${queue}: created`);
  }

  if (plan.database) {
    const databases = jsonOf<{ name: string }[]>(await must(["d1", "list", "--json", ...env]), "the D1 databases");
    if (databases.some((database) => database.name === plan.database?.name)) {
      say(`D1 ${plan.database.name}: exists`);
    } else {
      await must(["d1", "create", plan.database.name, ...env]);
      say(`D1 ${plan.database.name}: created`);
    }
    // CI=true: wrangler applies without asking; it lists what it applies, and nothing when all are applied.
    say(`D1 ${plan.database.name}: applying migrations/ before the new code runs`);
    await must(["d1", "migrations", "apply", plan.database.binding, "--remote", ...env], {
      show: true,
      env: { CI: "true" },
    });
  }

  const listed = await wrangler(["secret", "list", "--format", "json", ...env]);
  const workerIsNew = listed.code !== 0 && /not found/i.test(listed.stdout + listed.stderr);
  if (listed.code !== 0 && !workerIsNew)
    throw new DeployError(`${shown(["secret", "list", ...env])} failed:\n${listed.stdout}${listed.stderr}`);
  const set = new Set(workerIsNew ? [] : jsonOf<{ name: string }[]>(listed.stdout, "the secrets").map((s) => s.name));
  for (const name of SECRETS.map((secret) => secret.name))
    if (set.has(name)) say(`secret ${name}: set, kept (change it with ${shown(["secret", "put", name, ...env])})`);
  const { values, generated } = await secretsToSet(set, fileSecrets);
  for (const name of Object.keys(values))
    say(`secret ${name}: ${generated.includes(name as SecretName) ? "generated" : "given"}, uploaded with this deploy`);

  const scratch = await mkdtemp(join(tmpdir(), "bridge-deploy-"));
  try {
    const args = ["deploy", ...env];
    // Wrangler lets the process environment override the file: none of these names may come from there.
    const childEnv: NodeJS.ProcessEnv = {};
    if (Object.keys(values).length > 0) {
      const file = join(scratch, "secrets.json");
      await writeFile(file, JSON.stringify(values), { mode: 0o600 });
      await chmod(file, 0o600);
      args.push("--secrets-file", file);
      for (const name of Object.keys(values)) childEnv[name] = undefined;
    }
    const output = await must(args, { show: true, env: childEnv, terminal: true });
    const url = deployedUrl(output);
    if (!url) {
      say(
        "\nwrangler deploy printed no URL (no workers.dev, no route): check /health/ready on the Worker's own route.",
      );
      return;
    }
    const state = await readiness(url);
    say(`\n${url}/health/ready: ${state.ready ? "ready" : "not ready"}`);
    for (const reason of state.reasons) say(`  still missing: ${reason}`);
    for (const name of missingSecrets(new Set([...set, ...Object.keys(values)])))
      say(`  secret ${name} is not set: ${shown(["secret", "put", name, ...env])}`);
    printUrls(url, values.VERO_WEBHOOK_TOKEN, values.SEGMENT_SHARED_SECRET);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values: options } = parseArgs({
    options: {
      env: { type: "string", default: "" },
      "dry-run": { type: "boolean", default: false },
      "secrets-file": { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (options.help) {
    say("npm run deploy [-- --env staging] [-- --dry-run] [-- --secrets-file FILE]");
    say(`FILE: JSON ({"NAME": "value"}) or .env (NAME=value) with any of: ${SECRETS.map((s) => s.name).join(", ")}`);
    return;
  }
  const plan = planFor(options.env);
  if (options["dry-run"]) await dryRun(plan, options["secrets-file"]);
  else await deploy(plan, options["secrets-file"]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    // parseArgs refuses unknown options: a secret is never taken from the command line, where `ps` shows it.
    say(
      error instanceof DeployError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
        ? `\n${(error as Error).message}`
        : String(error),
    );
    process.exit(1);
  });
}

/**
 * `npm run deploy` (dev/deploy.ts) against a recording stand-in for wrangler (dev/stand-ins/wrangler.ts),
 * whose account starts empty: what it creates, in which order, which secrets it uploads and how, and that a
 * second run changes nothing that exists. The stand-in answers as wrangler 4 does; the real wrangler runs
 * only in the dry-run test of wrangler.toml itself, which needs no account.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deployedUrl, parseSecretsFile, SECRETS } from "../../dev/deploy.ts";
import { emptyAccount, type WranglerAccount } from "../../dev/stand-ins/wrangler.ts";
import { declaredInEnv } from "./declared-settings.ts";

const DEPLOY = fileURLToPath(new URL("../../dev/deploy.ts", import.meta.url));
const WRANGLER = fileURLToPath(new URL("../../dev/stand-ins/wrangler.ts", import.meta.url));
const PRODUCTION_QUEUES = [
  "vero-segment-bridge-segment",
  "vero-segment-bridge-vero",
  "vero-segment-bridge-segment-dlq",
  "vero-segment-bridge-vero-dlq",
];

// Each run starts a dozen Node processes (the deploy and each wrangler call); the machine is shared.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const scratch = mkdtempSync(join(tmpdir(), "deploy-test-"));
let server: Server;
let url: string;
/** What the stand-in for the deployed bridge answers on /health/ready. */
let readyReasons: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const ready = readyReasons.length === 0;
    res.writeHead(req.url === "/health/ready" ? (ready ? 200 : 503) : 404, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        ready
          ? { status: "ready", version: "test" }
          : { ok: false, code: "not_ready", error: { details: { reasons: readyReasons } } },
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(scratch, { recursive: true, force: true });
});

/** A fresh account in its own state file. */
function account(overrides: Partial<WranglerAccount> = {}): string {
  const path = join(mkdtempSync(join(scratch, "account-")), "state.json");
  writeFileSync(path, JSON.stringify({ ...emptyAccount(), ...overrides }));
  return path;
}

const stateOf = (path: string) => JSON.parse(readFileSync(path, "utf8")) as WranglerAccount;

function deploy(state: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DEPLOY, ...args],
      {
        env: { ...process.env, WRANGLER: WRANGLER, WRANGLER_STAND_IN_STATE: state, WRANGLER_STAND_IN_URL: url },
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

function secretsFile(secrets: Record<string, string>): string {
  const path = join(mkdtempSync(join(scratch, "secrets-")), "secrets.json");
  writeFileSync(path, JSON.stringify(secrets));
  return path;
}

const commands = (state: string) => stateOf(state).calls.map((call) => call.args.join(" "));

describe("npm run deploy -- --dry-run", () => {
  it("prints every step for an empty account and asks wrangler only to bundle, which needs no account", async () => {
    const state = account({ loggedIn: false });
    const { code, output } = await deploy(state, ["--dry-run"]);
    expect(code, output).toBe(0);
    for (const queue of PRODUCTION_QUEUES) expect(output).toContain(`npx wrangler queues create ${queue} --env ""`);
    expect(output).toContain('npx wrangler d1 create vero-segment-bridge-ledger --env ""');
    expect(output).toContain('npx wrangler d1 migrations apply LEDGER --remote --env ""');
    for (const secret of ["SEGMENT_WRITE_KEY", "VERO_WEBHOOK_TOKEN", "VERO_AUTH_TOKEN", "SEGMENT_SHARED_SECRET"])
      expect(output).toContain(secret);
    expect(output).toContain("ADMIN_TOKEN");
    expect(output).toMatch(/npx wrangler deploy --env "" --secrets-file/);
    expect(output).toContain("/health/ready");
    expect(commands(state)).toEqual(["deploy --dry-run --env "]);
  });

  it("plans staging under staging's own names", async () => {
    const state = account();
    const { code, output } = await deploy(state, ["--dry-run", "--env", "staging"]);
    expect(code, output).toBe(0);
    expect(output).toContain("npx wrangler queues create vero-segment-bridge-staging-vero-dlq --env staging");
    expect(output).toContain("npx wrangler d1 create vero-segment-bridge-staging-ledger --env staging");
    expect(output).not.toMatch(/queues create vero-segment-bridge-vero-dlq/);
    expect(commands(state)).toEqual(["deploy --dry-run --env staging"]);
  });
});

describe("npm run deploy on an account", () => {
  const given = {
    SEGMENT_WRITE_KEY: "segment-write-key-from-the-file",
    VERO_AUTH_TOKEN: "vero-auth-token-from-the-file",
  };
  const state = account();
  const file = secretsFile(given);
  let first: { code: number; output: string };

  beforeAll(async () => {
    readyReasons = [];
    first = await deploy(state, ["--secrets-file", file]);
  });

  it("creates the four queues and the ledger, and applies the migrations before the Worker is deployed", () => {
    expect(first.code, first.output).toBe(0);
    const calls = commands(state);
    for (const queue of PRODUCTION_QUEUES) expect(calls).toContain(`queues create ${queue} --env `);
    expect(calls).toContain("d1 create vero-segment-bridge-ledger --env ");
    const migrate = calls.indexOf("d1 migrations apply LEDGER --remote --env ");
    const deployed = calls.findIndex((call) => call.startsWith("deploy "));
    expect(migrate).toBeGreaterThan(calls.indexOf("d1 create vero-segment-bridge-ledger --env "));
    expect(deployed).toBeGreaterThan(migrate);
    expect(stateOf(state).migrated).toEqual({ "vero-segment-bridge-ledger": 4 });
  });

  it("names the environment in every wrangler call, so that wrangler does not warn about environments", () => {
    for (const call of stateOf(state).calls) expect(call.args, call.args.join(" ")).toContain("--env");
  });

  it("uploads the file's secrets with the deploy, generates the ones the operator chooses, and never puts one in an argument", () => {
    const secrets = stateOf(state).workers["vero-segment-bridge"]?.secrets ?? {};
    expect(Object.keys(secrets).sort()).toEqual(
      ["ADMIN_TOKEN", "SEGMENT_SHARED_SECRET", "SEGMENT_WRITE_KEY", "VERO_AUTH_TOKEN", "VERO_WEBHOOK_TOKEN"].sort(),
    );
    expect(secrets).toMatchObject(given);
    for (const name of ["ADMIN_TOKEN", "SEGMENT_SHARED_SECRET", "VERO_WEBHOOK_TOKEN"])
      expect(secrets[name]).toMatch(/^[0-9a-f]{64}$/);
    const everyArgument = stateOf(state).calls.flatMap((call) => call.args);
    for (const value of Object.values(secrets)) expect(everyArgument).not.toContain(value);
  });

  it("ends with the readiness of the deployed bridge and the two URLs to paste", () => {
    const secrets = stateOf(state).workers["vero-segment-bridge"]?.secrets ?? {};
    expect(first.output).toContain(`${url}/health/ready: ready`);
    expect(first.output).toContain(`${url}/vero/webhook?token=${secrets.VERO_WEBHOOK_TOKEN}`);
    expect(first.output).toContain(`${url}/segment`);
    expect(first.output).toContain(`Authorization: Bearer ${secrets.SEGMENT_SHARED_SECRET}`);
  });

  it("changes nothing that exists when run again: no creation, no secret, only the code deployed", async () => {
    const before = stateOf(state);
    const again = await deploy(state, ["--secrets-file", file]);
    expect(again.code, again.output).toBe(0);
    const after = stateOf(state);
    const newCalls = after.calls.slice(before.calls.length).map((call) => call.args.join(" "));
    expect(newCalls.filter((call) => / create /.test(` ${call}`))).toEqual([]);
    expect(newCalls.filter((call) => call.startsWith("deploy"))).toEqual(["deploy --env "]);
    expect(after.workers["vero-segment-bridge"]?.secrets).toEqual(before.workers["vero-segment-bridge"]?.secrets);
    expect(after.queues).toEqual(before.queues);
    expect(after.databases).toEqual(before.databases);
    expect(again.output).toContain("secret SEGMENT_SHARED_SECRET: set, kept");
    expect(again.output).toContain(`${url}/vero/webhook?token=<VERO_WEBHOOK_TOKEN>`);
  });
});

describe("npm run deploy refuses and reports", () => {
  it("refuses a secret on the command line, where ps would show it, before calling wrangler", async () => {
    const state = account();
    const { code, output } = await deploy(state, ["--SEGMENT_WRITE_KEY=abc"]);
    expect(code).toBe(1);
    expect(output).toMatch(/Unknown option '--SEGMENT_WRITE_KEY/);
    expect(stateOf(state).calls).toEqual([]);
  });

  it("says to log in first, and creates nothing, when wrangler is not logged in", async () => {
    const state = account({ loggedIn: false });
    const { code, output } = await deploy(state, []);
    expect(code).toBe(1);
    expect(output).toContain("npx wrangler login");
    expect(commands(state)).toEqual(["whoami --env "]);
  });

  it("without a terminal or a file, deploys what it can and names each secret still to set and what is not ready", async () => {
    readyReasons = ["inbound is not configured: set SEGMENT_WRITE_KEY, VERO_WEBHOOK_TOKEN"];
    const state = account();
    const { code, output } = await deploy(state, ["--env", "staging"]);
    readyReasons = [];
    expect(code, output).toBe(0);
    expect(output).toContain(`${url}/health/ready: not ready`);
    expect(output).toContain("still missing: inbound is not configured: set SEGMENT_WRITE_KEY, VERO_WEBHOOK_TOKEN");
    expect(output).toContain(
      "secret SEGMENT_WRITE_KEY is not set: npx wrangler secret put SEGMENT_WRITE_KEY --env staging",
    );
    expect(stateOf(state).workers["vero-segment-bridge-staging"]?.secrets).toEqual({});
  });
});

describe("npm run deploy with a secrets file", () => {
  it("uploads an optional secret the file gives (alerts, log sampling) and leaves out the others", async () => {
    const state = account();
    const file = secretsFile({ ALERT_WEBHOOK_URL: "https://hooks.example.com/x", LOG_SAMPLE_RATE: "0.1" });
    const { code, output } = await deploy(state, ["--secrets-file", file]);
    expect(code, output).toBe(0);
    const secrets = stateOf(state).workers["vero-segment-bridge"]?.secrets ?? {};
    expect(secrets).toMatchObject({ ALERT_WEBHOOK_URL: "https://hooks.example.com/x", LOG_SAMPLE_RATE: "0.1" });
    expect(secrets).not.toHaveProperty("ALERT_ROUTING_KEY");
    // Not in the file, and not the operator's to choose: named at the end, not invented.
    expect(output).toContain("secret SEGMENT_WRITE_KEY is not set");
  });

  it("refuses a file that names a secret the bridge does not read, before calling wrangler", async () => {
    const state = account();
    const file = secretsFile({ SEGMENT_WRITE_KEY: "k", ADMIN_TOKNE: "typo" });
    const { code, output } = await deploy(state, ["--secrets-file", file]);
    expect(code).toBe(1);
    expect(output).toContain("names ADMIN_TOKNE, which the bridge does not read as a secret");
    expect(stateOf(state).calls).toEqual([]);
  });

  it("knows every secret src/shared/env.ts declares", () => {
    const secrets = declaredInEnv()
      .filter((setting) => setting.kind !== "var")
      .map((setting) => setting.name);
    expect(SECRETS.map((secret) => secret.name).sort()).toEqual(secrets.sort());
  });
});

describe("the deploy's parsing", () => {
  it("reads a secrets file as JSON or as .env lines", () => {
    expect(parseSecretsFile('{ "ADMIN_TOKEN": "a", "N": 1 }')).toEqual({ ADMIN_TOKEN: "a" });
    expect(parseSecretsFile("# comment\nADMIN_TOKEN=a b\nexport VERO_AUTH_TOKEN='q=1'\n\n")).toEqual({
      ADMIN_TOKEN: "a b",
      VERO_AUTH_TOKEN: "q=1",
    });
  });

  it("reads the Worker's URL from wrangler deploy's output", () => {
    expect(
      deployedUrl(
        "Uploaded x (1 sec)\nDeployed x triggers (0.3 sec)\n  https://x.acct.workers.dev\n  schedule: 17 3 * * *",
      ),
    ).toBe("https://x.acct.workers.dev");
    expect(deployedUrl("Uploaded x\nCurrent Version ID: 1")).toBeUndefined();
  });
});

/**
 * Runs the bridge (or another Worker config) under `wrangler dev` as a child
 * process, for Node-side code that needs a real HTTP endpoint: the sandbox,
 * end-to-end tests with official SDKs, and the benchmarks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface BridgeOptions {
  /** Bindings given with `--var` (development values only: they show in `ps`). */
  vars: Record<string, string>;
  /** Defaults to a free port. */
  port?: number;
  /** Defaults to the project's wrangler.toml. */
  config?: string;
  /** Where the child's output goes; defaults to this process's stdout/stderr. */
  stdio?: "inherit" | "ignore";
  /** How long to wait for `GET /health` (or `readyPath`) to answer. */
  readyTimeoutMs?: number;
  readyPath?: string;
  /** Extra `wrangler dev` arguments. */
  args?: string[];
}

export interface RunningBridge {
  url: string;
  process: ChildProcess;
  /** The local state directory (`--persist-to`): queues, KV, the D1 ledger. */
  state: string;
  stop(): Promise<void>;
}

export const WRANGLER_BIN = join(
  dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);

/** wrangler dev wants a concrete port; ask the kernel for a free one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Offline by design: no telemetry, no fetch of Cloudflare's `Request.cf` data. */
const wranglerEnv = () => ({ ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" });

/** Runs `wrangler <args>` to completion, failing with its output. */
export function runWrangler(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER_BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: wranglerEnv(),
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`wrangler ${args.join(" ")} exited with ${code}:\n${output}`)),
    );
  });
}

/** Applies migrations/ to the local LEDGER database kept in `state`. */
export function applyLedgerMigrations(state: string): Promise<void> {
  return runWrangler(["d1", "migrations", "apply", "LEDGER", "--local", "--persist-to", state]);
}

export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  // Each instance keeps its local state (queues, KV) apart from the others.
  const state = await mkdtemp(join(tmpdir(), "bridge-state-"));
  // wrangler dev does not apply D1 migrations: the project's config gets its ledger schema first.
  if (!options.config) await applyLedgerMigrations(state);
  const args = [
    WRANGLER_BIN,
    "dev",
    ...(options.config ? ["--config", options.config] : []),
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspectorPort),
    "--persist-to",
    state,
    "--show-interactive-dev-session=false",
    ...Object.entries(options.vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", options.stdio ?? "inherit", options.stdio ?? "inherit"],
    env: wranglerEnv(),
  });
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(state, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited with ${child.exitCode} before ${url} answered`);
    }
    try {
      const response = await fetch(`${url}${options.readyPath ?? "/health"}`);
      await response.arrayBuffer();
      if (response.status < 500) return { url, process: child, state, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer on ${url} in time`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Runs the bridge (or another Worker config) under `wrangler dev` as a child
 * process, for Node-side code that needs a real HTTP endpoint: the sandbox,
 * end-to-end tests with official SDKs, and the benchmarks.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

export interface BridgeOptions {
  /** Bindings given with `--var` (development values only: they show in `ps`). */
  vars: Record<string, string>;
  /** Defaults to a free port. */
  port?: number;
  /** Defaults to the project's wrangler.toml. */
  config?: string;
  /** Where the child's output goes; defaults to this process's stdout/stderr. "pipe" hands it to `onLine`. */
  stdio?: "inherit" | "ignore" | "pipe";
  /** With `stdio: "pipe"`: each line the child writes, stdout and stderr alike (the Worker's logs among them). */
  onLine?: (line: string) => void;
  /** How long to wait for `GET /health` (or `readyPath`) to answer. */
  readyTimeoutMs?: number;
  readyPath?: string;
  /** The directory the instance's local state directory is made in; defaults to the OS's temporary directory. */
  stateParent?: string;
  /** Extra environment variables for `wrangler dev` (Miniflare's own switches, such as X_LOCAL_OBSERVABILITY). */
  env?: Record<string, string>;
  /** Extra `wrangler dev` arguments. */
  args?: string[];
  /**
   * Applies the D1 migrations (the LEDGER binding's schema, migrations/) to the
   * instance's local state before it starts. Defaults to true with the
   * project's wrangler.toml, false with another config.
   */
  migrate?: boolean;
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

const EXIT_WITH_PARENT = new URL("exit-with-parent.ts", import.meta.url).href;

// The process groups of the running instances: each is killed when this process exits, even mid-test.
const running = new Set<number>();
process.on("exit", () => {
  for (const group of running) killGroup(group, "SIGKILL");
});

function killGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // already gone
  }
}

// Offline by design: no telemetry, no fetch of Cloudflare's `Request.cf` data.
const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };

/**
 * `wrangler d1 migrations apply LEDGER --local` into `state`, the directory
 * `wrangler dev --persist-to` then reads: a fresh clone needs no manual step.
 */
async function applyMigrations(state: string, config?: string): Promise<void> {
  const args = [WRANGLER_BIN, "d1", "migrations", "apply", "LEDGER", "--local", "--persist-to", state];
  if (config) args.push("--config", config);
  try {
    // CI=true: answer wrangler's "apply these migrations?" prompt without a terminal.
    await promisify(execFile)(process.execPath, args, { env: { ...WRANGLER_ENV, CI: "true" } });
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    await rm(state, { recursive: true, force: true });
    throw new Error(`wrangler d1 migrations apply failed:\n${stdout}${stderr}`);
  }
}

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

/** Whether nothing listens on `port` of 127.0.0.1 now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const port = options.port ?? (await freePort());
  // The project's Worker repeats this on /health: another server on the port (say, another wrangler dev)
  // answering first is told apart from this instance.
  const instance = options.config === undefined ? randomBytes(12).toString("hex") : undefined;
  const vars = instance ? { ...options.vars, BRIDGE_INSTANCE: instance } : options.vars;
  const inspectorPort = await freePort();
  // Each instance keeps its local state (queues, D1) apart from the others.
  const state = await mkdtemp(join(options.stateParent ?? tmpdir(), "bridge-state-"));
  if (options.migrate ?? options.config === undefined) await applyMigrations(state, options.config);
  const args = [
    "--import",
    EXIT_WITH_PARENT,
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
    ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ...(options.args ?? []),
  ];
  // A process group of its own, so that stopping it stops workerd too; stdin a pipe that ends with this process.
  const child = spawn(process.execPath, args, {
    stdio: ["pipe", options.stdio ?? "inherit", options.stdio ?? "inherit"],
    env: { ...WRANGLER_ENV, ...options.env },
    detached: true,
  });
  const group = child.pid;
  if (group !== undefined) running.add(group);
  for (const stream of [child.stdout, child.stderr])
    if (stream) createInterface({ input: stream }).on("line", (line) => options.onLine?.(line));
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (group !== undefined) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        killGroup(group, "SIGTERM");
        const timer = setTimeout(() => killGroup(group, "SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      // workerd may outlive wrangler's exit by a moment: the group goes as a whole.
      killGroup(group, "SIGKILL");
      running.delete(group);
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
      const text = await response.text();
      if (response.status < 500 && (instance === undefined || answersAs(text, instance)))
        return { url, process: child, state, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `wrangler dev did not answer on ${url} in time${instance ? " (or another server answers there, not this bridge)" : ""}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Whether a `/health` body is the one of the bridge started with `instance`. */
function answersAs(text: string, instance: string): boolean {
  try {
    return (JSON.parse(text) as { instance?: unknown }).instance === instance;
  } catch {
    return false;
  }
}

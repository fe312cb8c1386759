/**
 * The Worker's size and cold start, measured on the bundle Cloudflare would
 * receive: `wrangler deploy --dry-run --outdir` writes exactly what
 * `wrangler deploy` uploads.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { freePort, WRANGLER_BIN } from "../dev/bridge.ts";
import { median, round } from "./lib/stats.ts";

const run = promisify(execFile);

export interface BundleMeasurement {
  config: string;
  bytes: number;
  gzipBytes: number;
  /**
   * The same Worker bundled with `--no-minify`, whatever wrangler.toml says: what minifying is
   * worth, and the bundle the composition is read from (minified code has no path markers).
   */
  unminifiedGzipBytes: number;
  /** Bytes of the (unminified) bundle per package or source folder, from esbuild's `// path` markers. */
  composition: { source: string; bytes: number; share: number }[];
  /** Kept for the cold-start measurement; removed by `dispose`. */
  file: string;
  dispose(): Promise<void>;
}

async function dryRun(config: string, outdir: string, extra: string[] = []): Promise<string> {
  await run(process.execPath, [WRANGLER_BIN, "deploy", "--dry-run", "--outdir", outdir, "--config", config, ...extra], {
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    maxBuffer: 16 * 1024 * 1024,
  });
  const entry = (await readdir(outdir)).find((name) => name.endsWith(".js"));
  if (!entry) throw new Error(`wrangler wrote no .js to ${outdir}`);
  return join(outdir, entry);
}

function sourceOf(marker: string): string {
  const packaged = marker.lastIndexOf("node_modules/");
  if (packaged !== -1) {
    const [scope, name] = marker.slice(packaged + "node_modules/".length).split("/");
    return scope?.startsWith("@") ? `${scope}/${name}` : (scope ?? marker);
  }
  const parts = marker.replace(/^(\.\.?\/)+/, "").split("/");
  // src/inbound/map.ts counts as src/inbound; a file directly under src/ as src.
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : (parts[0] ?? marker);
}

/**
 * esbuild (which wrangler runs) marks where each input file starts with a
 * `// node_modules/pkg/...` or `// src/...` comment: summing the lines under
 * each marker says what the bytes are made of, measured rather than guessed.
 */
export function bundleComposition(code: string): { source: string; bytes: number; share: number }[] {
  const totals = new Map<string, number>();
  let current = "(wrangler/esbuild runtime)";
  for (const line of code.split("\n")) {
    // Markers are paths relative to the project, but a symlinked node_modules shows as `../../elsewhere/node_modules/...`.
    const marker = line.match(/^\/\/ (\S+\.(?:[cm]?[jt]s|json))$/)?.[1];
    if (marker) current = sourceOf(marker);
    totals.set(current, (totals.get(current) ?? 0) + Buffer.byteLength(line) + 1);
  }
  const total = Buffer.byteLength(code);
  return [...totals.entries()]
    .map(([source, bytes]) => ({ source, bytes, share: round(bytes / total, 4) }))
    .sort((a, b) => b.bytes - a.bytes);
}

export async function measureBundle(config: string): Promise<BundleMeasurement> {
  const outdir = await mkdtemp(join(tmpdir(), "bench-bundle-"));
  const plainOutdir = await mkdtemp(join(tmpdir(), "bench-bundle-plain-"));
  const [file, plainFile] = await Promise.all([dryRun(config, outdir), dryRun(config, plainOutdir, ["--no-minify"])]);
  const code = await readFile(file);
  const plain = await readFile(plainFile);
  await rm(plainOutdir, { recursive: true, force: true });
  return {
    config,
    bytes: (await stat(file)).size,
    // Default zlib level, as wrangler's own "gzip:" figure.
    gzipBytes: gzipSync(code).length,
    unminifiedGzipBytes: gzipSync(plain).length,
    composition: bundleComposition(plain.toString("utf8")),
    file,
    dispose: () => rm(outdir, { recursive: true, force: true }),
  };
}

export interface ColdStart {
  /** workerd, spawn to the first answered request: the bundle's median minus a one-line Worker's. */
  workerdMs: number;
  workerdBundleMs: number;
  workerdEmptyMs: number;
  /** V8 alone: `import()` of the bundle in a fresh Node process, after a warm-up import of an empty module. */
  v8ImportMs: number;
  samples: number;
}

const EMPTY_WORKER = 'export default { fetch() { return new Response("ok"); } };\n';

function capnp(moduleFile: string, compatibilityDate: string, flags: readonly string[]): string {
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .w) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "main") ],
);
const w :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "${moduleFile}") ],
  compatibilityDate = "${compatibilityDate}",
  compatibilityFlags = [${flags.map((flag) => JSON.stringify(flag)).join(", ")}],
);
`;
}

/** The compatibility settings of a wrangler.toml, so workerd runs the bundle as deployed. */
export async function compatibilityOf(config: string): Promise<{ date: string; flags: string[] }> {
  const toml = await readFile(config, "utf8");
  const date = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m)?.[1];
  if (!date) throw new Error(`${config} has no compatibility_date`);
  const flagsText = toml.match(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m)?.[1] ?? "";
  const flags = [...flagsText.matchAll(/"([^"]+)"/g)].map((match) => match[1] as string);
  return { date, flags };
}

/** The workerd wrangler itself runs (it may pin another version than the top-level one). */
const WORKERD_BIN = join(dirname(createRequire(WRANGLER_BIN).resolve("workerd/package.json")), "bin", "workerd");

async function workerdTimeToFirstResponse(configFile: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(WORKERD_BIN, ["serve", configFile, "--socket-addr", `http=127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode} (${configFile})`);
      try {
        const response = await fetch(`http://127.0.0.1:${port}/health`);
        await response.arrayBuffer();
        return performance.now() - started;
      } catch {
        if (performance.now() - started > 15_000) throw new Error("workerd did not answer within 15 s");
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  }
}

/** The `cloudflare:workers` exports the bundle imports, as a module Node can load. */
const CLOUDFLARE_WORKERS_STAND_IN = `data:text/javascript,${encodeURIComponent("export class DurableObject {}")}`;

async function v8ImportMs(file: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "bench-import-"));
  try {
    const empty = join(dir, "empty.mjs");
    await writeFile(empty, "export default {};\n");
    // The first import pays for Node's ESM loader; timing the second isolates parse, compile and evaluation.
    // The Durable Object classes extend workerd's built-in module, which Node has not: a stand-in class takes its place.
    const script = `
      const { registerHooks } = await import("node:module");
      registerHooks({
        resolve: (specifier, context, next) =>
          specifier === "cloudflare:workers"
            ? { url: ${JSON.stringify(CLOUDFLARE_WORKERS_STAND_IN)}, shortCircuit: true }
            : next(specifier, context),
      });
      await import(${JSON.stringify(pathToFileURL(empty).href)});
      const started = performance.now();
      await import(${JSON.stringify(pathToFileURL(file).href)});
      process.stdout.write(String(performance.now() - started));`;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script]);
    return Number(stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function measureColdStart(bundleFile: string, config: string, samples = 7): Promise<ColdStart> {
  const dir = await mkdtemp(join(tmpdir(), "bench-workerd-"));
  try {
    const { date, flags } = await compatibilityOf(config);
    await writeFile(join(dir, "bundle.js"), await readFile(bundleFile));
    await writeFile(join(dir, "empty.js"), EMPTY_WORKER);
    await writeFile(join(dir, "bundle.capnp"), capnp("bundle.js", date, flags));
    await writeFile(join(dir, "empty.capnp"), capnp("empty.js", date, flags));
    const bundle: number[] = [];
    const empty: number[] = [];
    const imports: number[] = [];
    // Alternated, so drift in machine load hits both sides alike.
    for (let i = 0; i < samples; i += 1) {
      empty.push(await workerdTimeToFirstResponse(join(dir, "empty.capnp")));
      bundle.push(await workerdTimeToFirstResponse(join(dir, "bundle.capnp")));
      if (i < 5) imports.push(await v8ImportMs(bundleFile));
    }
    const workerdBundleMs = median(bundle);
    const workerdEmptyMs = median(empty);
    return {
      workerdMs: round(workerdBundleMs - workerdEmptyMs, 1),
      workerdBundleMs: round(workerdBundleMs, 1),
      workerdEmptyMs: round(workerdEmptyMs, 1),
      v8ImportMs: round(median(imports), 1),
      samples,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
